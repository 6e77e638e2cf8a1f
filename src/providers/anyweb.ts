/**
 * AnyWeb (Conflux) open platform. Its API wraps every answer in `{code, message, data}` and reports
 * failures as a code other than 1000, often under HTTP 200, so success is the code, never the
 * status. Access tokens are HS256 JWTs whose payload carries `exp` and the user's unionid (`id`).
 */
import * as z from 'zod/mini';
import { InputError, oneLine, ServerError } from '../errors.ts';
import { RETRYABLE_STATUSES, parseJson, toServerError, type HttpRequest } from '../http.ts';
import type { Operation, TokenConfig } from '../config.ts';
import type { Provider, ProviderContext, TokenResult, TokenSet, Validation } from './provider.ts';

const wrapper = z.object({
  code: z.union([z.number(), z.string()]),
  message: z.optional(z.nullable(z.string())),
  data: z.optional(z.unknown()),
});

const lifetime = z.optional(z.nullable(z.union([z.number(), z.string()])));

/** Both generations: old `{expiresIn}` (a timestamp), new `{expire, refreshToken, refreshExpire}`. */
const exchangeData = z.object({
  unionid: z.string().check(z.minLength(1)),
  accessToken: z.string().check(z.minLength(1)),
  expiresIn: lifetime,
  expire: lifetime,
  refreshToken: z.optional(z.nullable(z.string())),
  refreshExpire: lifetime,
  refreshExpiresIn: lifetime,
  scope: z.optional(z.nullable(z.union([z.string(), z.array(z.string())]))),
});

const refreshData = z.object({
  token: z.optional(z.string()),
  accessToken: z.optional(z.string()),
  expire: lifetime,
  expiresIn: lifetime,
  refreshToken: z.optional(z.nullable(z.string())),
  refreshExpire: lifetime,
  refreshExpiresIn: lifetime,
});

const userInfoData = z.object({
  unionid: z.string(),
  addressList: z.optional(z.nullable(z.array(z.string()))),
  scopes: z.optional(z.nullable(z.array(z.string()))),
});

/**
 * The wrapper codes AnyWeb documents (wiki.anyweb.cc, OAuth → 错误码), in English. The wiki has
 * two tables: the current one (with the secret and refresh-token codes) and an older one that
 * numbered A107P004–A107P010 differently. Which one a server follows cannot be told from the
 * answer, so a code whose meaning differs is described with both.
 */
const CODE_MEANINGS: Record<string, { current: string; older?: string }> = {
  A107P001: { current: 'accessToken is empty' },
  A107P002: { current: 'appid is empty' },
  A107P003: { current: 'unionid is empty' },
  A107P004: { current: 'secret is empty', older: 'accessToken is invalid' },
  A107P005: { current: 'secret is invalid', older: 'appid is invalid' },
  A107P006: { current: 'accessToken is invalid', older: 'unionid is invalid' },
  A107P007: { current: 'appid is invalid', older: 'code is invalid' },
  A107P008: { current: 'unionid is invalid', older: "the app's developer does not exist" },
  A107P009: {
    current: 'code is invalid',
    older: 'no authorization by the user was found for this app',
  },
  A107P010: { current: "the app's developer does not exist", older: 'the user does not exist' },
  A107P011: { current: 'the user has not authorized this app' },
  A107P012: { current: 'the user does not exist' },
  A107B013: { current: 'refreshToken is invalid' },
};

/** A code's meaning, both readings when AnyWeb's two tables disagree. */
function describeCode(code: string): string | undefined {
  const meaning = CODE_MEANINGS[code];
  if (!meaning) return undefined;
  return meaning.older
    ? `${meaning.current} (AnyWeb's older code table: ${meaning.older})`
    : meaning.current;
}

const CREDENTIALS_HINT =
  "Check 'client-id' (the appid) and 'client-secret' (the secret) from open.anyweb.cc";
const NEW_CODE_HINT =
  "get a new code from the SDK's cfx_accounts call (a code lives about 5 minutes and works once)";
