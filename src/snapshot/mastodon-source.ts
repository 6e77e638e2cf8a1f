/**
 * Account statuses on Mastodon-API servers. The families differ where it matters
 * (docs/servers.md): Mastodon and Pleroma cap pages at 40; GoToSocial has no cap, needs a token,
 * filters after the query so pages come back short (or empty, with a `next` link), and writes its
 * own configured host into Link URLs; Pixelfed caps at 40, sends no Link header, lists only
 * top-level photo and video posts, and has no accounts/lookup. When the family is not known
 * (`platform: mastodon` skips detection), only what is right on all of them is asked for, and the
 * rest is done here.
 */
import * as z from 'zod/mini';
import { ServerError } from '../errors.ts';
import {
  parseJson,
  toServerError,
  type Http,
  type HttpRequest,
  type HttpResponse,
  type QueryValue,
} from '../http.ts';
import type { AccountRef } from './config.ts';
import { compareIds, VISIBILITIES, type Visibility } from './filter.ts';
import { pageItems } from './page.ts';
import type { Json, TimelineSource } from './source.ts';

export type MastodonFlavour = 'mastodon' | 'gotosocial' | 'pleroma' | 'pixelfed' | 'unknown';

/** Pages are bodies held in memory one at a time; 8 MiB fits 100 statuses with room to spare. */
export const LIST_MAX_BYTES = 8 * 1024 * 1024;
const PAGE_SIZE: Record<MastodonFlavour, number> = {
  mastodon: 40,
  pleroma: 40,
  // No server cap; 100 keeps each body (and memory) small while needing few requests.
  gotosocial: 100,
  // ApiV1Controller::accountStatusesById (Pixelfed v0.12.6) lowers a larger limit to 40.
  pixelfed: 40,
  // Within every cap; GoToSocial's default without a limit would be 30.
  unknown: 40,
};

const FLAVOURS: Record<string, MastodonFlavour> = {
  mastodon: 'mastodon',
  hometown: 'mastodon',
  'glitch-soc': 'mastodon',
  glitchsoc: 'mastodon',
  gotosocial: 'gotosocial',
  pleroma: 'pleroma',
  akkoma: 'pleroma',
  pixelfed: 'pixelfed',
};

/** Other software with a Mastodon API (Friendica, Takahe, …) is treated as unknown too. */
export function flavourOf(softwareName: string | undefined): MastodonFlavour {
  return FLAVOURS[softwareName?.toLowerCase() ?? ''] ?? 'unknown';
}

export interface MastodonSourceOptions {
  http: Http;
  instance: URL;
  flavour: MastodonFlavour;
  accessToken?: string;
  account: AccountRef;
  visibility: Visibility;
  excludeReplies: boolean;
  excludeReblogs: boolean;
  onlyMedia: boolean;
}

const accountSchema = z.looseObject({ id: z.string(), suspended: z.optional(z.unknown()) });

