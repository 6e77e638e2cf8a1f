/**
 * `mode: incremental`: the same downward walk as `full`, from the top, ending at the first post
 * the file already holds (any of them: the newest may have been deleted since) or at `count`
 * new ones. New posts stream into the new file first, then the old file's posts follow, so
 * nothing new costs one request and many new posts cost no more than a full run.
 */
import type { SnapshotConfig } from './config.ts';
import { compareIds } from './filter.ts';
import type { Json, TimelineSource } from './source.ts';
import { AtomicArrayWriter, hashFile, readItems } from './store.ts';
import { full, type Outcome, type Walk } from './walk.ts';

export async function incremental(
  config: SnapshotConfig,
  source: TimelineSource,
  accountId: string,
  walk: Walk,
): Promise<Outcome> {
  const { path, count } = config;
  // First pass, streamed, before any request: proves the file whole, keeps its ids (only ids:
  // a file of 100 000 posts must not be held in memory) and tells whether today's filters would
  // drop anything from it.
  const known = new Set<string>();
  let newestKnown: string | undefined;
  let oldTotal = 0;
  let oldKept = 0;
  let oldFirst: Json | undefined;
  let oldLast: Json | undefined;
  for await (const item of readItems(path)) {
    const id = item.id as string;
    oldTotal++;
    known.add(id);
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
        const id = item.id as string;
        if (known.has(id)) {
          walk.known();
          break walking;
        }
        if (!walk.accept(item)) continue;
        // Incremental runs add only what is newer than the file: an older post the file lacks
        // (filters were widened since) would land above newer ones and break the order.
        if (compareIds(id, newestKnown) <= 0) {
          walk.filtered.duplicate++;
          continue;
        }
        writer ??= await open();
        await writer.write(item);
        newCount++;
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
    // New posts are never in `known`, so only the old file's own repeats can collide here.
    const written = new Set<string>();
    for await (const item of readItems(path)) {
      if (writer.written >= count) break;
      const id = item.id as string;
      if (written.has(id) || !walk.keeps(item)) continue;
      await writer.write(item);
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
