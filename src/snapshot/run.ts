/**
 * Config → snapshot file. Finds the platform and account, walks the timeline (`full`) or only
 * what is newer than the file's newest item (`incremental`), filters every item client-side,
 * and writes the file atomically. Knows nothing of @actions/core.
 */
import { UnsupportedError } from '../errors.ts';
import { Http } from '../http.ts';
import { detectPlatform } from '../providers/detect.ts';
import type { Software } from '../providers/provider.ts';
import type { SnapshotConfig } from './config.ts';
import {
  compareIds,
  factsOf,
  rejectReason,
  type Family,
  type FilterOptions,
  type FilterReason,
} from './filter.ts';
import { flavourOf, mastodonSource } from './mastodon-source.ts';
import { misskeySource } from './misskey-source.ts';
import type { Json, TimelineSource } from './source.ts';
import { AtomicArrayWriter, firstItem, hashFile, readItems } from './store.ts';

export interface SnapshotRuntime {
  mask(secret: string): void;
  log(message: string): void;
  http?: Http;
}

export interface SnapshotResult {
  path: string;
  platform: Family;
  /** Server software, as detected (`mastodon`, `gotosocial`, `misskey`, …), when known. */
  software?: Software;
  accountId: string;
  mode: SnapshotConfig['mode'];
  /** Items in the file after the run. */
  count: number;
  /** Items in the file that were not in it before. */
  newCount: number;
  newestId: string;
  changed: boolean;
  /** Items received from the server, duplicates and filtered ones included. */
  fetched: number;
  filtered: Record<FilterReason, number>;
  requests: number;
  newestDate?: string;
  oldestDate?: string;
}

export async function runSnapshot(
  config: SnapshotConfig,
  runtime: SnapshotRuntime,
): Promise<SnapshotResult> {
  if (config.accessToken) runtime.mask(config.accessToken);
  const http =
    runtime.http ?? new Http({ timeoutMs: config.timeoutMs, maxAttempts: config.maxAttempts });
  const startRequests = http.requestCount;
  // Read before any request: a file that cannot be extended fails the step at once.
  const newest = config.mode === 'incremental' ? await firstItem(config.path) : undefined;

  let family: Family;
  let software: Software | undefined;
  if (config.platform === 'auto') {
    const detected = await detectPlatform(http, config.instance);
    if (detected.platform !== 'mastodon' && detected.platform !== 'misskey') {
      throw new UnsupportedError(
        `${config.instance.origin} is ${detected.platform}, which has no statuses to snapshot`,
      );
    }
    family = detected.platform;
    software = detected.software;
    runtime.log(`Detected ${software?.name ?? family} at ${config.instance.origin}`);
  } else {
    family = config.platform;
  }

  const common = {
    http,
    instance: config.instance,
    accessToken: config.accessToken,
    account: config.account,
    excludeReplies: config.excludeReplies,
    excludeReblogs: config.excludeReblogs,
    onlyMedia: config.onlyMedia,
  };
  const source: TimelineSource =
    family === 'misskey'
      ? misskeySource(common)
      : mastodonSource({
          ...common,
          flavour: flavourOf(software?.name),
          visibility: config.visibility,
        });

  // An incremental run reads the account from the file it extends: nothing new costs one request.
  const accountId = accountFromFile(config, source, newest) ?? (await source.resolveAccount());
  const filter: FilterOptions = {
    accountId,
    visibility: config.visibility,
    excludeReplies: config.excludeReplies,
    excludeReblogs: config.excludeReblogs,
    onlyMedia: config.onlyMedia,
  };
  const walk = new Walk(family, filter);
  const outcome = newest
    ? await incremental(config, source, accountId, walk)
    : await full(config, source, accountId, walk);

  return {
    path: config.path,
    platform: family,
    software,
    accountId,
    mode: config.mode,
    ...outcome,
    fetched: walk.fetched,
    filtered: walk.filtered,
    requests: http.requestCount - startRequests,
  };
}

/**
 * The account id from the newest item of the existing file, when the input names that same
 * account: the token's owner (the file is theirs), the same id, or the same local user name.
 */
function accountFromFile(
  config: SnapshotConfig,
  source: TimelineSource,
  newest: Json | undefined,
): string | undefined {
  if (!newest) return undefined;
  const author = source.authorOf(newest);
  const { account } = config;
  if (account.kind === 'self') return author.id;
  if (account.kind === 'id') return account.id;
  const local = !account.host || account.host === config.instance.host.toLowerCase();
  return local && author.username?.toLowerCase() === account.username.toLowerCase()
    ? author.id
    : undefined;
}