export function mastodonSource(options: MastodonSourceOptions): TimelineSource {
  const { http, flavour, accessToken } = options;
  const base = new URL(options.instance);
  if (!base.pathname.endsWith('/')) base.pathname += '/';
  const pageSize = PAGE_SIZE[flavour];

  async function get(path: string, query: Record<string, QueryValue>) {
    const request: HttpRequest = {
      method: 'GET',
      url: new URL(path, base),
      query,
      bearer: accessToken,
      maxBytes: LIST_MAX_BYTES,
    };
    try {
      const response = await http.send(request);
      return { response, items: pageItems(request, response) };
    } catch (error) {
      if (error instanceof ServerError && error.status === 401 && flavour === 'gotosocial') {
        throw new ServerError({
          server: error.server,
          endpoint: error.endpoint,
          status: error.status,
          code: error.code,
          hint: "GoToSocial lists statuses only for a token with 'read:statuses'; set 'access-token'",
        });
      }
      throw error;
    }
  }

  function filters(): Record<string, QueryValue> {
    const query: Record<string, QueryValue> = { limit: pageSize };
    // Only Mastodon's exclude_replies keeps every self-reply. Pleroma's drops the user's own
    // threads too, GoToSocial's keeps a self-reply only when it mentions nobody, and an unknown
    // server may be either; there, replies are filtered here.
    if (options.excludeReplies && flavour === 'mastodon') query.exclude_replies = 'true';
    // Pixelfed leaves replies and boosts out in its query whatever is asked (whereNull
    // in_reply_to_id, whereNull reblog_of_id): it is sent neither flag.
    if (options.excludeReblogs && flavour !== 'pixelfed') query.exclude_reblogs = 'true';
    if (options.onlyMedia) query.only_media = 'true';
    if (flavour === 'gotosocial' && options.visibility === 'public') query.only_public = 'true';
    if (flavour === 'pleroma') {
      const wider = VISIBILITIES.slice(VISIBILITIES.indexOf(options.visibility) + 1);
      if (wider.length) query['exclude_visibilities[]'] = wider;
    }
    return query;
  }

  /**
   * Short pages end the walk only where the server is known to fill pages in its query; anywhere
   * else (GoToSocial; Pixelfed, which drops after its query the posts it cannot load; a server
   * not known) only an empty page or a missing `next` link does.
   */
  const shortPageEnds = flavour === 'mastodon' || flavour === 'pleroma';

  /**
   * An id given as input and an empty first page: one request tells a typo or a suspension from
   * an account without posts. GoToSocial answers an account id it does not know with an empty
   * list, not a 404 (GetAccountStatuses' no-rows error becomes an empty page in StatusesGet,
   * v0.19.2); Mastodon lists a suspended account as empty but still shows the account, marked
   * `suspended: true` (Api::V1::AccountsController#show, REST::AccountSerializer; v4.5.15). A
   * token that may not read accounts (403) leaves the question open.
   */
  async function checkAccountExists(accountId: string): Promise<void> {
    const { account } = options;
    if (account.kind !== 'id' || (flavour !== 'gotosocial' && flavour !== 'mastodon')) return;
    const request: HttpRequest = {
      method: 'GET',
      url: new URL(`api/v1/accounts/${encodeURIComponent(accountId)}`, base),
      bearer: accessToken,
      accept: [403],
    };
    const response = await http.send(request).catch((error: unknown) => {
      if (error instanceof ServerError && error.status === 404) {
        throw new ServerError({
          server: error.server,
          endpoint: error.endpoint,
          status: error.status,
          code: error.code,
          description: error.description,
          hint: `No account has the id given in 'account' (${accountId}); ${flavour === 'gotosocial' ? 'GoToSocial lists an unknown account as empty' : 'check the id'}`,
        });
      }
      throw error;
    });
    if (response.status !== 200) return;
    const found = z.safeParse(accountSchema, parseJson(request, response, z.unknown()));
    if (found.success && found.data.suspended === true) throw suspended(request, response, account);
  }

  /**
   * Pixelfed has no /api/v1/accounts/lookup (routes/api.php, v0.12.6: the path is taken as an
   * account id and answers 404). Its own GET /api/v1.1/accounts/username/{username} finds local
   * names and known remote ones (`user@host`, stored as `@user@host`), answering `[]` for a name
   * it does not know (ApiV1Dot1Controller::accountUsernameToId).
   */
  async function pixelfedAccountId(username: string, host: string | undefined): Promise<string> {
    const local = !host || host === base.host.toLowerCase();
    const name = local ? username : `${username}@${host}`;
    const request: HttpRequest = {
      method: 'GET',
      url: new URL(`api/v1.1/accounts/username/${encodeURIComponent(name)}`, base),
      bearer: accessToken,
    };
    const response = await http.send(request);
    const found = z.safeParse(accountSchema, parseJson(request, response, z.unknown()));
    if (found.success) return found.data.id;
    throw toServerError(request, response, {
      description: `no account named ${name}`,
      hint: "Check 'account', or give the account's id",
    });
  }

  return {
    family: 'mastodon',
    pageSize,

    async resolveAccount(): Promise<string> {
      const { account } = options;
      if (account.kind === 'id') return account.id;
      let request: HttpRequest;
      if (account.kind === 'self') {
        request = {
          method: 'GET',
          url: new URL('api/v1/accounts/verify_credentials', base),
          bearer: accessToken,
        };
      } else if (flavour === 'pixelfed') {
        return pixelfedAccountId(account.username, account.host);
      } else {
        const local = !account.host || account.host === base.host.toLowerCase();
        request = {
          method: 'GET',
          url: new URL('api/v1/accounts/lookup', base),
          query: { acct: local ? account.username : `${account.username}@${account.host}` },
          bearer: accessToken,
        };
      }
      try {
        const { data, response } = await http.json(request, accountSchema);
        if (data.suspended === true) throw suspended(request, response, account);
        return data.id;
      } catch (error) {
        // Pleroma flake ids (and other servers' own id formats) look like names: a bare value no
        // name matched is tried as an id before giving up.
        const missing = error instanceof ServerError && error.status === 404;
        if (!missing || account.kind !== 'name' || account.host) throw error;
        const byId: HttpRequest = {
          method: 'GET',
          url: new URL(`api/v1/accounts/${encodeURIComponent(account.username)}`, base),
          bearer: accessToken,
        };
        try {
          return (await http.json(byId, accountSchema)).data.id;
        } catch (second) {
          // Not an id either: the name lookup's answer says more than the id's.
          throw second instanceof ServerError && second.status === 404 ? error : second;
        }
      }
    },

    authorOf(item: Json) {
      const author = item.account as Json | undefined;
      return { id: str(author?.id), username: str(author?.username) };
    },

    async *pagesDown(accountId: string) {
      const path = `api/v1/accounts/${encodeURIComponent(accountId)}/statuses`;
      let maxId: string | undefined;
      for (;;) {
        const { response, items } = await get(path, { ...filters(), max_id: maxId });
        yield items;
        const links = parseLinks(response.headers.link);
        let next: string | undefined;
        if (items.length === 0) {
          // GoToSocial links the next page whenever its query found statuses, also when its
          // visibility and mute filters then left none of them (StatusesGet, v0.19.2): only a
          // missing `next` ends the walk there. Elsewhere an empty page has no `next`.
          next = links?.get('next')?.searchParams.get('max_id') ?? undefined;
          if (!next) {
            if (maxId === undefined) await checkAccountExists(accountId);
            return;
          }
        } else if (links) {
          // Only the cursor is taken from the Link: its host may be the server's configured one,
          // not the address this step was given.
          const url = links.get('next');
          if (!url) return;
          next = url.searchParams.get('max_id') ?? lowestId(items);
        } else {
          if (shortPageEnds && items.length < pageSize) return;
          next = lowestId(items);
        }
        if (next === maxId) return;
        maxId = next;
      }
    },
  };
}

