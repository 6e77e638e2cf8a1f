/**
 * `POST /api/users/notes` as Misskey and Sharkey answer it, for the loopback timeline server: which
 * notes each path returns, in which order, and what each filter really drops. Two paths exist and a
 * walk meets both: the Redis "fanout" lists hold the newest notes of each kind (capped), and older
 * pages come from the database, whose filters differ from the fanout filters.
 *
 * Sources, file by file:
 * - Misskey 2025.10.2 (release commit 1f29fb4e40, read from the yamisskey-dev/yamisskey mirror):
 *   packages/backend/src/server/api/endpoints/users/notes.ts,
 *   packages/backend/src/core/FanoutTimelineEndpointService.ts (getMiNotes),
 *   packages/backend/src/core/FanoutTimelineService.ts (getMulti),
 *   packages/backend/src/core/NoteCreateService.ts (pushToTl),
 *   packages/backend/src/misc/is-reply.ts, is-renote.ts (isQuote),
 *   packages/backend/src/models/Meta.ts (enableFanoutTimeline true, perLocalUserUserTimelineCacheMax 300),
 *   packages/backend/src/server/api/endpoint-base.ts (ajv: INVALID_PARAM with info {param, reason}).
 * - Sharkey develop 3d13024828 (2025-12-06, version 2025.5.2-dev, read from the Nexirift/Sharkey
 *   mirror): the same files, plus core/QueryService.ts (andIsNotRenote,
 *   generateExcludedRepliesQueryForNotes), server/SkRateLimiterService.ts and
 *   misc/rate-limit-utils.ts (the leaky bucket and its headers), models/Meta.ts (cache 800).
 *
 * Erasable TypeScript importing nothing: Node 24 runs it directly (benchmark, demo).
 */

export type MisskeyFork = 'misskey' | 'sharkey';

/** What the filters read from a note, as the database row has it. */
export interface NoteRow {
  id: string;
  visibility: 'public' | 'home' | 'followers' | 'specified';
  /** replyId is set. */
  reply: boolean;
  /** A reply to another user (is-reply.ts: replyUserId !== userId). */
  replyToOther: boolean;
  /** renoteId is set. */
  renote: boolean;
  text: boolean;
  cw: boolean;
  poll: boolean;
  files: boolean;
}

export interface NotesParams {
  userId: string;
  limit: number;
  untilId?: string;
  sinceId?: string;
  withReplies: boolean;
  withRenotes: boolean;
  withFiles: boolean;
  withChannelNotes: boolean;
  /** Sharkey only (ignored by Misskey, whose ajv schema allows unknown keys). */
  withQuotes: boolean;
  withNonPublic: boolean;
}

export interface ApiFailure {
  status: number;
  code: string;
  message: string;
  id: string;
  kind: 'client' | 'server' | 'permission';
  info?: Record<string, unknown>;
}

export interface UserNotesOptions {
  fork?: MisskeyFork;
  /** Meta.enableFanoutTimeline: true by default on both. */
  fanout?: boolean;
  /** Meta.perLocalUserUserTimelineCacheMax: 300 on Misskey, 800 on Sharkey. */
  cacheMax?: number;
}

/** ajv's `misskey:id` format (endpoint-base.ts). */
const MISSKEY_ID = /^[a-zA-Z0-9]+$/;

function invalidParam(param: string, reason: string): ApiFailure {
  // endpoint-base.ts: the first ajv error, as its schemaPath and message.
  return {
    status: 400,
    code: 'INVALID_PARAM',
    message: 'Invalid param.',
    id: '3d81ceae-475f-4600-b2a8-2bc116157532',
    kind: 'client',
    info: { param, reason },
  };
}

