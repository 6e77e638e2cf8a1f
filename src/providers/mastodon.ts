/**
 * Mastodon-API servers: Mastodon, GoToSocial, Pleroma, Akkoma and the servers that copy the API.
 * The differences that matter are in docs/servers.md; each is handled where it bites, with a
 * comment.
 */
import { InputError, ServerError, UnsupportedError } from '../errors.ts';
import type { Operation, TokenConfig } from '../config.ts';
import { checkToken } from './mastodon-identity.ts';
import { refreshGrant, requestToken, revokeToken, withHint } from './oauth-token.ts';
import type {
  Provider,
  ProviderContext,
  Software,
  TokenResult,
  TokenSet,
  Validation,
} from './provider.ts';

/** Mastodon-API servers that issue refresh tokens (nodeinfo software names). */
const REFRESHING_SOFTWARE = new Set(['pleroma', 'akkoma']);
const NO_REFRESH =
  "issues no refresh tokens: its tokens never expire (only Pleroma and Akkoma refresh). Keep the access token and check it with 'operation: validate'";

/**
 * Pleroma and Akkoma revoke by deleting the token row, and the refresh token lives in that row
 * (Token.Strategy.Revoke, Pleroma 2.7.0 and Akkoma 300302d4); `refresh` keeps the same refresh
 * token by default (issue_new_refresh_token). Revoking the new access token after a refresh would
 * end the grant the next run refreshes with.
 */
