/**
 * Whose a token is on a Mastodon-API server, and whether the server still accepts it, read from
 * how each family answers `GET /api/v1/accounts/verify_credentials` (docs/servers.md):
 *
 * - Mastodon (v4.5.15) checks, in this order: an authenticated user when unauthenticated API
 *   access is off (401 "This method requires an authenticated user"), a suspended account (403
 *   "Your login is currently disabled"), the token and its scopes (401 with Doorkeeper's reason,
 *   403 "This action is outside the authorized scopes"), then a usable user (422 for an app token,
 *   403 "Your login is …" for an unconfirmed, unapproved or disabled one). Doorkeeper's
 *   `/oauth/token/info` then tells app tokens from user tokens and holds the token's own scopes;
 *   `/api/v1/apps/verify_credentials` only names the app (its scopes are the app's registered ones,
 *   never the token's).
 * - Pleroma and Akkoma answer 403 "Invalid credentials." for any token without an active user
 *   (app tokens, unknown or revoked tokens), and 403 "Insufficient permissions: read:accounts."
 *   for a user token without that scope. Their apps/verify_credentials answers 200 only for a live
 *   token of an app or an active user.
 * - GoToSocial answers 401 "… user not supplied …" for an app token.
 */
import * as z from 'zod/mini';
import { oneLine, ServerError } from '../errors.ts';
import { parseJson, type HttpRequest, type HttpResponse } from '../http.ts';
import type { Identity, ProviderContext } from './provider.ts';

export type TokenCheck =
  { valid: true; identity: Identity; scope?: string } | { valid: false; reason: string };

const account = z.object({
  // Ids are strings on every server; a number here would already have lost precision.
  id: z.string(),
  username: z.string(),
  url: z.optional(z.nullable(z.string())),
});

const application = z.object({ name: z.string() });

/** Doorkeeper's AccessToken#as_json: `scope` is the token's own, the owner null for app tokens. */
const tokenInfo = z.object({
  resource_owner_id: z.nullable(z.union([z.number(), z.string()])),
  scope: z.union([z.array(z.string()), z.string()]),
});

const UNKNOWN = 'the server does not accept it (revoked or unknown)';

export async function checkToken(ctx: ProviderContext, token: string): Promise<TokenCheck> {
  const request: HttpRequest = {
    method: 'GET',
    url: apiUrl(ctx, 'api/v1/accounts/verify_credentials'),
    bearer: token,
    accept: [401, 403, 422],
  };
  const response = await ctx.http.send(request);
  if (response.status === 200) {
    const data = parseJson(request, response, account);
    return {
      valid: true,
      identity: { id: data.id, username: data.username, url: data.url ?? undefined, kind: 'user' },
    };
  }
  const message = errorText(response);

  if (response.status === 401) {
    // GoToSocial found the token and its app, then looked for a user.
    if (/user not supplied/i.test(message)) {
      return { valid: true, identity: { id: '', username: '', kind: 'app' } };
    }
    // Mastodon without unauthenticated API access answers this before it looks at the token, for
    // app tokens and unknown ones alike, and apps/verify_credentials the same way.
    if (/requires an authenticated user/i.test(message)) {
      return fromTokenInfo(ctx, token, { appName: false, response, message });
    }
    return { valid: false, reason: message ? `the server refused it: ${message}` : UNKNOWN };
  }

  if (response.status === 403) {
    // Mastodon's require_not_suspended! and require_user!: the token stands, its account may not
    // use the API (suspended, unconfirmed, awaiting approval, disabled).
    if (/^your login is/i.test(message)) {
      return { valid: false, reason: `the server refuses its account: ${message}` };
    }
    // Pleroma and Akkoma: no active user behind the token.
    if (/^invalid credentials/i.test(message)) {
      const name = await appName(ctx, token);
      return name === undefined
        ? {
            valid: false,
            reason:
              'the server does not accept it (revoked or unknown, or its account is not active)',
          }
        : { valid: true, identity: { id: '', username: name, kind: 'app' } };
    }
    // Pleroma and Akkoma check scopes after the user: a user token without read:accounts.
    if (/^insufficient permissions/i.test(message)) {
      return { valid: true, identity: { id: '', username: '', kind: 'user' } };
    }
    // Mastodon checks scopes before the user: this may be an app token or a user token.
    return fromTokenInfo(ctx, token, { appName: true, response, message });
  }

  // 422: a Mastodon app token that may read accounts.
  return fromTokenInfo(ctx, token, { appName: true, response, message });
}