/** The body checked as users/notes' paramDef is, with its defaults filled in (ajv useDefaults). */
export function readNotesParams(body: Record<string, unknown>): NotesParams | ApiFailure {
  if (typeof body.userId !== 'string') {
    return body.userId === undefined
      ? invalidParam('#/required', "must have required property 'userId'")
      : invalidParam('#/properties/userId/type', 'must be string');
  }
  for (const key of ['userId', 'untilId', 'sinceId'] as const) {
    const value = body[key];
    if (value === undefined) continue;
    if (typeof value !== 'string')
      return invalidParam(`#/properties/${key}/type`, 'must be string');
    if (!MISSKEY_ID.test(value)) {
      return invalidParam(`#/properties/${key}/format`, 'must match format "misskey:id"');
    }
  }
  const limit = body.limit ?? 10;
  if (typeof limit !== 'number' || !Number.isInteger(limit)) {
    return invalidParam('#/properties/limit/type', 'must be integer');
  }
  if (limit < 1) return invalidParam('#/properties/limit/minimum', 'must be >= 1');
  if (limit > 100) return invalidParam('#/properties/limit/maximum', 'must be <= 100');
  const flag = (key: string, fallback: boolean): boolean | ApiFailure => {
    const value = body[key] ?? fallback;
    return typeof value === 'boolean'
      ? value
      : invalidParam(`#/properties/${key}/type`, 'must be boolean');
  };
  const flags: Record<string, boolean> = {};
  const defaults = {
    withReplies: false,
    withRenotes: true,
    withFiles: false,
    withChannelNotes: false,
    withQuotes: true,
    withNonPublic: true,
  };
  for (const [key, fallback] of Object.entries(defaults)) {
    const value = flag(key, fallback);
    if (typeof value !== 'boolean') return value;
    flags[key] = value;
  }
  return {
    userId: body.userId,
    limit,
    untilId: body.untilId as string | undefined,
    sinceId: body.sinceId as string | undefined,
    withReplies: flags.withReplies ?? false,
    withRenotes: flags.withRenotes ?? true,
    withFiles: flags.withFiles ?? false,
    withChannelNotes: flags.withChannelNotes ?? false,
    withQuotes: flags.withQuotes ?? true,
    withNonPublic: flags.withNonPublic ?? true,
  };
}

/** is-renote.ts: a renote with text, a CW, a reply, a poll or files is a quote. */
function isQuote(row: NoteRow): boolean {
  return row.text || row.cw || row.reply || row.poll || row.files;
}

function byIdDescending(a: { id: string }, b: { id: string }): number {
  return a.id > b.id ? -1 : 1;
}

export class MisskeyUserNotes {
  readonly fork: MisskeyFork;
  readonly fanout: boolean;
  readonly cacheMax: number;

  constructor(options: UserNotesOptions = {}) {
    this.fork = options.fork ?? 'misskey';
    this.fanout = options.fanout ?? true;
    this.cacheMax = options.cacheMax ?? (this.fork === 'sharkey' ? 800 : 300);
  }

  /**
   * The notes the endpoint answers, in its order. `rows` are the author's notes, oldest first;
   * `owner` says whether the caller is the author (who sees every visibility of their own notes).
   */
  select(rows: readonly NoteRow[], ps: NotesParams, owner: boolean): NoteRow[] | ApiFailure {
    // users/notes.ts: refused before anything else is looked at.
    if (ps.withReplies && ps.withFiles) {
      return {
        status: 400,
        code: 'BOTH_WITH_REPLIES_AND_WITH_FILES',
        message: 'Specifying both withReplies and withFiles is not supported',
        id: '91c8cb9f-36ed-46e7-9ca2-7df96ed6e222',
        kind: 'client',
      };
    }
    // No lookup of userId anywhere in users/notes.ts: an unknown user simply has no notes.
    if (!this.fanout) return this.fromDb(rows, ps, owner, ps.untilId, ps.sinceId, ps.limit);
    return this.fromFanout(rows, ps, owner);
  }

  /** NoteCreateService.pushToTl: which per-user Redis lists a note is pushed to, newest kept. */
  private redisLists(rows: readonly NoteRow[], ps: NotesParams): string[][] {
    const newest = (predicate: (row: NoteRow) => boolean, max: number) =>
      rows
        .filter(predicate)
        .slice(-max)
        .map((row) => row.id);
    const lists = [
      ps.withFiles
        ? // userTimelineWithFiles: non-replies with files, half the cache.
          newest((row) => !row.replyToOther && row.files, this.cacheMax / 2)
        : // userTimeline: everything but replies to others (self-replies included).
          newest((row) => !row.replyToOther, this.cacheMax),
    ];
    // userTimelineWithReplies: replies to others.
    if (ps.withReplies) lists.push(newest((row) => row.replyToOther, this.cacheMax));
    return lists;
  }