type Outcome = Pick<
  SnapshotResult,
  'count' | 'newCount' | 'newestId' | 'changed' | 'newestDate' | 'oldestDate'
>;

/** Counting, de-duplication and filtering shared by both modes. */
class Walk {
  fetched = 0;
  readonly filtered: Record<FilterReason, number> = {
    visibility: 0,
    reply: 0,
    reblog: 0,
    media: 0,
    duplicate: 0,
  };
  private readonly seen = new Set<string>();
  readonly family: Family;
  private readonly options: FilterOptions;

  constructor(family: Family, options: FilterOptions) {
    this.family = family;
    this.options = options;
  }

  /** True when the item goes into the file. */
  accept(item: Json, counted = true): boolean {
    if (counted) this.fetched++;
    const facts = factsOf(this.family, item);
    if (this.seen.has(facts.id)) {
      if (counted) this.filtered.duplicate++;
      return false;
    }
    const reason = rejectReason(facts, this.options);
    if (reason) {
      if (counted) this.filtered[reason]++;
      return false;
    }
    this.seen.add(facts.id);
    return true;
  }

  /** Whether an item already in the file passes today's filters; counts nothing. */
  keeps(item: Json): boolean {
    return rejectReason(factsOf(this.family, item), this.options) === undefined;
  }

  dateOf(item: Json): string | undefined {
    return factsOf(this.family, item).createdAt;
  }
}

async function full(
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
        if (!previousIds.has(item.id as string)) newCount++;
        if (writer.written >= config.count) break walking;
      }
    }
    const count = writer.written;
    const changed = await writer.commit(previousHash);
    return {
      count,
      newCount,
      newestId: (first?.id as string | undefined) ?? '',
      changed,
      newestDate: first && walk.dateOf(first),
      oldestDate: last && walk.dateOf(last),
    };
  } catch (error) {
    await writer.discard();
    throw error;
  }
}

async function incremental(
  config: SnapshotConfig,
  source: TimelineSource,
  accountId: string,
  walk: Walk,
): Promise<Outcome> {
  const { path, count } = config;
  // First pass over the file, streamed: proves it is whole before any request, finds the newest
  // id, and tells whether today's filters would drop anything from it.
  let oldTotal = 0;
  let oldKept = 0;
  let newestKnown: string | undefined;
  let oldLast: Json | undefined;
  let oldFirst: Json | undefined;
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

  let fresh: Json[] = [];
  const byNewest = (a: Json, b: Json) => compareIds(b.id as string, a.id as string);
  for await (const page of source.pagesUp(accountId, newestKnown)) {
    for (const item of page) {
      // A server that ignored the lower bound must not bring old items back as new.
      if (compareIds(item.id as string, newestKnown) <= 0) {
        walk.fetched++;
        walk.filtered.duplicate++;
        continue;
      }
      if (walk.accept(item)) fresh.push(item);
    }
    // Pages arrive oldest first; keep memory bounded by dropping what `count` will trim anyway.
    if (fresh.length > 2 * count) fresh = fresh.sort(byNewest).slice(0, count);
  }
  fresh.sort(byNewest);
  if (fresh.length > count) fresh = fresh.slice(0, count);

  if (fresh.length === 0 && oldKept === oldTotal && oldTotal <= count) {
    // Nothing new and nothing to drop: the file is not touched at all.
    return {
      count: oldTotal,
      newCount: 0,
      newestId: (oldFirst?.id as string | undefined) ?? '',
      changed: false,
      newestDate: oldFirst && walk.dateOf(oldFirst),
      oldestDate: oldLast && walk.dateOf(oldLast),
    };
  }

  const previousHash = await hashFile(path);
  const writer = await AtomicArrayWriter.open(path);
  try {
    const written = new Set<string>();
    let last: Json | undefined;
    for (const item of fresh) {
      await writer.write(item);
      written.add(item.id as string);
      last = item;
    }
    // Second pass: the old items stream from the old file into the new one.
    for await (const item of readItems(path)) {
      if (writer.written >= count) break;
      const id = item.id as string;
      if (written.has(id) || !walk.keeps(item)) continue;
      await writer.write(item);
      written.add(id);
      last = item;
    }
    const first = fresh[0] ?? oldFirst;
    const total = writer.written;
    return {
      count: total,
      newCount: fresh.length,
      newestId: (first?.id as string | undefined) ?? '',
      newestDate: first && walk.dateOf(first),
      oldestDate: last && walk.dateOf(last),
      changed: await writer.commit(previousHash),
    };
  } catch (error) {
    await writer.discard();
    throw error;
  }
}
