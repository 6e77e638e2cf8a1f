/** The snapshot's outputs and job summary, written through src/publish.ts's helpers. */
import { formatSoftware, setOutputs, writeSummary } from '../publish.ts';
import type { SnapshotResult } from './run.ts';

export function publishSnapshot(result: SnapshotResult): void {
  setOutputs({
    path: result.path,
    count: String(result.count),
    'new-count': String(result.newCount),
    'newest-id': result.newestId,
    changed: String(result.changed),
  });
}

export function snapshotSummaryRows(result: SnapshotResult): [string, string][] {
  const filtered = Object.entries(result.filtered)
    .filter(([, n]) => n > 0)
    .map(([reason, n]) => `${n} ${REASON_TEXT[reason] ?? reason}`)
    .join(', ');
  const platform = result.software ? formatSoftware(result.software) : result.platform;
  return [
    ['File', result.path],
    ['Server', platform],
    ['Account id', result.accountId],
    ['Mode', result.mode],
    ['Fetched', String(result.fetched)],
    ['New', String(result.newCount)],
    ['Filtered out', filtered || 'none'],
    ['In the file', String(result.count)],
    ['Changed', result.changed ? 'yes' : 'no'],
    ['Requests', String(result.requests)],
    ['Newest', result.newestDate ?? ''],
    ['Oldest', result.oldestDate ?? ''],
  ];
}

const REASON_TEXT: Record<string, string> = {
  visibility: 'not visible enough',
  reply: 'replies to others',
  reblog: 'boosts/renotes',
  media: 'without media',
  duplicate: 'duplicates or already saved',
};

export async function writeSnapshotSummary(result: SnapshotResult): Promise<void> {
  await writeSummary('fedi-token: snapshot', snapshotSummaryRows(result));
}
