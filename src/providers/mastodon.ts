/**
 * Mastodon-API servers: Mastodon, GoToSocial, Pleroma, Akkoma, Pixelfed and the servers that copy
 * the API. The differences that matter are in docs/servers.md; each is handled where it bites,
 * with a comment.
 */
import * as z from 'zod/mini';
import { InputError, ServerError, UnsupportedError } from '../errors.ts';
import { parseJson, toServerError, type HttpResponse } from '../http.ts';
import type { Operation, TokenConfig } from '../config.ts';
import { refreshGrant, requestToken, revokeToken, withHint } from './oauth-token.ts';
import { claimsGrant, passportClaims } from './passport-claims.ts';
import type {
  Identity,
  Provider,
  ProviderContext,
  Software,
  TokenResult,
  TokenSet,
  Validation,
} from './provider.ts';

const account = z.object({
  // Ids are strings on every server; a number here would already have lost precision.
  id: z.string(),
  username: z.string(),
  acct: z.optional(z.string()),
  url: z.optional(z.nullable(z.string())),
});

const application = z.object({
  id: z.optional(z.string()),
  name: z.string(),
  scopes: z.optional(z.array(z.string())),
});

/** Mastodon-API servers that issue refresh tokens (nodeinfo software names). */
const REFRESHING_SOFTWARE = new Set(['pleroma', 'akkoma', 'pixelfed']);
const NO_REFRESH =
  "issues no refresh tokens: its tokens never expire (only Pleroma, Akkoma and Pixelfed refresh). Keep the access token and check it with 'operation: validate'";

/**
 * Pixelfed (v0.12.6) routes no /oauth/revoke: Laravel Passport's routes have none, and
 * routes/web.php adds only Passport's token, authorize and token-management routes.
 */
const PIXELFED_NO_REVOKE =
  'Pixelfed has no token revocation endpoint (no /oauth/revoke); revoke the app under Settings → Applications on the server';
/**
 * Every Pixelfed API route that takes a token is behind `auth:api` (routes/api.php, v0.12.6), and
 * Passport's guard finds no user for a client-credentials token: the token is refused everywhere.
 */
const PIXELFED_NO_APP_TOKENS =
  "Pixelfed's API accepts only user tokens: a client-credentials token is refused by every endpoint. Use 'exchange' with a code from a user's approval";

const NEEDS_CLIENT: Partial<Record<Operation, true>> = {
  exchange: true,
  'client-credentials': true,
  refresh: true,
  revoke: true,
};

