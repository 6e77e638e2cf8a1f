/**
 * A loopback Mastodon-API server in three flavours (Mastodon, GoToSocial, Pleroma) that behaves as
 * PROTOCOLS.md says each family does, including the differences a client trips over: status codes,
 * which body encodings each endpoint reads, token lifetimes, PKCE, app tokens. Erasable TypeScript
 * only, so the demo can run it directly on Node 24.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { FaultQueue, serveFault, type Fault } from './faults.ts';
import {
  basicAuth,
  bearerToken,
  escapeHtml,
  listen,
  readBody,
  redirect,
  sendHtml,
  sendJson,
  type ParsedBody,
} from './util.ts';

export type Flavour = 'mastodon' | 'gotosocial' | 'pleroma';

export interface RegisteredApp {
  clientId: string;
  clientSecret: string;
  redirectUris: string[];
  scopes: string[];
  name: string;
}

export interface RequestRecord {
  method: string;
  path: string;
  query: string;
  /** 0 until the answer is sent (and for ever when a fault hangs or resets it). */
  status: number;
}

export interface MastodonServer {
  url: string;
  flavour: Flavour;
  requests: RequestRecord[];
  registerApp(
    opts?: Partial<{ name: string; redirectUris: string[]; scopes: string[] }>,
  ): RegisteredApp;
  issueCode(opts: {
    clientId: string;
    redirectUri: string;
    scope?: string;
    codeChallenge?: string;
    user?: string;
  }): string;
  issueToken(opts?: { clientId?: string; scope?: string; user?: string | null }): string;
  isRevoked(token: string): boolean;
  inject(fault: Fault): void;
  close(): Promise<void>;
}

export interface User {
  id: string;
  username: string;
}

export const OOB = 'urn:ietf:wg:oauth:2.0:oob';

/** Each family's own id style: snowflakes beyond 2^53, ULIDs, flake ids. */
const DEFAULT_USERS: Record<Flavour, User[]> = {
  mastodon: [{ id: '113406148396826625', username: 'alice' }],
  gotosocial: [{ id: '01JD7N0Q8XGHPBVJ6N4C6F9R2Z', username: 'alice' }],
  pleroma: [{ id: 'AqbkKnCrT2lJ2hJ3aK', username: 'alice' }],
};

const VERSIONS: Record<Flavour, { instance: string; software: string; nodeinfo: string }> = {
  mastodon: { instance: '4.4.0', software: 'mastodon', nodeinfo: '4.4.0' },
  gotosocial: { instance: '0.19.0', software: 'gotosocial', nodeinfo: '0.19.0' },
  pleroma: {
    instance: '2.7.2 (compatible; Pleroma 2.7.0)',
    software: 'pleroma',
    nodeinfo: '2.7.0',
  },
};

const CODE_LIFETIME_MS = 10 * 60 * 1000;
const GTS_APP_TOKEN_SECONDS = 7200;
/** Pleroma's default `token_expires_in`: about a hundred years. */
const PLEROMA_TOKEN_SECONDS = 3_153_600_000;

interface App extends RegisteredApp {
  id: string;
  website?: string;
}

interface Code {
  clientId: string;
  redirectUri: string;
  scopes: string[];
  userId: string;
  challenge?: string;
  expiresAt: number;
  used: boolean;
}

interface Token {
  value: string;
  clientId: string;
  scopes: string[];
  userId: string | null;
  revoked: boolean;
  createdAt: number;
  expiresAt?: number;
  refreshToken?: string;
}

const random = (bytes = 32): string => randomBytes(bytes).toString('base64url');
const s256 = (verifier: string): string =>
  createHash('sha256').update(verifier).digest('base64url');

/** Parent scopes grant their children: `read` ⊃ `read:accounts`, `admin:read` ⊃ `admin:read:x`. */
export function scopeGranted(have: readonly string[], want: string): boolean {
  for (let scope = want; ;) {
    if (have.includes(scope)) return true;
    const at = scope.lastIndexOf(':');
    if (at < 0) return false;
    scope = scope.slice(0, at);
  }
}

function splitScopes(value: unknown, fallback: string[]): string[] {
  if (typeof value !== 'string' || value.trim() === '') return fallback;
  return value.split(/[\s+]+/).filter(Boolean);
}