/**
 * Settle the answer with Doorkeeper's token info; where a server has none, with what
 * apps/verify_credentials can still say (that the token is live, not whose it is).
 */
async function fromTokenInfo(
  ctx: ProviderContext,
  token: string,
  context: { appName: boolean; response: HttpResponse; message: string },
): Promise<TokenCheck> {
  const info = await readTokenInfo(ctx, token);
  if (info === 'invalid') return { valid: false, reason: UNKNOWN };
  if (info) {
    const name = info.app && context.appName ? await appName(ctx, token) : undefined;
    return {
      valid: true,
      identity: { id: '', username: name ?? '', kind: info.app ? 'app' : 'user' },
      scope: info.scope,
    };
  }
  if (!context.appName) {
    // Nothing else on such a server accepts an app token: its validity cannot be learnt.
    throw new ServerError({
      server: context.response.url.origin,
      endpoint: 'GET /api/v1/accounts/verify_credentials',
      status: context.response.status,
      description: context.message,
      hint: 'The server serves its API only to tokens with a user behind them and offers no /oauth/token/info, so an app token cannot be told from an unknown one there',
    });
  }
  const name = await appName(ctx, token);
  if (name === undefined) {
    if (context.response.status === 403) {
      // The token passed the token check and failed only the scope check: it is live.
      return { valid: true, identity: { id: '', username: '' } };
    }
    return { valid: false, reason: UNKNOWN };
  }
  const isApp = context.response.status === 422;
  return {
    valid: true,
    identity: { id: '', username: isApp ? name : '', kind: isApp ? 'app' : undefined },
  };
}

type TokenInfo = { app: boolean; scope: string } | 'invalid' | undefined;

/**
 * Doorkeeper's GET /oauth/token/info: undefined where the server has none (GoToSocial answers
 * 404; Pleroma and Akkoma their front end's HTML page).
 */
async function readTokenInfo(ctx: ProviderContext, token: string): Promise<TokenInfo> {
  const request: HttpRequest = {
    method: 'GET',
    url: apiUrl(ctx, 'oauth/token/info'),
    bearer: token,
    accept: [400, 401, 403, 404, 405, 406],
  };
  const response = await ctx.http.send(request);
  if (response.status === 401) return 'invalid';
  if (response.status !== 200) return undefined;
  let body: unknown;
  try {
    body = JSON.parse(response.text);
  } catch {
    return undefined;
  }
  const parsed = z.safeParse(tokenInfo, body);
  if (!parsed.success) return undefined;
  const { scope, resource_owner_id: owner } = parsed.data;
  return { app: owner === null, scope: Array.isArray(scope) ? scope.join(' ') : scope };
}

/** The app's name from apps/verify_credentials, or undefined when the server refuses the token. */
async function appName(ctx: ProviderContext, token: string): Promise<string | undefined> {
  const request: HttpRequest = {
    method: 'GET',
    url: apiUrl(ctx, 'api/v1/apps/verify_credentials'),
    bearer: token,
    accept: [400, 401, 403, 404],
  };
  const response = await ctx.http.send(request);
  if (response.status !== 200) return undefined;
  return parseJson(request, response, application).name;
}

/** The `error` sentence Mastodon-API servers answer with, or ''. */
function errorText(response: HttpResponse): string {
  try {
    const body = JSON.parse(response.text) as { error?: unknown };
    return typeof body.error === 'string' ? oneLine(body.error) : '';
  } catch {
    return '';
  }
}

function apiUrl(ctx: ProviderContext, path: string): URL {
  const base = new URL(ctx.instance);
  if (!base.pathname.endsWith('/')) base.pathname += '/';
  return new URL(path, base);
}