const CODE_HINTS: Record<string, string> = {
  A107P002: CREDENTIALS_HINT,
  A107P004: `${CREDENTIALS_HINT}; if this was a token check, the access token is invalid or expired`,
  A107P005: CREDENTIALS_HINT,
  A107P006: "The access token is invalid or expired; run 'refresh' or exchange a new code",
  A107P007: `${CREDENTIALS_HINT}; if they are right, the code is wrong, expired or used: ${NEW_CODE_HINT}`,
  A107P009: `The code is wrong, expired or already used: ${NEW_CODE_HINT}; if a new code fails the same way, the user has not authorized this app`,
  A107P011: 'The user has not authorized this app; ask them to approve it again',
  A107B013:
    'The refresh token is expired, invalid or was already used: each refresh returns a new one that replaces the old; exchange a new code to start over',
};

/**
 * userInfo codes that say the token (or the grant behind it) is no good in either table. The
 * request always carries a non-empty secret, no code, and the unionid from the token's own claims,
 * so the readings of these codes that would blame something else cannot apply.
 */
const TOKEN_REJECTED: Record<string, string> = {
  A107P004: 'AnyWeb rejects it (A107P004: accessToken is invalid, in its older code table)',
  A107P006:
    "AnyWeb rejects it (A107P006: accessToken is invalid; in its older code table, the token's unionid is invalid)",
  A107P009:
    'the user no longer authorizes this app (A107P009: no authorization found, in its older code table)',
  A107P011: 'the user no longer authorizes this app (A107P011)',
};

/**
 * Error statuses whose body is read for the wrapper, so its code gets the same English meaning
 * and hint as under HTTP 200. Retryable statuses stay out: the retry policy decides those.
 */
const WRAPPER_ERROR_STATUSES = Array.from({ length: 200 }, (_, i) => 400 + i).filter(
  (status) => !RETRYABLE_STATUSES.has(status),
);

const REFRESH_PATHS = ['open/refreshToken', 'oauth/refreshToken'];