export const mastodonProvider: Provider = {
  platform: 'mastodon',
  title: 'Mastodon-API server',

  checkInputs(operation: Operation, config: TokenConfig, software?: Software): void {
    // Only Pleroma and Akkoma issue refresh tokens. When detection named the server, the others
    // are refused before the refresh token (or a write-back's secret) goes anywhere; otherwise
    // their answer is explained.
    if (
      operation === 'refresh' &&
      software &&
      !REFRESHING_SOFTWARE.has(software.name.toLowerCase())
    ) {
      throw new UnsupportedError(`${software.name} ${NO_REFRESH}`);
    }
    if (software?.name.toLowerCase() === 'pixelfed') {
      if (operation === 'client-credentials') throw new UnsupportedError(PIXELFED_NO_APP_TOKENS);
      if (operation === 'revoke') throw new UnsupportedError(PIXELFED_NO_REVOKE);
      if (config.revokeOnExit) {
        throw new InputError('revoke-on-exit', `cannot be honoured: ${PIXELFED_NO_REVOKE}`);
      }
    }
    if (operation === 'revoke' && !config.accessToken) {
      throw new InputError(
        'access-token',
        'is required by Mastodon-API servers to revoke: they revoke access tokens',
      );
    }
    const needsClient =
      NEEDS_CLIENT[operation] || (config.revokeOnExit && operation !== 'validate');
    if (!needsClient) return;
    for (const [name, value] of [
      ['client-id', config.clientId],
      ['client-secret', config.clientSecret],
    ] as const) {
      if (!value) {
        const why =
          operation === 'revoke' || config.revokeOnExit
            ? 'to revoke a token'
            : `for '${operation}'`;
        throw new InputError(name, `is required by Mastodon-API servers ${why}`);
      }
    }
  },

  async exchangeCode(ctx: ProviderContext): Promise<TokenResult> {
    const { config } = ctx;
    const tokens = await requestToken(ctx, {
      endpoint: new URL('oauth/token', base(ctx)),
      auth: 'client_secret_post',
      clientId: config.clientId,
      clientSecret: config.clientSecret,
      params: {
        grant_type: 'authorization_code',
        code: config.code,
        // Sent on every grant: GoToSocial requires it, and it must match the registration exactly.
        redirect_uri: config.redirectUri,
        code_verifier: config.codeVerifier,
        scope: config.scope,
      },
    });
    // A user token can name its owner; a token without read:accounts/profile simply cannot.
    const identity = await readAccount(ctx, tokens.accessToken).catch(() => undefined);
    return {
      tokens: withPassportScope(tokens),
      identity: identity?.kind === 'user' ? identity : undefined,
    };
  },

  async clientCredentials(ctx: ProviderContext): Promise<TokenResult> {
    const { config } = ctx;
    const tokens = await requestToken(ctx, {
      endpoint: new URL('oauth/token', base(ctx)),
      auth: 'client_secret_post',
      clientId: config.clientId,
      clientSecret: config.clientSecret,
      params: {
        grant_type: 'client_credentials',
        redirect_uri: config.redirectUri,
        scope: config.scope,
      },
    });
    return { tokens };
  },

  async refresh(ctx: ProviderContext): Promise<TokenResult> {
    const { config } = ctx;
    try {
      const tokens = await refreshGrant(ctx, {
        endpoint: new URL('oauth/token', base(ctx)),
        auth: 'client_secret_post',
        clientId: config.clientId,
        clientSecret: config.clientSecret,
        // No redirect_uri: no refresh grant needs one, and league/oauth2-server (Pixelfed's
        // Passport) checks any it is given against the app's registration (AbstractGrant::
        // validateClient, 8.5.5), refusing an app registered without the OOB URI.
        refreshToken: config.refreshToken ?? '',
      });
      return { tokens: withPassportScope(tokens) };
    } catch (error) {
      if (error instanceof ServerError && error.code === 'unsupported_grant_type') {
        throw withHint(error, `This server ${NO_REFRESH}`);
      }
      throw error;
    }
  },

  async validate(ctx: ProviderContext, accessToken: string): Promise<Validation> {
    const identity = await readAccount(ctx, accessToken);
    if (!identity)
      return { valid: false, reason: 'the server does not accept it (revoked or unknown)' };
    const claims = passportClaims(accessToken);
    if (claims && identity.kind === 'user' && !identity.id && claimsGrant(claims, 'read')) {
      // Pixelfed (ApiV1Controller::verifyCredentials, v0.12.6) answers 403 for a token without
      // `read` and for a user whose status is set (suspended, disabled, deleted). This token has
      // `read`, so the 403 was about the account.
      return {
        valid: false,
        reason: 'the server refuses its account (suspended, disabled or being deleted)',
      };
    }
    return {
      valid: true,
      identity,
      scope: identity.scope ?? claims?.scopes.join(' '),
      expiresAt: claims?.expiresAt,
    };
  },

  async revoke(ctx: ProviderContext, accessToken: string): Promise<void> {
    const { config } = ctx;
    // GoToSocial reads only form bodies here, so the shared call's form is what every server gets.
    await revokeToken(ctx, {
      endpoint: new URL('oauth/revoke', base(ctx)),
      token: accessToken,
      auth: 'client_secret_post',
      clientId: config.clientId,
      clientSecret: config.clientSecret,
    }).catch((error: unknown) => {
      // Pixelfed answers 404 "The route oauth/revoke could not be found." (Laravel's router).
      if (error instanceof ServerError && error.status === 404) {
        throw withHint(error, `This server has no /oauth/revoke. ${PIXELFED_NO_REVOKE}`);
      }
      throw error;
    });
  },

  unsupported(operation: Operation): string {
    return `Mastodon-API servers have no '${operation}' operation`;
  },
};