/**
 * Mastodon still finds a suspended account (REST::AccountSerializer marks it `suspended: true`)
 * but lists none of its statuses (Accounts::StatusesController answers [] for an unavailable
 * account; both v4.5.15): a full walk would write an empty file where an incremental one keeps
 * the old, so neither runs.
 */
function suspended(request: HttpRequest, response: HttpResponse, account: AccountRef): Error {
  const who = account.kind === 'name' ? `@${account.username}` : 'the account';
  return toServerError(request, response, {
    description: `${who} is suspended on this server`,
    hint: 'Mastodon lists no statuses for a suspended account, so the file is left as it is',
  });
}

export function str(value: unknown): string | undefined {
  return typeof value === 'string' ? value : undefined;
}

export function lowestId(items: Json[]): string {
  let low = String(items[0]?.id);
  for (const item of items) if (compareIds(String(item.id), low) < 0) low = String(item.id);
  return low;
}

/** RFC 8288 Link header → rel → URL; undefined when there is no Link header at all. */
export function parseLinks(header: string | string[] | undefined): Map<string, URL> | undefined {
  if (header === undefined) return undefined;
  const text = Array.isArray(header) ? header.join(', ') : header;
  const links = new Map<string, URL>();
  for (const match of text.matchAll(/<([^>]*)>\s*((?:;\s*[^;,]*)*)/g)) {
    const target = match[1] ?? '';
    const rel = /;\s*rel="?([^";,]+)"?/i.exec(match[2] ?? '')?.[1];
    if (!rel || !URL.canParse(target)) continue;
    for (const name of rel.trim().split(/\s+/)) links.set(name.toLowerCase(), new URL(target));
  }
  return links;
}