  /** The filter FanoutTimelineEndpointService applies to notes read from the Redis lists. */
  private fanoutFilter(ps: NotesParams, owner: boolean): (row: NoteRow) => boolean {
    return (row) => {
      if (this.fork === 'sharkey') {
        // Sharkey's users/notes: excludeReplies when !withChannelNotes && !withReplies, and its
        // filter spares the caller's own notes (note.userId !== me.id && isReply(...)).
        if (!ps.withChannelNotes && !ps.withReplies && !owner && row.replyToOther) return false;
        if (!ps.withChannelNotes && ps.withFiles && !row.files) return false;
        if (!ps.withQuotes && row.renote && isQuote(row)) return false;
        if (!ps.withNonPublic && row.visibility !== 'public') return false;
      }
      // Misskey's users/notes asks excludeReplies only together with withChannelNotes.
      if (this.fork === 'misskey' && ps.withChannelNotes && !ps.withReplies && row.replyToOther) {
        return false;
      }
      // excludePureRenotes: !isRenote || isQuote.
      if (!ps.withRenotes && row.renote && !isQuote(row)) return false;
      // noteFilter: specified and followers notes only for their author (or addressees/followers).
      if (!owner && (row.visibility === 'specified' || row.visibility === 'followers')) {
        return false;
      }
      return true;
    };
  }

  /** FanoutTimelineEndpointService.getMiNotes with allowPartial false and the DB fallback on. */
  private fromFanout(rows: readonly NoteRow[], ps: NotesParams, owner: boolean): NoteRow[] {
    const { untilId, sinceId, limit } = ps;
    const ascending = sinceId !== undefined && untilId === undefined;
    const compare = ascending ? (a: string, b: string) => (a < b ? -1 : 1) : byIdDescendingIds;
    const lists = this.redisLists(rows, ps).map((ids) =>
      ids.filter(
        (id) => (untilId === undefined || id < untilId) && (sinceId === undefined || id > sinceId),
      ),
    );
    const ids = Array.from(new Set(lists.flat())).sort(compare);
    const oldest = ascending ? ids[0] : ids[ids.length - 1];
    if (ids.length === 0 || (sinceId !== undefined && oldest !== undefined && sinceId < oldest)) {
      return this.fromDb(rows, ps, owner, untilId, sinceId, limit);
    }
    const byId = new Map(rows.map((row) => [row.id, row]));
    const filter = this.fanoutFilter(ps, owner);
    const found: NoteRow[] = [];
    let read = 0;
    let lastRate = 1;
    let chunk: string[] = [];
    while (ids.length - read !== 0) {
      const remaining = limit - found.length;
      const count = Math.ceil(remaining * Math.min(1.1 / lastRate, 3));
      chunk = ids.slice(read, read + count);
      read += chunk.length;
      // getAndFilterFromDb: ids that are gone from the database (deleted notes) drop out here.
      const got = chunk
        .map((id) => byId.get(id))
        .filter((row): row is NoteRow => row !== undefined && filter(row))
        .sort((a, b) => compare(a.id, b.id));
      found.push(...got);
      lastRate = got.length / chunk.length;
      if (found.length >= limit) return found.slice(0, limit);
    }
    // What Redis could not fill comes from the database, below the last id read.
    const last = chunk[chunk.length - 1];
    const rest = ascending
      ? this.fromDb(rows, ps, owner, untilId, last, limit - found.length)
      : this.fromDb(rows, ps, owner, last, sinceId, limit - found.length);
    return [...found, ...rest];
  }