const REVOKE_ENDS_REFRESH =
  "revoking an access token deletes its refresh token too on Pleroma and Akkoma (POST /oauth/revoke deletes the whole token row), so revoking what 'refresh' obtained would destroy the refresh token the next run needs";

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
    const name = software?.name.toLowerCase();
    const shown = software?.name ?? '';
    // Only Pleroma and Akkoma issue refresh tokens. When detection named the server, the others
    // are refused before the refresh token (or a write-back's secret) goes anywhere; otherwise
    // their answer is explained.
    if (operation === 'refresh' && name && !REFRESHING_SOFTWARE.has(name)) {
      throw new UnsupportedError(`${shown} ${NO_REFRESH}`);
    }
    if (operation === 'refresh' && config.revokeOnExit && name && REFRESHING_SOFTWARE.has(name)) {
      throw new InputError(
        'revoke-on-exit',
        `cannot be used with 'refresh' on ${shown}: ${REVOKE_ENDS_REFRESH}. Leave it off; the next refresh replaces the access token anyway`,
      );
    }
    if (operation === 'revoke' && !config.accessToken) {
      throw new InputError(
        'access-token',
        'is required by Mastodon-API servers to revoke: they revoke access tokens (Pleroma and Akkoma look a refresh token up as an access token, find nothing, and answer 200)',
      );
    }
    const needsClient =
      NEEDS_CLIENT[operation] || (config.revokeOnExit && operation !== 'validate');
    if (!needsClient) return;
    for (const [input, value] of [
      ['client-id', config.clientId],
      ['client-secret', config.clientSecret],
    ] as const) {
      if (!value) {
        const why =
          operation === 'revoke' || config.revokeOnExit
            ? 'to revoke a token'
            : `for '${operation}'`;
        throw new InputError(input, `is required by Mastodon-API servers ${why}`);
      }
    }
  },

  async exchangeCode(ctx: ProviderContext): Promise<TokenResult> {
    const { config } = ctx;
    const tokens = await tokenRequest(ctx, 'authorization_code', {
      code: config.code,
      // Sent on every grant: GoToSocial requires it, and it must match the registration exactly.
      redirect_uri: config.redirectUri,
      code_verifier: config.codeVerifier,
      scope: config.scope,
    });
    warnIfBroader(ctx, tokens);
    // A user token can name its owner; a token without read:accounts/profile simply cannot.
    const check = await checkToken(ctx, tokens.accessToken).catch(() => undefined);
    const identity = check?.valid && check.identity.kind === 'user' ? check.identity : undefined;
    return { tokens, identity: identity?.username ? identity : undefined, ...earlier(ctx, tokens) };
  },

  async clientCredentials(ctx: ProviderContext): Promise<TokenResult> {
    const { config } = ctx;
    const tokens = await tokenRequest(ctx, 'client_credentials', {
      redirect_uri: config.redirectUri,
      scope: config.scope,
    });
    warnIfBroader(ctx, tokens);
    return { tokens, ...earlier(ctx, tokens) };
  },

  async refresh(ctx: ProviderContext): Promise<TokenResult> {
    const { config } = ctx;
    let tokens: TokenSet;
    try {
      tokens = await refreshGrant(ctx, {
        endpoint: new URL('oauth/token', base(ctx)),
        auth: 'client_secret_post',
        clientId: config.clientId,
        clientSecret: config.clientSecret,
        refreshToken: config.refreshToken ?? '',
        params: { redirect_uri: config.redirectUri },
      });
    } catch (error) {
      if (error instanceof ServerError && error.code === 'unsupported_grant_type') {
        throw withHint(error, `This server ${NO_REFRESH}`);
      }
      throw explainPleroma(error, 'refresh_token');
    }
    // Known Pleroma and Akkoma were refused this combination up front; a server detection did
    // not name issues refresh tokens, so it is taken for one of them.
    if (config.revokeOnExit) return { tokens, keepOnExit: REVOKE_ENDS_REFRESH };
    return { tokens };
  },

  async validate(ctx: ProviderContext, accessToken: string): Promise<Validation> {
    const check = await checkToken(ctx, accessToken);
    if (!check.valid) return { valid: false, reason: check.reason };
    return { valid: true, identity: check.identity, scope: check.scope };
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

async function tokenRequest(
  ctx: ProviderContext,
  grant: 'authorization_code' | 'client_credentials',
  params: Record<string, string | undefined>,
): Promise<TokenSet> {
  const { config } = ctx;
  try {
    return await requestToken(ctx, {
      endpoint: new URL('oauth/token', base(ctx)),
      auth: 'client_secret_post',
      clientId: config.clientId,
      clientSecret: config.clientSecret,
      params: { grant_type: grant, ...params },
    });
  } catch (error) {
    throw explainPleroma(error, grant);
  }
}

/**
 * Pleroma and Akkoma answer HTTP 500 where other servers say 400: a missing or malformed code
 * raises in Token.Utils.fix_padding (URI.decode, then Base.url_decode64!), which Phoenix turns
 * into a bare 500 (token/utils.ex, Pleroma 2.7.0 and Akkoma 300302d4). The exception comes
 * before the code is looked up, so the code is not spent.
 */
function explainPleroma(error: unknown, grant: string): unknown {
  if (
    error instanceof ServerError &&
    error.status === 500 &&
    !error.code &&
    !error.description &&
    grant === 'authorization_code'
  ) {
    return withHint(
      error,
      "Pleroma and Akkoma fail this way on a code that cannot be one of theirs (their codes are unpadded base64url): check 'code'. The code was not used; one copied whole still works",
    );
  }
  return error;
}

/** Scopes in `granted` that nothing in `asked` covers (a parent covers its children). */
function beyond(asked: string, granted: string): string[] {
  const have = asked.split(/\s+/).filter(Boolean);
  return granted
    .split(/\s+/)
    .filter(Boolean)
    .filter((scope) => {
      for (let s = scope; ;) {
        if (have.includes(s)) return false;
        const at = s.lastIndexOf(':');
        if (at < 0) return true;
        s = s.slice(0, at);
      }
    });
}

/**
 * Akkoma and Pleroma give a client-credentials token every scope the app was registered with,
 * whatever was asked (token_exchange "client_credentials"); a token that can do more than the
 * workflow asked for is worth a warning, wherever it comes from.
 */
function warnIfBroader(ctx: ProviderContext, tokens: TokenSet): void {
  const asked = ctx.config.scope;
  if (!asked || tokens.scope === undefined) return;
  const extra = beyond(asked, tokens.scope);
  if (extra.length === 0) return;
  ctx.warn(
    `The server granted '${tokens.scope}', more than the '${asked}' asked for (also ${extra.join(', ')}). ` +
      'Pleroma and Akkoma give client-credentials tokens every scope the app was registered with; register an app with only the scopes you need',
  );
}

/**
 * A token the server had issued before this request: Mastodon hands back the live token of the
 * same app, user and scopes (Doorkeeper's reuse_access_token), and Akkoma answers a code that was
 * already exchanged with the newest live token of the app and user. Either may be in use
 * elsewhere, so revoke-on-exit must not end it.
 */
function earlier(ctx: ProviderContext, tokens: TokenSet): Pick<TokenResult, 'keepOnExit'> {
  if (!tokens.issuedEarlier) return {};
  const when = tokens.issuedEarlier.toISOString();
  ctx.warn(
    `The server answered with a token it issued at ${when}, before this request: Mastodon reuses the live token of the same app, user and scopes, and Akkoma answers an already used code with the newest token of the app and user. It may be in use elsewhere`,
  );
  return {
    keepOnExit: `the server issued it at ${when}, before this step, and it may be in use elsewhere`,
  };
}