export const anywebProvider: Provider = {
  platform: 'anyweb',
  title: 'AnyWeb',

  checkInputs(operation: Operation, config: TokenConfig): void {
    const pair = [
      ['client-id', config.clientId, 'the appid from open.anyweb.cc'],
      ['client-secret', config.clientSecret, 'the secret from open.anyweb.cc'],
    ] as const;
    if (operation === 'exchange') {
      for (const [name, value, what] of pair) {
        if (!value) throw new InputError(name, `is required by AnyWeb for 'exchange' (${what})`);
      }
    }
    if (operation === 'validate' && Boolean(config.clientId) !== Boolean(config.clientSecret)) {
      const missing = config.clientId ? 'client-secret' : 'client-id';
      throw new InputError(
        missing,
        "AnyWeb 'validate' asks the server only with both 'client-id' and 'client-secret'; give both, or neither to check the token's expiry locally",
      );
    }
  },

  async exchangeCode(ctx: ProviderContext): Promise<TokenResult> {
    const { clientId, clientSecret, code } = ctx.config;
    if (code) ctx.mask(code);
    if (clientSecret) ctx.mask(clientSecret);
    const data = await call(
      ctx,
      'oauth/accessToken',
      { appid: clientId, secret: clientSecret, code },
      exchangeData,
      false,
    );
    const refreshExpiry = expiry(data.refreshExpire ?? data.refreshExpiresIn);
    if (refreshExpiry) ctx.log(`The refresh token expires at ${refreshExpiry.toISOString()}`);
    const scope = Array.isArray(data.scope)
      ? data.scope.join(' ')
      : data.scope
          ?.split(/[\s,]+/)
          .filter(Boolean)
          .join(' ');
    return {
      tokens: {
        ...tokenSet(data.accessToken, data.expire ?? data.expiresIn),
        refreshToken: data.refreshToken ?? undefined,
        scope: scope || undefined,
      },
      identity: { id: data.unionid, username: '', kind: 'user' },
    };
  },

  async refresh(ctx: ProviderContext): Promise<TokenResult> {
    const refreshToken = ctx.config.refreshToken;
    if (!refreshToken) throw new InputError('refresh-token', "is required for 'refresh'");
    ctx.mask(refreshToken);
    let data: z.infer<typeof refreshData> | undefined;
    for (const path of REFRESH_PATHS) {
      try {
        data = await call(ctx, path, { refreshToken }, refreshData, false);
        break;
      } catch (error) {
        // The wiki names both paths. A 404 proves the refresh token was not spent, so the other
        // path is safe to try; any other failure may have spent it and ends here.
        const notFound = error instanceof ServerError && error.status === 404;
        if (!notFound || path === REFRESH_PATHS.at(-1)) throw error;
      }
    }
    const accessToken = data?.token ?? data?.accessToken;
    if (!data || !accessToken) {
      throw new ServerError({
        server: ctx.instance.origin,
        endpoint: `POST /${REFRESH_PATHS[0] ?? ''}`,
        status: 200,
        description: 'unexpected answer: missing or malformed data.token',
      });
    }
    const rotated = data.refreshToken ?? undefined;
    if (!rotated) ctx.log('The server returned no new refresh token; the current one stays in use');
    const refreshExpiry = expiry(data.refreshExpire ?? data.refreshExpiresIn);
    if (refreshExpiry) ctx.log(`The refresh token expires at ${refreshExpiry.toISOString()}`);
    const unionid = decodeJwt(accessToken)?.id;
    return {
      tokens: {
        ...tokenSet(accessToken, data.expire ?? data.expiresIn),
        refreshToken: rotated ?? refreshToken,
      },
      identity: unionid ? { id: unionid, username: '', kind: 'user' } : undefined,
    };
  },

  async validate(ctx: ProviderContext, accessToken: string): Promise<Validation> {
    ctx.mask(accessToken);
    const claims = decodeJwt(accessToken);
    if (!claims) {
      return {
        valid: false,
        reason: 'it is not an AnyWeb access token (not a JWT with a payload)',
      };
    }
    const expiresAt = claims.exp === undefined ? undefined : new Date(claims.exp * 1000);
    if (expiresAt && expiresAt.getTime() <= Date.now()) {
      return { valid: false, reason: `it expired at ${expiresAt.toISOString()}`, expiresAt };
    }
    const { clientId, clientSecret } = ctx.config;
    if (claims.appid && clientId && claims.appid !== clientId) {
      return { valid: false, reason: "it was issued to another app than 'client-id'", expiresAt };
    }
    if (!clientId || !clientSecret || !claims.id) {
      ctx.log(localCheckNote(Boolean(clientId && clientSecret), expiresAt));
      return {
        valid: true,
        expiresAt,
        identity: claims.id ? { id: claims.id, username: '', kind: 'user' } : undefined,
      };
    }
    ctx.mask(clientSecret);
    try {
      // Only baseInfo (which every grant includes): left out, `scopes` means everything the user
      // granted, and an answer with the user's real name is billed to the developer for each
      // call (wiki Billing/index.md) and would carry an id number this step has no use for.
      const info = await call(
        ctx,
        'oauth/userInfo',
        {
          appid: clientId,
          secret: clientSecret,
          accessToken,
          unionid: claims.id,
          scopes: ['baseInfo'],
        },
        userInfoData,
        true,
      );
      return {
        valid: true,
        expiresAt,
        scope: info.scopes?.join(' ') || undefined,
        // AnyWeb has no user names; the first wallet address the user granted is the public handle.
        identity: { id: info.unionid, username: info.addressList?.[0] ?? '', kind: 'user' },
      };
    } catch (error) {
      const reason = error instanceof ServerError && error.code && TOKEN_REJECTED[error.code];
      if (reason) return { valid: false, reason, expiresAt };
      throw error;
    }
  },

  unsupported(operation: Operation): string {
    switch (operation) {
      case 'revoke':
        return 'AnyWeb has no token revocation; access tokens expire on their own after about 2 hours (rotate the app secret at open.anyweb.cc to cut an app off)';
      case 'client-credentials':
        return "AnyWeb issues user tokens only; use 'exchange' with a code from the SDK's cfx_accounts call";
      default:
        return `AnyWeb has no '${operation}' operation`;
    }
  },
};

