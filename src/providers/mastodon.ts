/**
 * Mastodon-API servers: Mastodon, GoToSocial, Pleroma, Akkoma and the servers that copy the API.
 * The differences that matter are in PROTOCOLS.md; each is handled where it bites, with a comment.
 */
import * as z from 'zod/mini';
import { InputError, ServerError, UnsupportedError } from '../errors.ts';
import { parseJson } from '../http.ts';
import type { Operation, TokenConfig } from '../config.ts';
import { refreshGrant, requestToken, revokeToken, withHint } from './oauth-token.ts';
import type {
  Identity,
  Provider,
  ProviderContext,
  Software,
  TokenResult,
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
const REFRESHING_SOFTWARE = new Set(['pleroma', 'akkoma']);
const NO_REFRESH =
  "issues no refresh tokens: its tokens never expire (only Pleroma and Akkoma refresh). Keep the access token and check it with 'operation: validate'";

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
    return { tokens, identity: identity?.kind === 'user' ? identity : undefined };
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
        refreshToken: config.refreshToken ?? '',
        params: { redirect_uri: config.redirectUri },
      });
      return { tokens };
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
    return { valid: true, identity, scope: identity.scope };
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
    accept: [401, 403, 422],
  };
  const response = await ctx.http.send(userRequest);
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
    accept: [400, 401, 403, 404],
  };
  const appResponse = await ctx.http.send(appRequest);
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
