/**
 * Any RFC 6749 server: code exchange (with PKCE), client credentials, refresh (rotation-aware),
 * validation by RFC 7662 introspection or else the userinfo endpoint, RFC 7009 revocation.
 * Endpoints come from the inputs or the server's metadata (oauth2-discovery.ts).
 */
import * as z from 'zod/mini';
import { InputError, ServerError, UnsupportedError } from '../errors.ts';
import { parseJson, type HttpRequest } from '../http.ts';
import type { Operation, TokenConfig } from '../config.ts';
import { chooseClientAuth, findEndpoints, type ServerEndpoints } from './oauth2-discovery.ts';
import {
  applyClientAuth,
  refreshGrant,
  requestToken,
  revokeToken,
  withHint,
  type ClientAuth,
} from './oauth-token.ts';
import type { Identity, Provider, ProviderContext, TokenResult, Validation } from './provider.ts';

const introspection = z.object({
  active: z.boolean(),
  scope: z.optional(z.string()),
  exp: z.optional(z.number()),
  sub: z.optional(z.string()),
  username: z.optional(z.string()),
  client_id: z.optional(z.string()),
  token_type: z.optional(z.string()),
});

const userinfo = z.object({
  sub: z.union([z.string(), z.number()]),
  preferred_username: z.optional(z.string()),
  name: z.optional(z.string()),
  profile: z.optional(z.string()),
});

/** Operations where the server must know which client is asking. */
const NEEDS_CLIENT_ID: readonly Operation[] = [
  'exchange',
  'client-credentials',
  'refresh',
  'revoke',
];

export const oauth2Provider: Provider = {
  platform: 'oauth2',
  title: 'OAuth 2.0 server',

  checkInputs(operation: Operation, config: TokenConfig): void {
    if ((NEEDS_CLIENT_ID.includes(operation) || config.revokeOnExit) && !config.clientId) {
      throw new InputError('client-id', `is required by OAuth 2.0 servers for '${operation}'`);
    }
    if (config.tokenEndpointAuthMethod !== 'auto' && !config.clientSecret) {
      throw new InputError(
        'client-secret',
        `is required with token-endpoint-auth-method '${config.tokenEndpointAuthMethod}'`,
      );
    }
  },

  async exchangeCode(ctx: ProviderContext): Promise<TokenResult> {
    const { config } = ctx;
    const endpoints = await findEndpoints(
      ctx.http,
      config,
      config.instance,
      ['token'],
      ['userinfo'],
    );
    const tokens = await authenticated(
      config,
      requestToken(ctx, {
        endpoint: required(endpoints.token),
        ...client(config, endpoints),
        params: {
          grant_type: 'authorization_code',
          code: config.code,
          redirect_uri: config.redirectUri,
          code_verifier: config.codeVerifier,
        },
      }),
    );
    // Naming the owner is a courtesy: a token without the userinfo scope is still a good token.
    const identity = endpoints.userinfo
      ? await readUserinfo(ctx, endpoints.userinfo, tokens.accessToken).catch(() => undefined)
      : undefined;
    return { tokens, identity };
  },

  async clientCredentials(ctx: ProviderContext): Promise<TokenResult> {
    const { config } = ctx;
    const endpoints = await findEndpoints(ctx.http, config, config.instance, ['token']);
    const tokens = await authenticated(
      config,
      requestToken(ctx, {
        endpoint: required(endpoints.token),
        ...client(config, endpoints),
        params: { grant_type: 'client_credentials', scope: config.scope },
      }),
    );
    return {
      tokens,
      identity: { id: config.clientId ?? '', username: config.clientId ?? '', kind: 'app' },
    };
  },

  async refresh(ctx: ProviderContext): Promise<TokenResult> {
    const { config } = ctx;
    const endpoints = await findEndpoints(ctx.http, config, config.instance, ['token']);
    const tokens = await authenticated(
      config,
      refreshGrant(ctx, {
        endpoint: required(endpoints.token),
        ...client(config, endpoints),
        refreshToken: config.refreshToken ?? '',
        params: { scope: config.scope },
      }),
    );
    return { tokens };
  },

  async validate(ctx: ProviderContext, accessToken: string): Promise<Validation> {
    const { config } = ctx;
    const endpoints = await findEndpoints(
      ctx.http,
      config,
      config.instance,
      [],
      ['introspection', 'userinfo'],
    );
    // Introspection needs the client's own credentials; userinfo needs only the token.
    if (endpoints.introspection && config.clientId) {
      return introspect(ctx, endpoints, accessToken);
    }
    if (endpoints.userinfo) {
      const identity = await readUserinfo(ctx, endpoints.userinfo, accessToken);
      if (!identity)
        return {
          valid: false,
          reason: 'the userinfo endpoint rejects it (revoked, expired or unknown)',
        };
      return { valid: true, identity };
    }
    throw new UnsupportedError(
      endpoints.introspection
        ? "Validating with the introspection endpoint needs 'client-id' (and 'client-secret')"
        : "The server has neither an introspection nor a userinfo endpoint; give 'introspection-endpoint' or 'userinfo-endpoint'",
    );
  },

  revoke(ctx: ProviderContext, accessToken: string): Promise<void> {
    return revoke(ctx, accessToken, 'access_token');
  },

  revokeRefreshToken(ctx: ProviderContext, refreshToken: string): Promise<void> {
    return revoke(ctx, refreshToken, 'refresh_token');
  },

  unsupported(operation: Operation): string {
    return `OAuth 2.0 servers have no '${operation}' operation`;
  },
};