  /** users/notes.ts getFromDb, with QueryService.makePaginationQuery's order. */
  private fromDb(
    rows: readonly NoteRow[],
    ps: NotesParams,
    owner: boolean,
    untilId: string | undefined,
    sinceId: string | undefined,
    limit: number,
  ): NoteRow[] {
    const kept = rows.filter((row) => {
      if (untilId !== undefined && !(row.id < untilId)) return false;
      if (sinceId !== undefined && !(row.id > sinceId)) return false;
      // generateVisibilityQuery: public and home for everyone, the rest for the author.
      if (!owner && (row.visibility === 'specified' || row.visibility === 'followers')) {
        return false;
      }
      if (ps.withFiles && !row.files) return false;
      if (this.fork === 'misskey') {
        // Misskey's withRenotes: false keeps a renote only with text, files or a poll; a renote
        // with only a CW (or a reply) is dropped here although isQuote calls it a quote. And no
        // reply filter at all: withReplies: false still returns replies to others.
        if (!ps.withRenotes && row.renote && !row.text && !row.files && !row.poll) return false;
        return true;
      }
      // Sharkey: andIsNotRenote / andIsNotQuote use the whole isQuote rule.
      if (!ps.withRenotes && !ps.withQuotes && row.renote) return false;
      if (!ps.withRenotes && row.renote && !isQuote(row)) return false;
      if (!ps.withQuotes && row.renote && isQuote(row)) return false;
      // generateExcludedRepliesQueryForNotes: not a reply, a self-reply, or the caller's own.
      if (!ps.withReplies && row.replyToOther && !owner) return false;
      if (!ps.withNonPublic && row.visibility !== 'public') return false;
      return true;
    });
    const ascending = sinceId !== undefined && untilId === undefined;
    const ordered = ascending ? kept : [...kept].sort(byIdDescending);
    return ordered.slice(0, limit);
  }
}

function byIdDescendingIds(a: string, b: string): number {
  return a > b ? -1 : 1;
}

/** The state and answer of one Sharkey leaky bucket (SkRateLimiterService.limitBucket). */
export interface LimitInfo {
  blocked: boolean;
  remaining: number;
  resetSec: number;
  resetMs: number;
  fullResetSec: number;
  fullResetMs: number;
}

/**
 * Sharkey's rate limit for one endpoint and actor. users/notes declares
 * `{type: 'bucket', size: 20, dripRate: 250}`: 20 calls at once, then one more every 250 ms.
 * A blocked call does not fill the bucket.
 */
export class LeakyBucket {
  private counter = 0;
  private timestamp = 0;
  private readonly size: number;
  private readonly dripRate: number;
  private readonly dripSize: number;

  constructor(size: number, dripRate: number, dripSize = 1) {
    this.size = size;
    this.dripRate = dripRate;
    this.dripSize = dripSize;
  }

  take(now = Date.now()): LimitInfo {
    const { size, dripRate, dripSize } = this;
    const drips = Math.floor((now - this.timestamp) / dripRate) * dripSize;
    const deltaCounter = Math.min(drips, this.counter);
    if (deltaCounter > 0) {
      this.timestamp += drips * dripRate;
      this.counter -= deltaCounter;
    }
    const blocked = this.counter >= size;
    if (!blocked) {
      if (this.timestamp === 0) this.timestamp = now;
      this.counter++;
    }
    const overflow = Math.max(this.counter + 1 - size, 0);
    const dripsNeeded = Math.ceil(overflow / dripSize);
    const resetMs = Math.max(dripRate * dripsNeeded - (now - this.timestamp), 0);
    const fullResetMs = Math.ceil(this.counter / dripSize) * dripRate;
    return {
      blocked,
      remaining: Math.max(size - this.counter, 0),
      resetSec: Math.ceil(resetMs / 1000),
      resetMs,
      fullResetSec: Math.ceil(fullResetMs / 1000),
      fullResetMs,
    };
  }
}

/** rate-limit-utils.ts sendRateLimitHeaders: sent on every answer, blocked or not. */
export function rateLimitHeaders(info: LimitInfo): Record<string, string> {
  const headers: Record<string, string> = {
    'x-ratelimit-clear': (info.fullResetMs / 1000).toFixed(3),
    'x-ratelimit-remaining': String(info.remaining),
  };
  if (info.blocked) {
    headers['retry-after'] = String(info.resetSec);
    headers['x-ratelimit-reset'] = (info.resetMs / 1000).toFixed(3);
  }
  return headers;
}
