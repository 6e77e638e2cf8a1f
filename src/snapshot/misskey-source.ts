/**
 * A user's notes on Misskey and its forks: `POST /api/users/notes`, newest first, paged with
 * `untilId`. Facts from the endpoint's source (Misskey 2025.10.2, Sharkey develop 2025-12): `limit`
 * above 100 is refused (400 INVALID_PARAM), not capped.
 *
 * The endpoint answers from two places. The newest notes come from per-user Redis lists, one per
 * kind (notes, replies to others, notes with files), each cut to its own length; older ones from
 * one database query. Merging lists of different depths skips notes (Misskey issue #13488): asked
 * with `withReplies`, a walk meets only replies between the shallower list's end and the deeper
 * one's. Every request here therefore carries both bounds, `sinceId` below any id and `untilId`
 * (above any id on the first page): a `sinceId` older than the oldest listed id sends the whole
 * request to the database (FanoutTimelineEndpointService.getMiNotes), whose one query skips
 * nothing, and with both bounds every path answers newest first.
 *
 * The database query filters differently from the Redis path (Misskey's ignores
 * `withReplies: false` and, under `withRenotes: false`, drops quotes that have only a content
 * warning), so the server is asked to filter only where every path drops the same notes, and
 * this side drops the rest. Only an empty page ends the walk.
 */
import * as z from 'zod/mini';
import { ServerError } from '../errors.ts';
import { type Http, type HttpRequest } from '../http.ts';
import type { AccountRef } from './config.ts';
import { compareIds } from './filter.ts';
import { LIST_MAX_BYTES, lowestId, str } from './mastodon-source.ts';
import { pageItems } from './page.ts';
import type { Json, TimelineSource } from './source.ts';

const PAGE_SIZE = 100;
/** ajv's `misskey:id` format (endpoint-base.ts). */
const MISSKEY_ID = /^[a-zA-Z0-9]+$/;
/**
 * Bounds below and above every id any Misskey id scheme makes (aid, aidx, meid, meidg, ulid,
 * objectid: letters and digits, at most 26 characters), as text compares them.
 */
const FLOOR_ID = '0';
const CEILING_ID = 'z'.repeat(32);

export interface MisskeySourceOptions {
  http: Http;
  instance: URL;
  accessToken?: string;
  account: AccountRef;
  excludeReplies: boolean;
  excludeReblogs: boolean;
  onlyMedia: boolean;
}

const userSchema = z.looseObject({ id: z.string() });

export function misskeySource(options: MisskeySourceOptions): TimelineSource {
  const { http, accessToken } = options;
  const base = new URL(options.instance);
  if (!base.pathname.endsWith('/')) base.pathname += '/';

  function request(endpoint: string, json: Json): HttpRequest {
    // Reads are safe to repeat, though Misskey's API is all POST.
    return {
      method: 'POST',
      url: new URL(`api/${endpoint}`, base),
      json,
      bearer: accessToken,
      idempotent: true,
      maxBytes: LIST_MAX_BYTES,
    };
  }

  async function notes(json: Json): Promise<Json[]> {
    const req = request('users/notes', json);
    const response = await http.send(req);
    return pageItems(req, response);
  }

  function filters(userId: string): Json {
    // withReplies and withFiles together are refused (400 BOTH_WITH_REPLIES_AND_WITH_FILES);
    // when both are wanted, media is filtered here instead. Replies to others are dropped here
    // too: withReplies: false keeps them on Misskey's database path, and on Sharkey for the
    // token's own notes. Renotes are never dropped by the server: its database path also drops
    // quotes with only a CW, which the Redis path keeps, so a full and an incremental walk would
    // disagree about them; this side drops pure renotes by Misskey's own isQuote rule.
    const withFiles = options.onlyMedia && options.excludeReplies;
    return {
      userId,
      limit: PAGE_SIZE,
      withReplies: !options.excludeReplies,
      withRenotes: true,
      withFiles,
    };
  }

  return {
    family: 'misskey',
    pageSize: PAGE_SIZE,

    async resolveAccount(): Promise<string> {
      const { account } = options;
      if (account.kind === 'id') return account.id;
      if (account.kind === 'self') {
        try {
          return (await http.json(request('i', {}), userSchema)).data.id;
        } catch (error) {
          // `i` needs the read:account permission (endpoints/i.ts kind); users/notes needs none.
          if (!(error instanceof ServerError && error.code === 'PERMISSION_DENIED')) throw error;
          throw new ServerError({
            server: error.server,
            endpoint: error.endpoint,
            status: error.status,
            code: error.code,
            hint: "The token lacks read:account, so it cannot name its owner; set 'account' to @user",
          });
        }
      }
      const local = !account.host || account.host === base.host.toLowerCase();
      try {
        const body = { username: account.username, host: local ? null : account.host };
        return (await http.json(request('users/show', body), userSchema)).data.id;
      } catch (error) {
        // A bare Misskey id looks like a user name: try it as an id before giving up, if it can
        // be one (users/show checks the `misskey:id` format, letters and digits, and answers a
        // name with `_` with 400 INVALID_PARAM, which would hide the real NO_SUCH_USER).
        const missing = error instanceof ServerError && error.code === 'NO_SUCH_USER';
        if (!missing || account.host || !MISSKEY_ID.test(account.username)) throw error;
        return (await http.json(request('users/show', { userId: account.username }), userSchema))
          .data.id;
      }
    },

    authorOf(item: Json) {
      return { id: str(item.userId), username: str((item.user as Json | undefined)?.username) };
    },

    async *pagesDown(userId: string) {
      let untilId: string | undefined;
      for (;;) {
        const items = await notes({
          ...filters(userId),
          sinceId: FLOOR_ID,
          untilId: untilId ?? CEILING_ID,
        });
        yield items;
        if (items.length === 0) return;
        const next = lowestId(items);
        if (untilId !== undefined && compareIds(next, untilId) >= 0) return;
        untilId = next;
      }
    },
  };
}
