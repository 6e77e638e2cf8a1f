/** The token action's post step: revoke the token main obtained, when `revoke-on-exit` asked. */
import { describeError } from './errors.ts';
import { parseTokenInputs } from './inputs.ts';
import { revokeWith } from './operations.ts';
import { info, loadRevokeState, maskSecret, warn } from './publish.ts';

export async function run(): Promise<void> {
  const state = loadRevokeState();
  if (!state) return;
  if (state.expiresAt && state.expiresAt.getTime() <= Date.now()) {
    info('The token has already expired; nothing to revoke');
    return;
  }
  try {
    const config = parseTokenInputs();
    await revokeWith(config, state.platform, state.accessToken, {
      mask: maskSecret,
      log: info,
      warn,
    });
    info(`Revoked the token this job obtained on ${state.platform}`);
  } catch (error) {
    // The job's work is done; a token left behind is worth a warning, not a red job.
    warn(`Could not revoke the token this job obtained: ${describeError(error)}`);
  }
}
