/**
 * `mode: incremental`: the same downward walk as `full`, from the top, ending at the first post
 * no newer than the file's newest (the file's own, or an older one where that was deleted) or at
 * `count` new ones. New posts stream into the new file first, then the old file's posts follow,
 * so nothing new costs one request and many new posts cost no more than a full run.
 */
import type { SnapshotConfig } from './config.ts';
import { compareIds } from './filter.ts';
import type { Json, TimelineSource } from './source.ts';
import { AtomicArrayWriter, hashFile, readEntries, readItems } from './store.ts';
import { full, type Outcome, type Walk } from './walk.ts';

export async function incremental(
  config: SnapshotConfig,
  source: TimelineSource,
  accountId: string,
  walk: Walk,
): Promise<Outcome> {
  const { path, count } = config;
  // First pass, streamed: proves the file whole, finds its newest id and tells whether today's
  // filters would drop anything from it. Nothing but counts is kept: a file of 100 000 posts
  // must not be held in memory.
  let newestKnown: string | undefined;
  let oldTotal = 0;
  let oldKept = 0;
  let oldFirst: Json | undefined;
  let oldLast: Json | undefined;
  for await (const item of readItems(path)) {
    const id = item.id as string;
    oldTotal++;
    if (newestKnown === undefined || compareIds(id, newestKnown) > 0) newestKnown = id;
    if (walk.keeps(item)) {
      oldKept++;
      oldFirst ??= item;
      oldLast = item;
    }
  }
  if (newestKnown === undefined) return full(config, source, accountId, walk);

  let writer: AtomicArrayWriter | undefined;
  let previousHash: string | undefined;
  const open = async () => {
    previousHash = await hashFile(path);
    return AtomicArrayWriter.open(path);
  };
  try {
    let newCount = 0;
    let first: Json | undefined;
    let last: Json | undefined;
    walking: for await (const page of source.pagesDown(accountId)) {
      for (const item of page) {
        // Servers list newest first, so everything from here down is in the file already, or
        // older than its newest post: a post the file lacks there (filters were widened, or
        // the file's posts were deleted on the server) would land above newer ones and break
        // the order. The walk ends, whether or not this very id is in the file.
        if (compareIds(item.id as string, newestKnown) <= 0) {
          walk.known();
          break walking;
        }
        if (!walk.accept(item)) continue;
        writer ??= await open();
        await writer.write(item);
        newCount++;
        walk.added(item);
        first ??= item;
        last = item;
        if (newCount >= count) break walking;
      }
    }

    if (!writer && oldKept === oldTotal && oldTotal <= count) {
      // Nothing new and nothing to drop: the file is not touched at all.
      return walk.outcome(oldFirst, oldLast, { count: oldTotal, newCount: 0, changed: false });
    }

    writer ??= await open();
    // Second pass: the old posts stream from the old file into the new one, after the new ones.
    // New posts are all newer than the old ones, so only the old file's own repeats collide.
    const written = new Set<string>();
    // Their bytes are copied, not serialised again, wherever the file has one item per line.
    for await (const { item, text } of readEntries(path)) {
      if (writer.written >= count) break;
      const id = item.id as string;
      if (written.has(id) || !walk.keeps(item)) continue;
      await writer.write(item, text);
      written.add(id);
      first ??= item;
      last = item;
    }
    const total = writer.written;
    const changed = await writer.commit(previousHash);
    return walk.outcome(first, last, { count: total, newCount, changed });
  } catch (error) {
    await writer?.discard();
    throw error;
  }
}
