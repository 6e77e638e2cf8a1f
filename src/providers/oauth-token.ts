/**
 * RFC 6749 token endpoint and RFC 7009 revocation calls, shared by every provider whose protocol
 * is OAuth 2.0 (the Mastodon API family and generic OAuth 2.0 servers) so there is one copy.
 */
import * as z from 'zod/mini';
import { NetworkError, ServerError } from '../errors.ts';
import type { HttpRequest, HttpResponse } from '../http.ts';
import { expiryFromLifetime, type ProviderContext, type TokenSet } from './provider.ts';

export type ClientAuth = 'client_secret_post' | 'client_secret_basic' | 'none';

export interface TokenRequest {
  endpoint: URL;
  /** grant_type and the grant's own parameters. */
  params: Record<string, string | undefined>;
  clientId?: string;
  clientSecret?: string;
  auth: ClientAuth;
  /** Send as JSON instead of a form (never needed by the servers we know; kept for AnyWeb-like APIs). */
  json?: boolean;
}

const tokenResponse = z.object({
  access_token: z.string().check(z.minLength(1)),
  token_type: z.optional(z.string()),
  scope: z.optional(z.union([z.string(), z.array(z.string())])),
  expires_in: z.optional(z.union([z.number(), z.string()])),
  refresh_token: z.optional(z.nullable(z.string())),
  // Not RFC 6749: Doorkeeper (Mastodon), Pleroma and GoToSocial add the token's creation time.
  created_at: z.optional(z.unknown()),
});

/** Grant types whose request spends a single-use value (a code, a rotating refresh token). */
const SINGLE_USE_GRANTS = new Set(['authorization_code', 'refresh_token']);

const GRANT_HINTS: Record<string, Record<string, string>> = {
  authorization_code: {
    invalid_grant:
      "The code is wrong, expired, already used, or was issued for another 'redirect-uri'; get a new code",
  },
  refresh_token: {
    invalid_grant:
      'The refresh token is expired, revoked or was already rotated; authorize again to get a new one',
  },
};

const CODE_HINTS: Record<string, string> = {
  invalid_client: "Check 'client-id' and 'client-secret'",
  unauthorized_client: 'This client is not allowed this grant type',
  unsupported_grant_type: 'The server does not offer this grant type',
  invalid_scope: "Ask only for scopes the app was registered with ('scope')",
};

export async function requestToken(ctx: ProviderContext, request: TokenRequest): Promise<TokenSet> {
  const grant = request.params.grant_type ?? '';
  const body: Record<string, string | undefined> = { ...request.params };
  const httpRequest: HttpRequest = {
    method: 'POST',
    url: request.endpoint,
    idempotent: !SINGLE_USE_GRANTS.has(grant),
  };
  applyClientAuth(httpRequest, body, request);
  if (request.json) httpRequest.json = stripUndefined(body);
  else httpRequest.form = body;

  let data: z.infer<typeof tokenResponse>;
  let response: HttpResponse;
  try {
    ({ data, response } = await ctx.http.json(httpRequest, tokenResponse));
  } catch (error) {
    throw explainTokenError(error, grant);
  }
  ctx.mask(data.access_token);
  if (data.refresh_token) ctx.mask(data.refresh_token);
  return {
    accessToken: data.access_token,
    refreshToken: data.refresh_token ?? undefined,
    tokenType: normaliseTokenType(data.token_type),
    scope: Array.isArray(data.scope) ? data.scope.join(' ') : data.scope,
    expiresAt: expiryFromLifetime(data.expires_in),
    issuedEarlier: issuedBefore(data.created_at, response),
  };
}

/**
 * The token's `created_at` when it lies before this answer: the server handed back a token it had
 * already issued. Measured against the answer's own Date header where there is one (both are the
 * server's clock, in whole seconds), else against ours, with room for clocks that disagree.
 */
export function issuedBefore(createdAt: unknown, response: HttpResponse): Date | undefined {
  if (typeof createdAt !== 'number' || !Number.isFinite(createdAt)) return undefined;
  const dateHeader = Date.parse(String(response.headers.date ?? ''));
  const answeredAt = Number.isNaN(dateHeader) ? Date.now() : dateHeader;
  const slackMs = Number.isNaN(dateHeader) ? 60_000 : 5_000;
  const created = createdAt * 1000;
  return answeredAt - created > slackMs ? new Date(created) : undefined;
}

export interface RefreshRequest extends Omit<TokenRequest, 'params'> {
  refreshToken: string;
  /** What the server wants besides the grant's own fields (scope, redirect_uri). */
  params?: Record<string, string | undefined>;
}

