/**
 * What both modes share: counting, de-duplication and filtering of the items a walk meets, and
 * the full walk itself (newest first from the top, written as it arrives).
 */
import type { SnapshotConfig } from './config.ts';
import {
  factsOf,
  rejectReason,
  type Family,
  type FilterOptions,
  type FilterReason,
} from './filter.ts';
import { thumbnailsOf, type Thumbnail } from './media/attachments.ts';
import type { Json, TimelineSource } from './source.ts';
import { AtomicArrayWriter, hashFile, readItems } from './store.ts';

/** The job summary's strip of the new posts' previews holds at most this many. */
export const MAX_THUMBNAILS = 12;

/** What a walk tells the step about the file it left. */
export interface Outcome {
  /** Items in the file after the run. */
  count: number;
  /** Items in the file that were not in it before. */
  newCount: number;
  newestId: string;
  changed: boolean;
  newestDate?: string;
  oldestDate?: string;
}

export class Walk {
  /** Items looked at, duplicates and filtered ones included. */
  fetched = 0;
  readonly filtered: Record<FilterReason, number> = {
    visibility: 0,
    reply: 0,
    reblog: 0,
    media: 0,
    duplicate: 0,
  };
  // Ids only: a walk of 100 000 items must not hold 100 000 objects.
  private readonly seen = new Set<string>();
  readonly family: Family;
  private readonly options: FilterOptions;

  constructor(family: Family, options: FilterOptions) {
    this.family = family;
    this.options = options;
  }

  /** True when the item goes into the file. */
  accept(item: Json): boolean {
    this.fetched++;
    const facts = factsOf(this.family, item);
    if (this.seen.has(facts.id)) {
      this.filtered.duplicate++;
      return false;
    }
    const reason = rejectReason(facts, this.options);
    if (reason) {
      this.filtered[reason]++;
      return false;
    }
    this.seen.add(facts.id);
    return true;
  }

  /** The server's preview pictures of the new posts, newest first, for the job summary. */
  readonly thumbnails: Thumbnail[] = [];

  /** An item that was not in the file before this run. */
  added(item: Json): void {
    for (const thumbnail of thumbnailsOf(this.family, item)) {
      if (this.thumbnails.length >= MAX_THUMBNAILS) return;
      this.thumbnails.push(thumbnail);
    }
  }

  /** An item met that the file already holds. */
  known(): void {
    this.fetched++;
    this.filtered.duplicate++;
  }

  /** Whether an item already in the file passes today's filters; counts nothing. */
  keeps(item: Json): boolean {
    return rejectReason(factsOf(this.family, item), this.options) === undefined;
  }

  dateOf(item: Json): string | undefined {
    return factsOf(this.family, item).createdAt;
  }

  outcome(
    first: Json | undefined,
    last: Json | undefined,
    counts: Pick<Outcome, 'count' | 'newCount' | 'changed'>,
  ): Outcome {
    return {
      ...counts,
      newestId: (first?.id as string | undefined) ?? '',
      newestDate: first && this.dateOf(first),
      oldestDate: last && this.dateOf(last),
    };
  }
}

export async function full(
  config: SnapshotConfig,
  source: TimelineSource,
  accountId: string,
  walk: Walk,
): Promise<Outcome> {
  // Only what `new-count` and `changed` need from the old file: its ids and its hash.
  const previousHash = await hashFile(config.path);
  const previousIds = new Set<string>();
  try {
    for await (const item of readItems(config.path)) previousIds.add(item.id as string);
  } catch {
    // A file `full` replaces may be unreadable; then everything in the new one is new.
    previousIds.clear();
  }
  const writer = await AtomicArrayWriter.open(config.path);
  let newCount = 0;
  let first: Json | undefined;
  let last: Json | undefined;
  try {
    walking: for await (const page of source.pagesDown(accountId)) {
      for (const item of page) {
        if (!walk.accept(item)) continue;
        await writer.write(item);
        first ??= item;
        last = item;
        if (!previousIds.has(item.id as string)) {
          newCount++;
          walk.added(item);
        }
        if (writer.written >= config.count) break walking;
      }
    }
    const count = writer.written;
    const changed = await writer.commit(previousHash);
    return walk.outcome(first, last, { count, newCount, changed });
  } catch (error) {
    await writer.discard();
    throw error;
  }
}
