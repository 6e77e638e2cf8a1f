/**
 * A user's notes on Misskey and its forks: `POST /api/users/notes`, newest first, paged with
 * `untilId`. Facts from Misskey's own endpoint source: `limit` above 100 is rejected (400), not
 * capped; the Redis "fanout" path filters after slicing, so a short page does not mean the end.
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
    // withReplies and withFiles together are refused (400); when both are wanted, media is
    // filtered here instead. Replies to others are dropped here too, whatever the server did.
    const withFiles = options.onlyMedia && options.excludeReplies;
    return {
      userId,
      limit: PAGE_SIZE,
      withReplies: !options.excludeReplies,
      withRenotes: !options.excludeReblogs,
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
        return (await http.json(request('i', {}), userSchema)).data.id;
      }
      const local = !account.host || account.host === base.host.toLowerCase();
      try {
        const body = { username: account.username, host: local ? null : account.host };
        return (await http.json(request('users/show', body), userSchema)).data.id;
      } catch (error) {
        // A bare Misskey id looks like a user name: try it as an id before giving up.
        const missing = error instanceof ServerError && error.code === 'NO_SUCH_USER';
        if (!missing || account.host) throw error;
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
        const items = await notes({ ...filters(userId), untilId });
        yield items;
        if (items.length === 0) return;
        const next = lowestId(items);
        if (untilId !== undefined && compareIds(next, untilId) >= 0) return;
        untilId = next;
      }
    },
  };
}