function base(ctx: ProviderContext): URL {
  const url = new URL(ctx.instance);
  if (!url.pathname.endsWith('/')) url.pathname += '/';
  return url;
}

type FoundIdentity = Identity & { scope?: string };

/**
 * Who the token belongs to, or undefined when the server rejects the token.
 * User tokens answer verify_credentials. App (client-credentials) tokens do not: Mastodon answers
 * 422 and offers apps/verify_credentials; GoToSocial has no app endpoint but answers 401 "user not
 * supplied or not authorized" — its auth layer found the token and its app, and only then looked
 * for a user — which is the honest signal that the app token is valid.
 */
async function readAccount(
  ctx: ProviderContext,
  token: string,
): Promise<FoundIdentity | undefined> {
  const userRequest = {
    method: 'GET' as const,
    url: new URL('api/v1/accounts/verify_credentials', base(ctx)),
    bearer: token,
    accept: [401, 403, 422, 500],
  };
  const response = await ctx.http.send(userRequest);
  if (isLaravelUnauthenticated(response)) return undefined;
  if (response.status === 500) throw toServerError(userRequest, response);
  if (response.status === 200) {
    const data = parseJson(userRequest, response, account);
    return { id: data.id, username: data.username, url: data.url ?? undefined, kind: 'user' };
  }
  if (response.status === 401) {
    if (/user not supplied/i.test(response.text)) return { id: '', username: '', kind: 'app' };
    return undefined;
  }
  // 422: an app token on Mastodon. 403: a real token without read:accounts/profile, or on
  // Pleroma any token without a user behind it, unknown ones included.
  const appRequest = {
    method: 'GET' as const,
    url: new URL('api/v1/apps/verify_credentials', base(ctx)),
    bearer: token,
    accept: [400, 401, 403, 404, 500],
  };
  const appResponse = await ctx.http.send(appRequest);
  if (isLaravelUnauthenticated(appResponse)) return undefined;
  if (appResponse.status === 500) throw toServerError(appRequest, appResponse);
  if (appResponse.status === 200) {
    const app = parseJson(appRequest, appResponse, application);
    // The app's id is not an account id: an app token has no account, and a user token that
    // could not read its account still belongs to one we cannot name.
    const isApp = response.status === 422;
    return {
      id: '',
      username: isApp ? app.name : '',
      kind: isApp ? 'app' : 'user',
      scope: app.scopes?.join(' '),
    };
  }
  // Pleroma answers 403 above for every token it cannot tie to a user, and 400 here for one it
  // does not know at all (its action has no clause for a request without a token).
  if (appResponse.status === 401 || appResponse.status === 400) return undefined;
  // The token exists (403) but nothing more can be learnt with its scopes.
  if (response.status === 403) return { id: '', username: '', kind: 'user' };
  throw new ServerError({
    server: appResponse.url.origin,
    endpoint: 'GET /api/v1/apps/verify_credentials',
    status: appResponse.status,
    description: 'the server offers no way to check an app token',
  });
}

/**
 * Pixelfed's exception handler (app/Exceptions/Handler.php, v0.12.6) renders every exception a
 * JSON client causes as `{"error": message}` with the exception's getStatusCode(), or 500 when it
 * has none, as Laravel's AuthenticationException has not: a token Passport does not accept
 * (revoked, expired, unknown, or an app token with no user) answers 500 "Unauthenticated.".
 * Any other 500 is the server's failure and is reported as one.
 */
function isLaravelUnauthenticated(response: HttpResponse): boolean {
  if (response.status !== 401 && response.status !== 500) return false;
  try {
    return (JSON.parse(response.text) as { error?: unknown }).error === 'Unauthenticated.';
  } catch {
    return false;
  }
}

/** The scopes a Passport token carries, where the token response named none (Pixelfed). */
function withPassportScope(tokens: TokenSet): TokenSet {
  if (tokens.scope !== undefined) return tokens;
  const claims = passportClaims(tokens.accessToken);
  return claims ? { ...tokens, scope: claims.scopes.join(' ') } : tokens;
}