/**
 * The refresh_token grant, rotation-aware. RFC 6749 §6: without a new refresh token the old one
 * stays valid, so it is still the one to keep; the result always holds the refresh token to use
 * next time.
 */
export async function refreshGrant(
  ctx: ProviderContext,
  request: RefreshRequest,
): Promise<TokenSet> {
  const { refreshToken, params, ...rest } = request;
  const tokens = await requestToken(ctx, {
    ...rest,
    params: { grant_type: 'refresh_token', refresh_token: refreshToken, ...params },
  });
  if (!tokens.refreshToken) {
    ctx.log('The server did not rotate the refresh token; the current one stays valid');
    tokens.refreshToken = refreshToken;
  } else if (tokens.refreshToken !== refreshToken) {
    ctx.log('The server rotated the refresh token: store the new one (output refresh-token)');
  }
  return tokens;
}

export interface RevokeRequest {
  endpoint: URL;
  token: string;
  tokenTypeHint?: 'access_token' | 'refresh_token';
  clientId?: string;
  clientSecret?: string;
  auth: ClientAuth;
}

/** RFC 7009: revoking is idempotent (an unknown token answers 200), so retries are safe. */
export async function revokeToken(ctx: ProviderContext, request: RevokeRequest): Promise<void> {
  const form: Record<string, string | undefined> = {
    token: request.token,
    token_type_hint: request.tokenTypeHint,
  };
  const httpRequest: HttpRequest = {
    method: 'POST',
    url: request.endpoint,
    idempotent: true,
    form,
  };
  applyClientAuth(httpRequest, form, request);
  try {
    await ctx.http.send(httpRequest);
  } catch (error) {
    if (error instanceof ServerError && error.code === 'unauthorized_client') {
      // Doorkeeper (Mastodon) answers this before it looks at the token when the client
      // credentials are wrong (TokensController#revoke, doorkeeper 5.8.2), and for another
      // app's token; GoToSocial and RFC 7009 servers for another app's token.
      throw withHint(
        error,
        "Check 'client-id' and 'client-secret': the server refuses a revocation when they are wrong, or when the token was issued to another app (revoke it with that app’s credentials, or in the server’s settings)",
      );
    }
    throw explainTokenError(error, 'revoke');
  }
}

export interface ClientCredentials {
  clientId?: string;
  clientSecret?: string;
  auth: ClientAuth;
}

/**
 * RFC 6749 §2.3.1 client authentication, for every endpoint that takes it (token, revocation,
 * introspection): HTTP Basic, or id and secret in the form; a public client sends only its id.
 */
export function applyClientAuth(
  httpRequest: HttpRequest,
  form: Record<string, string | undefined>,
  client: ClientCredentials,
): void {
  if (client.auth === 'client_secret_basic' && client.clientId) {
    httpRequest.basic = { username: client.clientId, password: client.clientSecret ?? '' };
  } else {
    form.client_id = client.clientId;
    if (client.auth === 'client_secret_post') form.client_secret = client.clientSecret;
  }
}

function explainTokenError(error: unknown, grant: string): unknown {
  if (error instanceof ServerError) {
    // GoToSocial passes its OAuth library's text ("invalid authorize code") instead of a code.
    const code =
      error.code ??
      (error.status === 400 && /invalid authori[sz]e code/i.test(error.description ?? '')
        ? 'invalid_grant'
        : undefined);
    const hint =
      (code && GRANT_HINTS[grant]?.[code]) || (error.code && CODE_HINTS[error.code]) || undefined;
    return hint ? withHint(error, hint) : error;
  }
  if (
    error instanceof NetworkError &&
    SINGLE_USE_GRANTS.has(grant) &&
    (error.failure === 'timeout' || error.failure === 'reset')
  ) {
    const spent = grant === 'authorization_code' ? 'code' : 'refresh token';
    return new NetworkError(
      error.server,
      error.endpoint,
      error.failure,
      `${error.message.slice(error.server.length + error.endpoint.length + 3)}. ` +
        `It was not retried: the server may already have used the ${spent}. ` +
        `Run again; if the server then answers invalid_grant, get a new ${spent}`,
    );
  }
  return error;
}

export function withHint(error: ServerError, hint: string): ServerError {
  return new ServerError({
    server: error.server,
    endpoint: error.endpoint,
    status: error.status,
    code: error.code,
    description: error.description,
    hint,
    retryAt: error.retryAt,
  });
}

function normaliseTokenType(type: string | undefined): string {
  if (!type || type.toLowerCase() === 'bearer') return 'Bearer';
  return type;
}

function stripUndefined(record: Record<string, string | undefined>): Record<string, string> {
  return Object.fromEntries(
    Object.entries(record).filter((entry): entry is [string, string] => entry[1] !== undefined),
  );
}