function client(
  config: TokenConfig,
  endpoints: ServerEndpoints,
): { clientId?: string; clientSecret?: string; auth: ClientAuth } {
  return {
    clientId: config.clientId,
    clientSecret: config.clientSecret,
    auth: chooseClientAuth(
      config.tokenEndpointAuthMethod,
      config.clientSecret,
      endpoints.authMethods,
    ),
  };
}

/** RFC 7009 revocation; the hint saves the server a lookup in the other token store. */
async function revoke(
  ctx: ProviderContext,
  token: string,
  tokenTypeHint: 'access_token' | 'refresh_token',
): Promise<void> {
  const { config } = ctx;
  const endpoints = await findEndpoints(ctx.http, config, config.instance, ['revocation']);
  await authenticated(
    config,
    revokeToken(ctx, {
      endpoint: required(endpoints.revocation),
      token,
      tokenTypeHint,
      ...client(config, endpoints),
    }),
  );
}

/**
 * A forced method the client is not registered for reads as a plain invalid_client on most
 * servers; the hint names the input that decided it.
 */
async function authenticated<T>(config: TokenConfig, call: Promise<T>): Promise<T> {
  try {
    return await call;
  } catch (error) {
    const forced = config.tokenEndpointAuthMethod;
    if (forced !== 'auto' && error instanceof ServerError && error.code === 'invalid_client') {
      throw withHint(
        error,
        `Check 'client-id' and 'client-secret', and that the client is registered for ` +
          `'token-endpoint-auth-method: ${forced}' (auto follows the server's metadata)`,
      );
    }
    throw error;
  }
}

async function introspect(
  ctx: ProviderContext,
  endpoints: ServerEndpoints,
  accessToken: string,
): Promise<Validation> {
  const form: Record<string, string | undefined> = {
    token: accessToken,
    token_type_hint: 'access_token',
  };
  // Asking about a token changes nothing, so a lost answer can be asked for again.
  const request: HttpRequest = {
    method: 'POST',
    url: required(endpoints.introspection),
    idempotent: true,
    form,
  };
  applyClientAuth(request, form, client(ctx.config, endpoints));
  const { data } = await authenticated(ctx.config, ctx.http.json(request, introspection));
  if (!data.active) {
    return { valid: false, reason: 'the server reports it inactive (revoked, expired or unknown)' };
  }
  const expiresAt = data.exp !== undefined ? new Date(data.exp * 1000) : undefined;
  const identity: Identity | undefined = data.sub
    ? { id: data.sub, username: data.username ?? data.sub, kind: 'user' }
    : data.client_id
      ? { id: data.client_id, username: data.client_id, kind: 'app' }
      : undefined;
  return { valid: true, identity, scope: data.scope, expiresAt };
}

/** The token's owner, or undefined when the endpoint rejects the token. */
async function readUserinfo(
  ctx: ProviderContext,
  endpoint: URL,
  accessToken: string,
): Promise<Identity | undefined> {
  const request: HttpRequest = { method: 'GET', url: endpoint, bearer: accessToken, accept: [401] };
  const response = await ctx.http.send(request);
  if (response.status === 401) return undefined;
  const data = parseJson(request, response, userinfo);
  const id = String(data.sub);
  return {
    id,
    username: data.preferred_username ?? data.name ?? id,
    url: data.profile,
    kind: 'user',
  };
}

function required(url: URL | undefined): URL {
  // findEndpoints has already thrown an InputError for a needed endpoint it could not find.
  if (!url) throw new Error('endpoint missing after discovery');
  return url;
}
