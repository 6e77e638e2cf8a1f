/**
 * Misskey and its forks (Sharkey, Firefish/Iceshrimp, CherryPick). Tokens come from MiAuth (the
 * `code` is the session id) or from the legacy app flow (`client-secret` is the app secret and
 * `code` the session token). Misskey tokens never expire, have no refresh token, and cannot be
 * revoked by the app that holds them.
 */
import { createHash } from 'node:crypto';
import * as z from 'zod/mini';
import { InputError, ServerError } from '../errors.ts';
import { errorCodeOf, parseJson, toServerError, type HttpRequest } from '../http.ts';
import type { Operation, TokenConfig } from '../config.ts';
import { withHint } from './oauth-token.ts';
import type { Identity, Provider, ProviderContext, TokenResult, Validation } from './provider.ts';

const user = z.object({ id: z.string(), username: z.string() });

const miauthCheck = z.object({
  ok: z.boolean(),
  token: z.optional(z.string()),
  user: z.optional(z.nullable(user)),
});

const userkey = z.object({ accessToken: z.string().check(z.minLength(1)), user });

/**
 * Session ids go into a URL path, so they must be one plain segment: no `/`, no escapes, and not
 * `.` or `..` (or any run of dots), which URL resolution would turn into another endpoint.
 */
const SESSION_ID = /^(?!\.+$)[A-Za-z0-9._~-]{1,200}$/;

const SETTINGS_HINT =
  "revoke it in the Misskey web UI: Settings → API (access tokens) or Settings → Installed apps, then 'Delete'";

const LEGACY_HINTS: Record<string, string> = {
  PENDING_SESSION:
    'The session has not been approved yet: open the URL auth/session/generate returned, approve it, then run this step again',
  NO_SUCH_SESSION:
    "The session token is unknown or was already used (it works once); create a new one with auth/session/generate and put it in 'code'",
  NO_SUCH_APP: "'client-secret' is not the secret of an app on this server (app/create returns it)",
};

export const misskeyProvider: Provider = {
  platform: 'misskey',
  title: 'Misskey',

  checkInputs(operation: Operation, config: TokenConfig): void {
    if (operation === 'exchange' && config.code && !config.clientSecret) {
      if (!SESSION_ID.test(config.code)) {
        throw new InputError(
          'code',
          'must be a MiAuth session id (letters, digits, - . _ ~, not only dots; usually a UUID), or give ' +
            "'client-secret' too to use a legacy session token",
        );
      }
    }
  },

  async exchangeCode(ctx: ProviderContext): Promise<TokenResult> {
    const { code, clientSecret } = ctx.config;
    if (!code) throw new InputError('code', "is required for operation 'exchange'");
    ctx.mask(code);
    if (clientSecret) {
      ctx.mask(clientSecret);
      return legacyExchange(ctx, clientSecret, code);
    }
    return miauthExchange(ctx, code);
  },

  async validate(ctx: ProviderContext, accessToken: string): Promise<Validation> {
    ctx.mask(accessToken);
    // The token goes in the body as `i`: every Misskey version and fork reads it there, while
    // the Authorization header came later.
    const request: HttpRequest = {
      method: 'POST',
      url: apiUrl(ctx, 'i'),
      json: { i: accessToken },
      idempotent: true,
      // Older releases answered 403 for a bad token and 400 for a missing permission; the error
      // code says which, whatever the status.
      accept: [400, 401, 403],
    };
    const response = await ctx.http.send(request);
    if (response.status === 200) {
      const me = parseJson(request, response, user);
      return { valid: true, identity: identityOf(me) };
    }
    const { code } = errorCodeOf(response.text);
    if (code === 'AUTHENTICATION_FAILED') {
      return {
        valid: false,
        reason:
          'the server does not know this token (AUTHENTICATION_FAILED: revoked or never issued here)',
      };
    }
    if (code === 'YOUR_ACCOUNT_SUSPENDED') {
      return { valid: false, reason: 'the account that owns this token is suspended' };
    }
    if (code === 'PERMISSION_DENIED') {
      ctx.log(
        'The token is valid, but it lacks the read:account permission, so the account behind it ' +
          'cannot be shown; ask for read:account when creating the token to see it',
      );
      return { valid: true };
    }
    throw toServerError(request, response);
  },

  unsupported(operation: Operation): string {
    switch (operation) {
      case 'revoke':
        return `Misskey does not let an app revoke its own token; ${SETTINGS_HINT}`;
      case 'refresh':
        return "Misskey tokens do not expire and have no refresh token; keep using the token ('validate' checks it still works)";
      case 'client-credentials':
        return "Misskey has no app-only tokens; get a user token with 'exchange' (a MiAuth session id in 'code')";
      default:
        return `Misskey has no '${operation}' operation`;
    }
  },
};

async function miauthExchange(ctx: ProviderContext, session: string): Promise<TokenResult> {
  const request: HttpRequest = {
    method: 'POST',
    url: apiUrl(ctx, `miauth/${session}/check`),
    json: {},
    // The first successful check hands out the token and spends the session: never repeat it.
    idempotent: false,
    endpointLabel: 'POST /api/miauth/{session}/check',
  };
  const { data, response } = await ctx.http.json(request, miauthCheck);
  if (data.token) ctx.mask(data.token);
  if (!data.ok || !data.token) {
    throw new ServerError({
      server: response.url.origin,
      endpoint: 'POST /api/miauth/{session}/check',
      status: response.status,
      description:
        'ok:false — the MiAuth session is not approved yet or was already used (an unknown session answers the same)',
      hint:
        "If nobody has pressed 'Allow' on the MiAuth page yet, do that and run this step again; " +
        'a session gives its token only once, so if an earlier run succeeded, start a new session ' +
        '(npx fedi-token login <instance>) and use its id',
    });
  }
  return {
    tokens: { accessToken: data.token, tokenType: 'Bearer' },
    identity: data.user ? identityOf(data.user) : undefined,
  };
}

async function legacyExchange(
  ctx: ProviderContext,
  appSecret: string,
  sessionToken: string,
): Promise<TokenResult> {
  const request: HttpRequest = {
    method: 'POST',
    url: apiUrl(ctx, 'auth/session/userkey'),
    json: { appSecret, token: sessionToken },
    idempotent: false,
  };
  let data: z.infer<typeof userkey>;
  try {
    ({ data } = await ctx.http.json(request, userkey));
  } catch (error) {
    const hint = error instanceof ServerError && error.code ? LEGACY_HINTS[error.code] : undefined;
    throw hint && error instanceof ServerError ? withHint(error, hint) : error;
  }
  ctx.mask(data.accessToken);
  // The API accepts the user key only bound to the app: i = hex(sha256(accessToken + appSecret)).
  const token = createHash('sha256')
    .update(data.accessToken + appSecret)
    .digest('hex');
  ctx.mask(token);
  return { tokens: { accessToken: token, tokenType: 'Bearer' }, identity: identityOf(data.user) };
}

function identityOf(data: { id: string; username: string }): Identity {
  return { id: data.id, username: data.username, kind: 'user' };
}

function apiUrl(ctx: ProviderContext, endpoint: string): URL {
  const base = new URL(ctx.instance);
  if (!base.pathname.endsWith('/')) base.pathname += '/';
  return new URL(`api/${endpoint}`, base);
}
