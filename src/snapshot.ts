/** The snapshot action's step: parse → act → publish. */
import { describeError } from './errors.ts';
import { fail, info, maskSecret, warn } from './publish.ts';
import { parseSnapshotInputs } from './snapshot/config.ts';
import { publishSnapshot, writeSnapshotSummary } from './snapshot/publish.ts';
import { runSnapshot } from './snapshot/run.ts';

export async function run(): Promise<void> {
  try {
    const config = parseSnapshotInputs();
    for (const warning of config.inputWarnings) warn(warning);
    const result = await runSnapshot(config, { mask: maskSecret, log: info, warn });
    publishSnapshot(result);
    info(
      `${result.path}: ${result.count} items, ${result.newCount} new, ` +
        `${result.changed ? 'changed' : 'unchanged'} (${result.requests} requests)`,
    );
    await writeSnapshotSummary(result);
  } catch (error) {
    fail(describeError(error));
  }
}