/** What a validate that did not ask AnyWeb actually checked, and why it did not ask. */
function localCheckNote(haveCredentials: boolean, expiresAt: Date | undefined): string {
  if (!haveCredentials) {
    const checked = expiresAt
      ? `Checked the token's expiry locally (${expiresAt.toISOString()})`
      : 'The token has no exp claim, so nothing could be checked locally';
    return `${checked}; give 'client-id' and 'client-secret' to have AnyWeb confirm it`;
  }
  const checked = expiresAt
    ? 'only its expiry was checked locally'
    : 'it has no exp claim either, so nothing was checked beyond its JWT form';
  return `AnyWeb was not asked: the token has no unionid ('id') claim, which userInfo needs; ${checked}`;
}

/**
 * POST to the API and unwrap `{code, message, data}`. Token fields are masked straight from the
 * parsed body, before the shape is checked, so not even a malformed answer can print them.
 */
async function call<T>(
  ctx: ProviderContext,
  path: string,
  body: Record<string, string | string[] | undefined>,
  schema: z.ZodMiniType<T>,
  idempotent: boolean,
): Promise<T> {
  const base = new URL(ctx.instance);
  if (!base.pathname.endsWith('/')) base.pathname += '/';
  const request: HttpRequest = {
    method: 'POST',
    url: new URL(path, base),
    json: Object.fromEntries(Object.entries(body).filter(([, value]) => value !== undefined)),
    idempotent,
    accept: WRAPPER_ERROR_STATUSES,
  };
  const response = await ctx.http.send(request);
  let wrapped: z.infer<typeof wrapper>;
  try {
    wrapped = parseJson(request, response, wrapper);
  } catch (error) {
    // An error status without the wrapper (a proxy's page, a bare 404) is reported as any other.
    if (response.status >= 400) throw toServerError(request, response);
    throw error;
  }
  if (response.status >= 400 && String(wrapped.code) === '1000') {
    throw toServerError(request, response);
  }
  const data = wrapped.data;
  if (data && typeof data === 'object') {
    for (const key of ['accessToken', 'token', 'refreshToken']) {
      const value = (data as Record<string, unknown>)[key];
      if (typeof value === 'string' && value) ctx.mask(value);
    }
  }
  const code = String(wrapped.code);
  if (code !== '1000') {
    throw new ServerError({
      server: response.url.origin,
      endpoint: `POST ${response.url.pathname}`,
      status: response.status,
      code,
      description:
        describeCode(code) ?? (wrapped.message ? oneLine(wrapped.message, 120) : undefined),
      hint: CODE_HINTS[code],
    });
  }
  return parseJson(request, { ...response, text: JSON.stringify(data ?? null) }, schema);
}

function tokenSet(accessToken: string, expires: number | string | null | undefined): TokenSet {
  // The JWT's own `exp` is what the server enforces; the wrapper's lifetime is the fallback.
  const exp = decodeJwt(accessToken)?.exp;
  return {
    accessToken,
    tokenType: 'Bearer',
    expiresAt: exp === undefined ? expiry(expires) : new Date(exp * 1000),
  };
}

/**
 * AnyWeb has reported lifetimes both as seconds from now and as timestamps; a value that can
 * only be a date (after 2001) is read as epoch seconds or milliseconds.
 */
export function expiry(
  value: number | string | null | undefined,
  now = Date.now(),
): Date | undefined {
  const number = typeof value === 'string' ? Number(value) : value;
  if (number === undefined || number === null || !Number.isFinite(number) || number <= 0) {
    return undefined;
  }
  if (number > 1e12) return new Date(number);
  if (number > 1e9) return new Date(number * 1000);
  return new Date(now + number * 1000);
}

interface Claims {
  exp?: number;
  /** The user's unionid. */
  id?: string;
  appid?: string;
}

/** The payload of a JWT, unverified: the HS256 key is AnyWeb's, so only AnyWeb can verify it. */
export function decodeJwt(token: string): Claims | undefined {
  const parts = token.split('.');
  if (parts.length !== 3 || !parts[1]) return undefined;
  try {
    const payload: unknown = JSON.parse(Buffer.from(parts[1], 'base64url').toString('utf8'));
    if (!payload || typeof payload !== 'object') return undefined;
    const record = payload as Record<string, unknown>;
    return {
      exp: typeof record.exp === 'number' ? record.exp : undefined,
      id: typeof record.id === 'string' ? record.id : undefined,
      appid: typeof record.appid === 'string' ? record.appid : undefined,
    };
  } catch {
    return undefined;
  }
}