export interface MastodonServerOptions {
  flavour?: Flavour;
  users?: User[];
  /**
   * Pleroma only: hand out a new refresh token on every refresh. Pleroma's default
   * (`config :pleroma, :oauth2, issue_new_refresh_token: true`, which despite its name keeps the
   * refresh token) carries the old refresh token over to the new access token; setting it to false
   * rotates. Either way the old access token is revoked.
   */
  rotateRefreshTokens?: boolean;
  /**
   * Refuse http:// redirect URIs at registration, as Doorkeeper does with
   * force_ssl_in_redirect_uri (its default outside development; stock Mastodon turns it off).
   */
  httpsRedirectsOnly?: boolean;
}

export async function startMastodonServer(
  opts: MastodonServerOptions = {},
): Promise<MastodonServer> {
  const flavour = opts.flavour ?? 'mastodon';
  const users = opts.users ?? DEFAULT_USERS[flavour];
  const apps = new Map<string, App>();
  const codes = new Map<string, Code>();
  const tokens = new Map<string, Token>();
  const refreshTokens = new Map<string, string>();
  const faults = new FaultQueue();
  const requests: RequestRecord[] = [];
  let appCounter = 0;
  let remaining = 300;
  let origin = '';

  const findUser = (key: string | undefined): User => {
    const user =
      key === undefined ? users[0] : users.find((u) => u.id === key || u.username === key);
    if (!user) throw new Error(`no such user: ${key ?? '(default)'}`);
    return user;
  };

  const addApp = (
    name: string,
    redirectUris: string[],
    scopes: string[],
    website?: string,
  ): App => {
    appCounter++;
    const app: App = {
      id: String(appCounter),
      name,
      redirectUris,
      scopes,
      clientId: random(),
      clientSecret: random(),
      website,
    };
    apps.set(app.clientId, app);
    return app;
  };

  const liveToken = (value: string | undefined): Token | undefined => {
    const token = value === undefined ? undefined : tokens.get(value);
    if (!token || token.revoked) return undefined;
    if (token.expiresAt !== undefined && token.expiresAt <= Date.now()) return undefined;
    return token;
  };

  const mintToken = (clientId: string, scopes: string[], userId: string | null): Token => {
    const now = Date.now();
    const token: Token = {
      value: random(),
      clientId,
      scopes,
      userId,
      revoked: false,
      createdAt: now,
    };
    if (flavour === 'gotosocial' && userId === null) {
      token.expiresAt = now + GTS_APP_TOKEN_SECONDS * 1000;
    }
    if (flavour === 'pleroma') {
      token.expiresAt = now + PLEROMA_TOKEN_SECONDS * 1000;
      token.refreshToken = random();
      refreshTokens.set(token.refreshToken, token.value);
    }
    tokens.set(token.value, token);
    return token;
  };

  /** Mastodon's `reuse_access_token`: the same app, owner and scopes get the same live token. */
  const obtainToken = (clientId: string, scopes: string[], userId: string | null): Token => {
    if (flavour === 'mastodon') {
      const key = [...scopes].sort().join(' ');
      for (const token of tokens.values()) {
        if (
          token.clientId === clientId &&
          token.userId === userId &&
          [...token.scopes].sort().join(' ') === key &&
          liveToken(token.value)
        ) {
          return token;
        }
      }
    }
    return mintToken(clientId, scopes, userId);
  };

  const tokenJson = (token: Token): Record<string, unknown> => {
    const body: Record<string, unknown> = {
      access_token: token.value,
      token_type: 'Bearer',
      scope: token.scopes.join(' '),
      created_at: Math.floor(token.createdAt / 1000),
    };
    if (token.expiresAt !== undefined) {
      body.expires_in = Math.round((token.expiresAt - Date.now()) / 1000);
    }
    if (flavour === 'pleroma') {
      body.refresh_token = token.refreshToken;
      const user = token.userId ? users.find((u) => u.id === token.userId) : undefined;
      body.me = user ? `${origin}/users/${user.username}` : null;
    }
    return body;
  };

  const accountJson = (user: User): Record<string, unknown> => ({
    id: user.id,
    username: user.username,
    acct: user.username,
    display_name: user.username,
    url: `${origin}/@${user.username}`,
    created_at: '2024-01-01T00:00:00.000Z',
  });

  /**
   * Rate-limit headers, the reset as ISO 8601 on both Mastodon and GoToSocial (GoToSocial's
   * middleware/ratelimit.go, v0.19.2, formats it with util.FormatISO8601).
   */
  const rateHeaders = (): Record<string, string> => {
    if (flavour === 'pleroma') return {};
    remaining = Math.max(0, remaining - 1);
    const reset = Math.ceil(Date.now() / 300_000) * 300_000;
    return {
      'x-ratelimit-limit': '300',
      'x-ratelimit-remaining': String(remaining),
      'x-ratelimit-reset': new Date(reset).toISOString(),
    };
  };

  const json = (res: ServerResponse, status: number, body: unknown): void =>
    sendJson(res, status, body, rateHeaders());

  // ---- POST /api/v1/apps -------------------------------------------------------------------
  const createApp = (res: ServerResponse, body: ParsedBody): void => {
    const { fields } = body;
    const rawUris = fields.redirect_uris;
    if (Array.isArray(rawUris) && flavour !== 'mastodon') {
      // GoToSocial and Pleroma bind redirect_uris to a string; an array fails to decode.
      return json(res, 400, { error: 'Bad Request: redirect_uris must be a string' });
    }
    const name = typeof fields.client_name === 'string' ? fields.client_name.trim() : '';
    if (!name) return json(res, 422, { error: "Validation failed: Name can't be blank" });
    const uris = (Array.isArray(rawUris) ? rawUris : [rawUris])
      .flatMap((v) => (typeof v === 'string' ? v.split('\n') : []))
      .map((v) => v.trim())
      .filter(Boolean);
    if (uris.length === 0) {
      return json(res, 422, { error: "Validation failed: Redirect URI can't be blank" });
    }
    if (uris.some((uri) => uri !== OOB && !URL.canParse(uri))) {
      return json(res, 422, { error: 'Validation failed: Redirect URI must be an absolute URI.' });
    }
    if (opts.httpsRedirectsOnly && uris.some((uri) => uri.startsWith('http:'))) {
      return json(res, 422, { error: 'Validation failed: Redirect URI must be an HTTPS/SSL URI.' });
    }
    const scopes = splitScopes(fields.scopes, ['read']);
    const website = typeof fields.website === 'string' ? fields.website : undefined;
    const app = addApp(name, uris, scopes, website);
    json(res, 200, {
      id: app.id,
      name: app.name,
      website: app.website ?? null,
      scopes: app.scopes,
      redirect_uri: app.redirectUris.join('\n'),
      redirect_uris: app.redirectUris,
      client_id: app.clientId,
      client_secret: app.clientSecret,
      vapid_key: 'BEm_vapid_key_for_tests',
    });
  };

  // ---- /oauth/authorize --------------------------------------------------------------------
  const authorizeError = (res: ServerResponse, message: string): undefined => {
    sendHtml(
      res,
      400,
      `<!DOCTYPE html><html><body><h1>An error has occurred</h1><p id="error">${escapeHtml(message)}</p></body></html>`,
    );
    return undefined;
  };

  /** Checks shared by the page and the decision; returns the app or answers with an error page. */
  const checkAuthorize = (
    res: ServerResponse,
    params: Record<string, unknown>,
  ): { app: App; scopes: string[] } | undefined => {
    const get = (name: string) => (typeof params[name] === 'string' ? params[name] : '');
    const app = apps.get(get('client_id'));
    if (!app) return authorizeError(res, 'Client authentication failed due to unknown client.');
    if (get('response_type') !== 'code') {
      return authorizeError(res, 'The authorization server does not support this response type.');
    }
    if (!app.redirectUris.includes(get('redirect_uri'))) {
      return authorizeError(
        res,
        'The requested redirect uri is malformed or doesn’t match client redirect URI.',
      );
    }
    const scopes = splitScopes(get('scope'), ['read']);
    if (!scopes.every((s) => scopeGranted(app.scopes, s))) {
      return authorizeError(res, 'The requested scope is invalid, unknown, or malformed.');
    }
    if (
      flavour === 'mastodon' &&
      get('code_challenge') &&
      get('code_challenge_method') !== 'S256'
    ) {
      return authorizeError(res, 'Code challenge method must be S256.');
    }
    return { app, scopes };
  };

  const authorizePage = (res: ServerResponse, query: URLSearchParams): void => {
    const params = Object.fromEntries(query);
    const checked = checkAuthorize(res, params);
    if (!checked) return;
    const hidden = [
      'client_id',
      'redirect_uri',
      'response_type',
      'scope',
      'state',
      'code_challenge',
      'code_challenge_method',
    ]
      .map(
        (name) => `<input type="hidden" name="${name}" value="${escapeHtml(params[name] ?? '')}">`,
      )
      .join('');
    const scopes = checked.scopes.map((s) => `<li class="scope">${escapeHtml(s)}</li>`).join('');
    sendHtml(
      res,
      200,
      `<!DOCTYPE html><html><head><meta charset="utf-8"><title>Authorization required</title></head>
<body><h1>Authorize <span id="client-name">${escapeHtml(checked.app.name)}</span>?</h1>
<p>This application will be able to:</p><ul id="scopes">${scopes}</ul>
<form method="post" action="/oauth/authorize">${hidden}
<button type="submit" id="approve" name="decision" value="approve">Authorize</button>
<button type="submit" id="deny" name="decision" value="deny">Deny</button>
</form></body></html>`,
    );
  };

  const authorizeDecision = (res: ServerResponse, body: ParsedBody): void => {
    const params = body.fields;
    const checked = checkAuthorize(res, params);
    if (!checked) return;
    const get = (name: string) => (typeof params[name] === 'string' ? params[name] : '');
    const redirectUri = get('redirect_uri');
    const state = get('state');
    if (get('decision') !== 'approve') {
      if (redirectUri === OOB) return authorizeError(res, 'The resource owner denied the request.');
      const target = new URL(redirectUri);
      target.searchParams.set('error', 'access_denied');
      target.searchParams.set(
        'error_description',
        'The resource owner or authorization server denied the request.',
      );
      if (state) target.searchParams.set('state', state);
      return redirect(res, target.href);
    }
    const code = makeCode({
      clientId: checked.app.clientId,
      redirectUri,
      scopes: checked.scopes,
      userId: findUser(undefined).id,
      challenge: get('code_challenge') || undefined,
    });
    if (redirectUri === OOB) {
      if (flavour === 'gotosocial') {
        return redirect(res, `/oauth/oob?code=${encodeURIComponent(code)}`);
      }
      return codePage(res, code);
    }
    const target = new URL(redirectUri);
    target.searchParams.set('code', code);
    if (state) target.searchParams.set('state', state);
    redirect(res, target.href);
  };

  const codePage = (res: ServerResponse, code: string): void =>
    sendHtml(
      res,
      200,
      `<!DOCTYPE html><html><body><h1>Authorization code</h1>
<p>Copy this authorization code and paste it to the application.</p>
<input id="code" class="oauth-code" readonly type="text" value="${escapeHtml(code)}"></body></html>`,
    );

  const makeCode = (code: Omit<Code, 'expiresAt' | 'used'>): string => {
    const value = random();
    // Only Mastodon stores the challenge; GoToSocial accepts and ignores it, Pleroma has no PKCE.
    const challenge = flavour === 'mastodon' ? code.challenge : undefined;
    codes.set(value, { ...code, challenge, expiresAt: Date.now() + CODE_LIFETIME_MS, used: false });
    return value;
  };

  // ---- POST /oauth/token -------------------------------------------------------------------
  const oauthError = (res: ServerResponse, status: number, error: string, description?: string) =>
    json(res, status, description ? { error, error_description: description } : { error });

  const clientOf = (req: IncomingMessage, fields: Record<string, unknown>) => {
    // GoToSocial reads client credentials from the body only (ClientFormHandler).
    const basic = flavour === 'gotosocial' ? undefined : basicAuth(req);
    const id = basic?.id ?? (typeof fields.client_id === 'string' ? fields.client_id : '');
    const secret =
      basic?.secret ?? (typeof fields.client_secret === 'string' ? fields.client_secret : '');
    const app = apps.get(id);
    return { id, app: app && app.clientSecret === secret ? app : undefined };
  };

  const badClient = (res: ServerResponse): void => {
    const description =
      'Client authentication failed due to unknown client, no client authentication included, or unsupported authentication method.';
    if (flavour === 'mastodon') return oauthError(res, 401, 'invalid_client', description);
    if (flavour === 'gotosocial')
      return oauthError(res, 400, 'invalid_client', 'client authentication failed');
    json(res, 400, { error: 'Invalid credentials' });
  };

  /**
   * GoToSocial's token errors (internal/oauth/server.go HandleTokenRequest, v0.19.2): the OAuth
   * library's error as `error`, its text and HelpfulAdvice as `error_description`. A code it
   * cannot find (unknown, or deleted by its first use) surfaces as the database's no-rows error;
   * an expired code, or one issued to another client or redirect URI, as the library's
   * invalid_grant (server.GetAccessToken maps ErrInvalidAuthorizeCode to it).
   */
  const GTS_ADVICE =
    "If you arrived at this error during a sign in/oauth flow, please try clearing your session cookies and signing in again; if problems persist, make sure you're using the correct credentials";
  const gtsBadCode = (res: ServerResponse, missing: boolean): void => {
    const error = missing ? 'sql: no rows in result set' : 'invalid_grant';
    oauthError(res, 400, error, `Bad Request: could not get access token: ${error}: ${GTS_ADVICE}`);
  };

  const gtsUnregisteredRedirect = (res: ServerResponse, uri: string | undefined): void =>
    oauthError(
      res,
      403,
      'invalid redirect uri',
      `Forbidden: requested redirect URI ${uri ?? ''} was not covered by client redirect URIs: ${GTS_ADVICE}`,
    );

  const token = (req: IncomingMessage, res: ServerResponse, body: ParsedBody): void => {
    const { fields } = body;
    const str = (name: string) => (typeof fields[name] === 'string' ? fields[name] : undefined);
    const grant = str('grant_type');
    const grants =
      flavour === 'pleroma'
        ? ['authorization_code', 'client_credentials', 'refresh_token', 'password']
        : ['authorization_code', 'client_credentials'];
    if (!grant || !grants.includes(grant)) {
      if (flavour === 'pleroma') return json(res, 400, { error: 'Bad request' });
      return oauthError(
        res,
        400,
        'unsupported_grant_type',
        'The authorization grant type is not supported by the authorization server.',
      );
    }
    const redirectUri = str('redirect_uri');
    if (flavour === 'gotosocial') {
      // GoToSocial's token handler insists on these fields in the body, redirect_uri included,
      // for both of its grants, and lists every missing one.
      const help = [
        ['client_id', 'client_id was not set in the token request form'],
        ['client_secret', 'client_secret was not set in the token request form'],
        ['redirect_uri', 'redirect_uri was not set in the token request form'],
        ...(grant === 'authorization_code'
          ? [['code', 'code was not set in the token request form']]
          : []),
      ]
        .filter(([name]) => str(name ?? '') === undefined)
        .map(([, text]) => text);
      if (help.length > 0) {
        return oauthError(res, 400, 'invalid_request', `Bad Request: ${help.join(': ')}`);
      }
    }
    const { app } = clientOf(req, fields);
    if (!app) return badClient(res);

    if (grant === 'client_credentials') {
      if (flavour === 'gotosocial' && !app.redirectUris.includes(redirectUri ?? '')) {
        return gtsUnregisteredRedirect(res, redirectUri);
      }
      const scopes = splitScopes(str('scope'), flavour === 'pleroma' ? app.scopes : ['read']);
      if (!scopes.every((s) => scopeGranted(app.scopes, s))) {
        if (flavour === 'gotosocial') {
          return oauthError(
            res,
            403,
            'invalid_scope',
            `Forbidden: requested scope ${scopes.join(' ')} was not covered by client scope`,
          );
        }
        return oauthError(
          res,
          400,
          'invalid_scope',
          'The requested scope is invalid, unknown, or malformed.',
        );
      }
      return json(res, 200, tokenJson(obtainToken(app.clientId, scopes, null)));
    }

    if (grant === 'refresh_token') {
      const old = tokens.get(refreshTokens.get(str('refresh_token') ?? '') ?? '');
      if (!old || old.clientId !== app.clientId)
        return json(res, 400, { error: 'Invalid credentials' });
      // Pleroma deletes the old access token, refresh token and all, and creates a new one that
      // carries the old refresh token over unless the server is configured to rotate it.
      old.revoked = true;
      if (old.refreshToken) refreshTokens.delete(old.refreshToken);
      const next = mintToken(app.clientId, old.scopes, old.userId);
      if (!opts.rotateRefreshTokens && old.refreshToken && next.refreshToken) {
        refreshTokens.delete(next.refreshToken);
        next.refreshToken = old.refreshToken;
        refreshTokens.set(next.refreshToken, next.value);
      }
      return json(res, 200, tokenJson(next));
    }

    if (grant === 'password') return json(res, 400, { error: 'Invalid credentials' });

    // GoToSocial's manager checks the redirect URI against the app before it looks at the code
    // (manage.Manager.GenerateAccessToken, vendored oauth2 v4 in v0.19.2).
    if (flavour === 'gotosocial' && !app.redirectUris.includes(redirectUri ?? '')) {
      return gtsUnregisteredRedirect(res, redirectUri);
    }
    const code = codes.get(str('code') ?? '');
    if (!code || code.used || code.expiresAt <= Date.now() || code.clientId !== app.clientId) {
      if (flavour === 'gotosocial') return gtsBadCode(res, !code || code.used);
      if (flavour === 'pleroma') return json(res, 400, { error: 'Invalid credentials' });
      return oauthError(
        res,
        400,
        'invalid_grant',
        'The provided authorization grant is invalid, expired, revoked, does not match the redirection URI used in the authorization request, or was issued to another client.',
      );
    }
    if (redirectUri !== code.redirectUri) {
      // A registered URI that is not the code's: the library reports the code as invalid.
      if (flavour === 'gotosocial') return gtsBadCode(res, false);
      if (flavour === 'pleroma') return json(res, 400, { error: 'Invalid credentials' });
      return oauthError(
        res,
        400,
        'invalid_grant',
        'The provided authorization grant is invalid, expired, revoked, does not match the redirection URI used in the authorization request, or was issued to another client.',
      );
    }
    if (flavour === 'mastodon') {
      const verifier = str('code_verifier');
      // Doorkeeper: no challenge stored and no verifier sent is fine; anything else must match.
      if ((code.challenge || verifier) && (!verifier || s256(verifier) !== code.challenge)) {
        return oauthError(
          res,
          400,
          'invalid_grant',
          'The provided authorization grant is invalid, expired, revoked, does not match the redirection URI used in the authorization request, or was issued to another client.',
        );
      }
    }
    code.used = true;
    json(res, 200, tokenJson(obtainToken(app.clientId, code.scopes, code.userId)));
  };

  // ---- POST /oauth/revoke ------------------------------------------------------------------
  const revoke = (req: IncomingMessage, res: ServerResponse, body: ParsedBody): void => {
    const { fields } = body;
    const value = typeof fields.token === 'string' ? fields.token : '';
    if (flavour === 'pleroma') {
      const found = tokens.get(value);
      if (found) found.revoked = true;
      return json(res, 200, {});
    }
    if (flavour === 'gotosocial') {
      // Fields bind from a form only; a JSON body's `token` still lands (Go matches JSON keys
      // case-insensitively) but `client_id` does not, so JSON fails on the client id.
      const form = body.kind === 'form' ? fields : { token: fields.token };
      for (const name of ['token', 'client_id', 'client_secret']) {
        if (typeof form[name] !== 'string' || form[name] === '') {
          return oauthError(res, 400, 'invalid_request', `Bad Request: ${name} not set`);
        }
      }
      // The token is looked up first: unknown or expired answers 200 whoever asks.
      const found = liveToken(value);
      if (!found) return json(res, 200, {});
      const app = apps.get(String(form.client_id));
      if (found.clientId !== form.client_id || app?.clientSecret !== form.client_secret) {
        return oauthError(
          res,
          403,
          'unauthorized_client',
          'Forbidden: You are not authorized to revoke this token',
        );
      }
      found.revoked = true;
      return json(res, 200, {});
    }
    const { app } = clientOf(req, fields);
    if (!app) return badClient(res);
    const found = tokens.get(value);
    if (!found || found.revoked) return json(res, 200, {});
    if (found.clientId !== app.clientId) {
      return oauthError(
        res,
        403,
        'unauthorized_client',
        'You are not authorized to revoke this token',
      );
    }
    found.revoked = true;
    json(res, 200, {});
  };

  // ---- API ---------------------------------------------------------------------------------
  /**
   * GoToSocial's apiutil.TokenAuth (api/util/auth.go, v0.19.2) with token, app, user and account
   * required: no valid token → "token not supplied"; a token without a user → "user not
   * supplied"; then the scopes, any one of which (or a parent) will do. Undefined when it passes.
   */
  const gtsTokenAuth = (
    req: IncomingMessage,
    scopes: string[],
  ): { status: number; error: string } | undefined => {
    const found = liveToken(bearerToken(req));
    if (!found) return { status: 401, error: 'Unauthorized: token not supplied' };
    if (!found.userId) {
      return { status: 401, error: 'Unauthorized: user not supplied or not authorized' };
    }
    if (!scopes.some((scope) => scopeGranted(found.scopes, scope))) {
      return { status: 403, error: 'Forbidden: token has insufficient scope permission' };
    }
    return undefined;
  };

  const verifyCredentials = (req: IncomingMessage, res: ServerResponse): void => {
    const found = liveToken(bearerToken(req));
    if (flavour === 'gotosocial') {
      // accounts/accountverify.go: profile or read:accounts.
      const gate = gtsTokenAuth(req, ['profile', 'read:accounts']);
      if (gate) return json(res, gate.status, { error: gate.error });
      return json(res, 200, accountJson(findUser(found?.userId ?? undefined)));
    }
    if (flavour === 'pleroma') {
      if (!found || !found.userId) return json(res, 403, { error: 'Invalid credentials.' });
    } else {
      if (!found) return json(res, 401, { error: 'The access token is invalid' });
      if (!found.userId)
        return json(res, 422, { error: 'This method requires an authenticated user' });
    }
    if (!['read:accounts', 'profile'].some((s) => scopeGranted(found.scopes, s))) {
      return json(res, 403, { error: 'This action is outside the authorized scopes' });
    }
    json(res, 200, accountJson(findUser(found.userId)));
  };

  const appCredentials = (req: IncomingMessage, res: ServerResponse): void => {
    if (flavour === 'gotosocial') {
      // No such endpoint: GET /api/v1/apps/:id takes `verify_credentials` as an app id, after
      // TokenAuth(token, app, user, account, read:applications) (apps/appget.go, v0.19.2), and
      // no app has that id.
      const gate = gtsTokenAuth(req, ['read:applications']);
      if (gate) return json(res, gate.status, { error: gate.error });
      return json(res, 404, { error: 'Not Found' });
    }
    const found = liveToken(bearerToken(req));
    if (!found) {
      // Pleroma skips its auth plugs here and the action only matches a request with a token:
      // without one Phoenix raises ActionClauseError, which answers 400.
      if (flavour === 'pleroma') return json(res, 400, { error: 'Bad request' });
      return json(res, 401, { error: 'The access token is invalid' });
    }
    const app = apps.get(found.clientId);
    if (!app) return json(res, 401, { error: 'The access token is invalid' });
    json(res, 200, {
      id: app.id,
      name: app.name,
      website: app.website ?? null,
      scopes: app.scopes,
      redirect_uri: app.redirectUris.join('\n'),
      redirect_uris: app.redirectUris,
      vapid_key: 'BEm_vapid_key_for_tests',
    });
  };

  const lookup = (req: IncomingMessage, res: ServerResponse, query: URLSearchParams): void => {
    if (flavour === 'gotosocial') {
      // accounts/lookup.go: a user token with read:accounts.
      const gate = gtsTokenAuth(req, ['read:accounts']);
      if (gate) return json(res, gate.status, { error: gate.error });
    }
    const acct = (query.get('acct') ?? '').replace(/^@/, '');
    const host = new URL(origin).host;
    const name = acct.endsWith(`@${host}`) ? acct.slice(0, -host.length - 1) : acct;
    const user = users.find((u) => u.username === name);
    if (!user) return json(res, 404, { error: 'Record not found' });
    json(res, 200, accountJson(user));
  };

  const { software, nodeinfo: nodeinfoVersion, instance: instanceVersion } = VERSIONS[flavour];

  const route = async (req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> => {
    const key = `${req.method} ${url.pathname}`;
    switch (key) {
      case 'POST /api/v1/apps':
        return createApp(res, await readBody(req));
      case 'GET /oauth/authorize':
        return authorizePage(res, url.searchParams);
      case 'POST /oauth/authorize':
        return authorizeDecision(res, await readBody(req));
      case 'GET /oauth/oob':
        if (flavour !== 'gotosocial') break;
        return codePage(res, url.searchParams.get('code') ?? '');
      case 'POST /oauth/token':
        return token(req, res, await readBody(req));
      case 'POST /oauth/revoke':
        return revoke(req, res, await readBody(req));
      case 'GET /api/v1/accounts/verify_credentials':
        return verifyCredentials(req, res);
      case 'GET /api/v1/apps/verify_credentials':
        return appCredentials(req, res);
      case 'GET /api/v1/accounts/lookup':
        return lookup(req, res, url.searchParams);
      case 'GET /api/v1/instance':
        return json(res, 200, {
          uri: new URL(origin).host,
          title: `${software} test server`,
          version: instanceVersion,
          registrations: false,
        });
      case 'GET /.well-known/nodeinfo':
        return sendJson(res, 200, {
          links: [
            {
              rel: 'http://nodeinfo.diaspora.software/ns/schema/2.0',
              href: `${origin}/nodeinfo/2.0`,
            },
          ],
        });
      case 'GET /nodeinfo/2.0':
        return sendJson(res, 200, {
          version: '2.0',
          software: { name: software, version: nodeinfoVersion },
          protocols: ['activitypub'],
          services: { inbound: [], outbound: [] },
          usage: { users: { total: users.length } },
          openRegistrations: false,
          metadata: {},
        });
    }
    json(res, 404, { error: 'Record not found' });
  };

  const listening = await listen(async (req, res) => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const record: RequestRecord = {
      method: req.method ?? '',
      path: url.pathname,
      query: url.search.slice(1),
      status: 0,
    };
    requests.push(record);
    res.on('finish', () => {
      record.status = res.statusCode;
    });
    const fault = faults.take(record.method, record.path);
    if (fault) return serveFault(fault, req, res);
    await route(req, res, url);
  });
  origin = listening.url;

  return {
    url: listening.url,
    flavour,
    requests,
    registerApp(o = {}) {
      const app = addApp(
        o.name ?? 'fedi-token tests',
        o.redirectUris ?? [OOB],
        o.scopes ?? ['read'],
      );
      return {
        clientId: app.clientId,
        clientSecret: app.clientSecret,
        redirectUris: [...app.redirectUris],
        scopes: [...app.scopes],
        name: app.name,
      };
    },
    issueCode(o) {
      const app = apps.get(o.clientId);
      if (!app) throw new Error('issueCode: unknown client');
      return makeCode({
        clientId: o.clientId,
        redirectUri: o.redirectUri,
        scopes: splitScopes(o.scope, app.scopes),
        userId: findUser(o.user).id,
        challenge: o.codeChallenge,
      });
    },
    issueToken(o = {}) {
      const app = o.clientId
        ? apps.get(o.clientId)
        : addApp('fedi-token tests', [OOB], ['read', 'write']);
      if (!app) throw new Error('issueToken: unknown client');
      const userId = o.user === null ? null : findUser(o.user).id;
      return mintToken(app.clientId, splitScopes(o.scope, app.scopes), userId).value;
    },
    isRevoked(value) {
      return tokens.get(value)?.revoked ?? false;
    },
    inject(fault) {
      faults.inject(fault);
    },
    close: listening.close,
  };
}
