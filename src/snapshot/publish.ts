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
    ...mediaOutputs(result),
  });
}

function mediaOutputs(result: SnapshotResult): Record<string, string> {
  const { media } = result;
  if (!media) return {};
  return {
    'media-count': String(media.files),
    'media-new': String(media.downloaded),
    'media-bytes': String(media.bytes),
    'media-failed': String(media.failed),
  };
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
    ...mediaRows(result),
  ];
}

function mediaRows(result: SnapshotResult): [string, string][] {
  const { media } = result;
  if (!media) return [];
  return [
    ['Media files', `${media.files} (${formatSize(media.bytes)})`],
    ['Media new', `${media.downloaded} (${formatSize(media.downloadedBytes)})`],
    ['Media removed', String(media.removed)],
    ['Media failed', String(media.failed)],
    ['Media requests', String(media.requests)],
  ];
}

function formatSize(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

const REASON_TEXT: Record<string, string> = {
  visibility: 'not visible enough',
  reply: 'replies to others',
  reblog: 'boosts/renotes',
  media: 'without media',
  duplicate: 'duplicates or already saved',
};

export async function writeSnapshotSummary(result: SnapshotResult): Promise<void> {
  await writeSummary('fedi-token: snapshot', snapshotSummaryRows(result), result.thumbnails);
}
