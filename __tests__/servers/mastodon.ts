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
    /** A code that was exchanged already. */
    used?: boolean;
  }): string;
  issueToken(opts?: {
    clientId?: string;
    scope?: string;
    user?: string | null;
    /** When the server created it; default now. */
    createdAt?: Date;
  }): string;
  isRevoked(token: string): boolean;
  /** An administrator changes the user's standing (undefined: back to a normal, active user). */
  setUserState(user: string, state: UserState | undefined): void;
  inject(fault: Fault): void;
  close(): Promise<void>;
}

export interface User {
  id: string;
  username: string;
  state?: UserState;
}

/**
 * How an account can stand apart from active. Mastodon (app/models/user.rb, v4.5.15): `functional?`
 * needs confirmed, approved, not disabled, not suspended and not memorial (a moved account stays
 * functional). Pleroma and Akkoma (User.account_status) call every such user not active.
 */
export type UserState = 'suspended' | 'unconfirmed' | 'pending' | 'disabled' | 'memorial';

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
/** Akkoma reports the Mastodon API level it copies and its own name (Pleroma.Application). */
const AKKOMA_VERSION = {
  instance: '2.7.2 (compatible; Akkoma 3.16.0)',
  software: 'akkoma',
  nodeinfo: '3.16.0',
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
  /**
   * Pleroma flavour only: be Akkoma, the Pleroma fork (nodeinfo name `akkoma`). The one difference
   * modelled: Akkoma answers a code that was already exchanged with the newest live token of the
   * same app and user (Token.get_or_exchange_token, lib/pleroma/web/o_auth/token.ex, Akkoma
   * develop 300302d4 2025-10), where Pleroma 2.7.0 refuses it (400 "Invalid credentials").
   */
  software?: 'akkoma';
  /**
   * Mastodon: DISALLOW_UNAUTHENTICATED_API_ACCESS=true, or limited federation mode. Every API
   * controller then runs `require_authenticated_user!` first (Api::BaseController, v4.5.15), which
   * answers 401 "This method requires an authenticated user" when no user stands behind the
   * token: app tokens, and tokens the server does not know at all.
   */
  disallowUnauthenticated?: boolean;
  /**
   * Mastodon: Rack::Attack's `throttle_oauth_application_registrations/ip`, 5 registrations per
   * 10 minutes from one address (config/initializers/rack_attack.rb, v4.5.15). Off by default:
   * the tests' many logins all come from 127.0.0.1, which no real server sees from one person.
   * A test may set its own window, to know how far its end is.
   */
  throttleAppRegistrations?: boolean | { limit: number; periodSeconds: number };
}

export async function startMastodonServer(
  opts: MastodonServerOptions = {},
): Promise<MastodonServer> {
  const flavour = opts.flavour ?? 'mastodon';
  const akkoma = flavour === 'pleroma' && opts.software === 'akkoma';
  // Copies: a test may change a user's standing without touching the shared defaults.
  const users = (opts.users ?? DEFAULT_USERS[flavour]).map((user) => ({ ...user }));
  const apps = new Map<string, App>();
  const codes = new Map<string, Code>();
  const tokens = new Map<string, Token>();
  const refreshTokens = new Map<string, string>();
  const faults = new FaultQueue();
  const requests: RequestRecord[] = [];
  let appCounter = 0;
  let remaining = 300;
  const registrations = new Map<number, number>();
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

  /**
   * Pleroma's revocation deletes the token row (Token.Strategy.Revoke.revoke: Repo.delete,
   * lib/pleroma/web/o_auth/token/strategy/revoke.ex, Pleroma 2.7.0 and Akkoma 300302d4), and the
   * refresh token is a column of that row: it is gone too. Elsewhere the row stays, marked.
   */
  const revokeToken = (token: Token): void => {
    token.revoked = true;
    if (flavour === 'pleroma' && token.refreshToken) refreshTokens.delete(token.refreshToken);
  };

  /** Who stands behind a token, revoked or not: Mastodon's `current_resource_owner`. */
  const ownerOf = (token: Token | undefined): User | undefined =>
    token?.userId ? users.find((u) => u.id === token.userId) : undefined;

  /**
   * Doorkeeper's answer to a token it will not accept (InvalidTokenResponse.from_access_token,
   * doorkeeper 5.8.2, rendered by Api::BaseController#doorkeeper_unauthorized_render_options).
   */
  const invalidTokenMessage = (token: Token | undefined): string => {
    if (token?.revoked) return 'The access token was revoked';
    if (token?.expiresAt !== undefined && token.expiresAt <= Date.now())
      return 'The access token expired';
    return 'The access token is invalid';
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
    // REST::AccountSerializer adds `suspended: true` for a suspended account (Mastodon v4.5.15).
    ...(flavour === 'mastodon' && user.state === 'suspended' ? { suspended: true } : {}),
    id: user.id,
    username: user.username,
    acct: user.username,
    display_name: user.username,
    url: `${origin}/@${user.username}`,
    created_at: '2024-01-01T00:00:00.000Z',
  });

  /** Rate-limit headers as Mastodon (ISO 8601 reset) and GoToSocial (epoch seconds) send them. */
  const rateHeaders = (): Record<string, string> => {
    if (flavour === 'pleroma') return {};
    remaining = Math.max(0, remaining - 1);
    const reset = Math.ceil(Date.now() / 300_000) * 300_000;
    return {
      'x-ratelimit-limit': '300',
      'x-ratelimit-remaining': String(remaining),
      'x-ratelimit-reset':
        flavour === 'mastodon' ? new Date(reset).toISOString() : String(Math.floor(reset / 1000)),
    };
  };

  const json = (res: ServerResponse, status: number, body: unknown): void =>
    sendJson(res, status, body, rateHeaders());

  // ---- POST /api/v1/apps -------------------------------------------------------------------
  const createApp = (res: ServerResponse, body: ParsedBody): void => {
    if (flavour === 'mastodon' && opts.throttleAppRegistrations) {
      // Rack::Attack counts in fixed windows keyed by (epoch seconds / period), throttled
      // requests included, and Mastodon's throttled_responder reports the window's end.
      const { limit, periodSeconds: period } =
        opts.throttleAppRegistrations === true
          ? { limit: 5, periodSeconds: 600 }
          : opts.throttleAppRegistrations;
      const now = Date.now() / 1000;
      const window = Math.floor(now / period);
      const count = (registrations.get(window) ?? 0) + 1;
      registrations.set(window, count);
      if (count > limit) {
        const reset = new Date((window + 1) * period * 1000).toISOString().replace('Z', '000Z');
        return sendJson(
          res,
          429,
          { error: 'Too many requests' },
          {
            'x-ratelimit-limit': String(limit),
            'x-ratelimit-remaining': '0',
            'x-ratelimit-reset': reset,
          },
        );
      }
    }
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
    if (flavour === 'pleroma') {
      // AppView "show.json" (lib/pleroma/web/mastodon_api/views/app_view.ex, Akkoma 300302d4):
      // no scopes, and the redirect URIs as the one string they were sent as.
      return json(res, 200, {
        id: app.id,
        name: app.name,
        client_id: app.clientId,
        client_secret: app.clientSecret,
        redirect_uri: app.redirectUris.join('\n'),
        website: app.website ?? null,
        vapid_key: 'BEm_vapid_key_for_tests',
      });
    }
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

  /**
   * Whether a redirect URI matches a registered one. Mastodon uses Doorkeeper's
   * URIChecker.matches? (lib/doorkeeper/oauth/helpers/uri_checker.rb, 5.8.2) at authorize and at
   * exchange: the request's query is ignored, and when both are loopback IP literals the port is
   * too (RFC 8252 §7.3). GoToSocial and Pleroma compare the strings exactly.
   */
  const redirectMatches = (requested: string, registered: string): boolean => {
    if (flavour !== 'mastodon' || requested === OOB || registered === OOB) {
      return requested === registered;
    }
    if (!URL.canParse(requested) || !URL.canParse(registered)) return false;
    const want = new URL(requested);
    const have = new URL(registered);
    if (have.search) {
      const sorted = (url: URL) => url.search.slice(1).split('&').sort().join('&');
      if (sorted(want) !== sorted(have)) return false;
      have.search = '';
    }
    // IPAddr#loopback?: 127.0.0.0/8 and ::1; a name such as localhost is not an IP literal.
    const loopback = (url: URL) =>
      /^127(\.\d{1,3}){3}$/.test(url.hostname) || url.hostname === '[::1]';
    if (loopback(want) && loopback(have)) {
      want.port = '';
      have.port = '';
    }
    want.search = '';
    return want.href === have.href;
  };
  const registeredRedirect = (app: App, uri: string): boolean =>
    app.redirectUris.some((registered) => redirectMatches(uri, registered));

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
    if (!registeredRedirect(app, get('redirect_uri'))) {
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
    // Pleroma gives codes the token lifespan (Authorization add_lifetime): about a hundred years.
    const lifetime = flavour === 'pleroma' ? PLEROMA_TOKEN_SECONDS * 1000 : CODE_LIFETIME_MS;
    codes.set(value, { ...code, challenge, expiresAt: Date.now() + lifetime, used: false });
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

  /** GoToSocial passes the OAuth library's error text through: not an RFC 6749 code. */
  const gtsBadCode = (res: ServerResponse): void =>
    oauthError(
      res,
      400,
      'invalid authorize code',
      'Bad Request: could not get access token: invalid authorize code',
    );

  const gtsUnregisteredRedirect = (res: ServerResponse, uri: string | undefined): void =>
    oauthError(
      res,
      403,
      'invalid redirect uri',
      `Forbidden: requested redirect URI ${uri ?? ''} was not covered by client redirect URIs`,
    );

  /**
   * Pleroma's authorization_code grant (token_exchange, o_auth_controller.ex): no redirect_uri
   * check and no PKCE. The code goes through Token.Utils.fix_padding (URI.decode, then
   * Base.url_decode64!), which raises on a missing or malformed code: Phoenix answers 500 with
   * ErrorView's body. A used code: Pleroma 2.7.0 refuses it (use_token: "already used"); Akkoma
   * hands back the newest unexpired token of the app and user (get_or_exchange_token).
   */
  const pleromaExchange = (res: ServerResponse, app: App, raw: string | undefined): void => {
    if (raw === undefined || !/^[A-Za-z0-9_-]*$/.test(raw) || raw.length % 4 === 1) {
      return json(res, 500, { errors: { detail: 'Internal server error' } });
    }
    const code = codes.get(raw);
    if (!code || code.clientId !== app.clientId) {
      return json(res, 400, { error: 'Invalid credentials' });
    }
    if (code.used) {
      const newest = akkoma
        ? [...tokens.values()]
            .filter((t) => t.clientId === app.clientId && t.userId === code.userId)
            .filter((t) => liveToken(t.value))
            .sort((a, b) => b.createdAt - a.createdAt)[0]
        : undefined;
      if (!newest) return json(res, 400, { error: 'Invalid credentials' });
      return json(res, 200, tokenJson(newest));
    }
    if (code.expiresAt <= Date.now()) return json(res, 400, { error: 'Invalid credentials' });
    code.used = true;
    json(res, 200, tokenJson(mintToken(app.clientId, code.scopes, code.userId)));
  };

  const token = (req: IncomingMessage, res: ServerResponse, body: ParsedBody): void => {
    const { fields } = body;
    const str = (name: string) => (typeof fields[name] === 'string' ? fields[name] : undefined);
    const grant = str('grant_type');
    const grants =
      flavour === 'pleroma'
        ? ['authorization_code', 'client_credentials', 'refresh_token', 'password']
        : ['authorization_code', 'client_credentials'];
    // Pleroma: a grant no token_exchange clause matches (an unknown or missing grant_type, a
    // refresh_token grant without refresh_token) falls to bad_request, which answers HTTP 500
    // (o_auth_controller.ex, Pleroma 2.7.0 and Akkoma 300302d4).
    if (flavour === 'pleroma' && (grant === 'refresh_token' ? !str('refresh_token') : !grant)) {
      return json(res, 500, { error: 'Bad request' });
    }
    if (!grant || !grants.includes(grant)) {
      if (flavour === 'pleroma') return json(res, 500, { error: 'Bad request' });
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
    if (flavour === 'mastodon' && grant === 'authorization_code') {
      // Doorkeeper checks the parameters before the client (AuthorizationCodeRequest
      // validate_params, doorkeeper 5.8.2): a code issued with a challenge needs a verifier.
      const pending = codes.get(str('code') ?? '');
      const missing =
        pending?.challenge && !str('code_verifier')
          ? 'code_verifier'
          : !redirectUri
            ? 'redirect_uri'
            : undefined;
      if (missing) {
        return oauthError(res, 400, 'invalid_request', `Missing required parameter: ${missing}.`);
      }
    }
    const { app } = clientOf(req, fields);
    if (!app) return badClient(res);

    if (grant === 'client_credentials') {
      if (flavour === 'gotosocial' && !app.redirectUris.includes(redirectUri ?? '')) {
        return gtsUnregisteredRedirect(res, redirectUri);
      }
      // Pleroma ignores `scope` here: Authorization.create_authorization(app, %User{}) takes the
      // app's registered scopes (o_auth_controller.ex, Pleroma 2.7.0 and Akkoma 300302d4).
      const scopes = flavour === 'pleroma' ? [...app.scopes] : splitScopes(str('scope'), ['read']);
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
      if (!old || old.revoked || old.clientId !== app.clientId)
        return json(res, 400, { error: 'Invalid credentials' });
      // Pleroma deletes the old access token, refresh token and all, and creates a new one that
      // carries the old refresh token over unless the server is configured to rotate it
      // (Token.Strategy.RefreshToken.grant with issue_new_refresh_token, default true).
      revokeToken(old);
      const next = mintToken(app.clientId, old.scopes, old.userId);
      if (!opts.rotateRefreshTokens && old.refreshToken && next.refreshToken) {
        refreshTokens.delete(next.refreshToken);
        next.refreshToken = old.refreshToken;
        refreshTokens.set(next.refreshToken, next.value);
      }
      return json(res, 200, tokenJson(next));
    }

    if (grant === 'password') return json(res, 400, { error: 'Invalid credentials' });
    if (flavour === 'pleroma') return pleromaExchange(res, app, str('code'));

    const code = codes.get(str('code') ?? '');
    if (!code || code.used || code.expiresAt <= Date.now() || code.clientId !== app.clientId) {
      if (flavour === 'gotosocial') return gtsBadCode(res);
      return oauthError(
        res,
        400,
        'invalid_grant',
        'The provided authorization grant is invalid, expired, revoked, does not match the redirection URI used in the authorization request, or was issued to another client.',
      );
    }
    if (flavour === 'gotosocial' && !app.redirectUris.includes(redirectUri ?? '')) {
      return gtsUnregisteredRedirect(res, redirectUri);
    }
    if (!redirectMatches(redirectUri ?? '', code.redirectUri)) {
      // A registered URI that is not the code's: the library reports the code as invalid.
      if (flavour === 'gotosocial') return gtsBadCode(res);
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
      // token_revoke needs only `token`, looks it up among access tokens (a refresh token is not
      // found, and answers 200 all the same) and deletes its row, refresh token and all.
      if (typeof fields.token !== 'string') return json(res, 500, { error: 'Bad request' });
      const found = tokens.get(value);
      if (found) revokeToken(found);
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
    // Doorkeeper's TokensController#revoke (5.8.2): `validate_presence_of_client` runs first, so
    // a wrong or missing client secret is refused with the same 403 unauthorized_client as
    // another app's token, before the token is looked at; an unknown token then answers 200.
    const { app } = clientOf(req, fields);
    const refuse = () =>
      oauthError(res, 403, 'unauthorized_client', 'You are not authorized to revoke this token');
    if (!app) return refuse();
    const found = tokens.get(value);
    if (!found) return json(res, 200, {});
    if (found.clientId !== app.clientId) return refuse();
    revokeToken(found);
    json(res, 200, {});
  };

  // ---- API ---------------------------------------------------------------------------------
  /**
   * Mastodon's before_actions in order (Api::BaseController, then the controller; v4.5.15):
   * `require_authenticated_user!` when unauthenticated access is off, `require_not_suspended!`,
   * the controller's own `doorkeeper_authorize!` (Accounts::CredentialsController asks for
   * profile, read or read:accounts), then `require_user!`. The user comes from the token even
   * when it is revoked (Doorkeeper's OAuth::Token.authenticate finds revoked tokens too).
   * Returns true when it answered.
   */
  const mastodonGate = (
    res: ServerResponse,
    token: Token | undefined,
    scopes: readonly string[] | undefined,
  ): boolean => {
    const owner = ownerOf(token);
    if (opts.disallowUnauthenticated && !owner) {
      json(res, 401, { error: 'This method requires an authenticated user' });
      return true;
    }
    if (owner?.state === 'suspended') {
      json(res, 403, { error: 'Your login is currently disabled' });
      return true;
    }
    const live = liveToken(token?.value);
    if (!live) {
      json(res, 401, { error: invalidTokenMessage(token) });
      return true;
    }
    if (scopes && !scopes.some((s) => scopeGranted(live.scopes, s))) {
      json(res, 403, { error: 'This action is outside the authorized scopes' });
      return true;
    }
    return false;
  };

  /** Api::BaseController#require_user! (v4.5.15). */
  const mastodonRequireUser = (res: ServerResponse, token: Token): boolean => {
    const owner = ownerOf(token);
    const refusal = !owner
      ? { status: 422, error: 'This method requires an authenticated user' }
      : owner.state === 'unconfirmed'
        ? { status: 403, error: 'Your login is missing a confirmed e-mail address' }
        : owner.state === 'pending'
          ? { status: 403, error: 'Your login is currently pending approval' }
          : owner.state
            ? { status: 403, error: 'Your login is currently disabled' }
            : undefined;
    if (refusal) json(res, refusal.status, { error: refusal.error });
    return refusal !== undefined;
  };

  /**
   * Pleroma's authenticated_api pipeline (router.ex): OAuthPlug finds an unexpired token,
   * UserEnabledPlug drops the auth of a user who is not active, EnsureAuthenticatedPlug answers
   * 403 "Invalid credentials." without a user (app tokens, unknown tokens, deactivated users),
   * and only then OAuthScopesPlug asks for read:accounts. `profile` is not a Pleroma scope.
   */
  const pleromaUser = (res: ServerResponse, token: Token | undefined): User | undefined => {
    const owner = ownerOf(token);
    if (!owner || owner.state) {
      json(res, 403, { error: 'Invalid credentials.' });
      return undefined;
    }
    if (!scopeGranted(token?.scopes ?? [], 'read:accounts')) {
      json(res, 403, { error: 'Insufficient permissions: read:accounts.' });
      return undefined;
    }
    return owner;
  };

  const verifyCredentials = (req: IncomingMessage, res: ServerResponse): void => {
    if (flavour === 'mastodon') {
      const token = tokens.get(bearerToken(req) ?? '');
      if (mastodonGate(res, token, ['profile', 'read', 'read:accounts'])) return;
      if (token && mastodonRequireUser(res, token)) return;
      return json(res, 200, accountJson(findUser(token?.userId ?? undefined)));
    }
    const found = liveToken(bearerToken(req));
    if (flavour === 'pleroma') {
      const owner = pleromaUser(res, found);
      if (owner) json(res, 200, accountJson(owner));
      return;
    }
    // TokenAuth: no valid token → "token not supplied"; a token without a user → "user not supplied".
    if (!found) return json(res, 401, { error: 'Unauthorized: token not supplied' });
    if (!found.userId)
      return json(res, 401, { error: 'Unauthorized: user not supplied or not authorized' });
    if (!['read:accounts', 'profile'].some((s) => scopeGranted(found.scopes, s))) {
      return json(res, 403, { error: 'This action is outside the authorized scopes' });
    }
    json(res, 200, accountJson(findUser(found.userId)));
  };

  const appCredentials = (req: IncomingMessage, res: ServerResponse): void => {
    if (flavour === 'gotosocial') return json(res, 404, { error: 'Not Found' });
    if (flavour === 'pleroma') {
      // The app_api pipeline skips the user checks, but UserEnabledPlug still drops a
      // deactivated user's token, and the action only has a clause for a request with a token:
      // without one Phoenix raises ActionClauseError (400), and ErrorView, which has no
      // "400.json", renders its 500 body. With one: AppView "compact_non_secret.json".
      const found = liveToken(bearerToken(req));
      const app = found && apps.get(found.clientId);
      if (!found || !app || ownerOf(found)?.state) {
        return json(res, 400, { errors: { detail: 'Internal server error' } });
      }
      return json(res, 200, {
        name: app.name,
        website: app.website ?? null,
        vapid_key: 'BEm_vapid_key_for_tests',
      });
    }
    // Apps::CredentialsController: no scopes asked, and no require_user!.
    const token = tokens.get(bearerToken(req) ?? '');
    if (mastodonGate(res, token, undefined)) return;
    const app = token && apps.get(token.clientId);
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

  /**
   * Doorkeeper's GET /oauth/token/info (TokenInfoController, 5.8.2; routed by Mastodon's
   * `use_doorkeeper`). A Doorkeeper controller, so none of Api::BaseController's checks apply.
   * The body is AccessToken#as_json: the token's own scopes, and the *user* id (not the account
   * id), null for an app token.
   */
  const tokenInfo = (req: IncomingMessage, res: ServerResponse): void => {
    const live = liveToken(bearerToken(req));
    if (!live) {
      const description = 'The access token is invalid';
      return sendJson(
        res,
        401,
        { error: 'invalid_token', error_description: description },
        {
          'www-authenticate': `Bearer realm="Doorkeeper", error="invalid_token", error_description="${description}"`,
        },
      );
    }
    const owner = ownerOf(live);
    sendJson(res, 200, {
      resource_owner_id: owner ? users.indexOf(owner) + 1 : null,
      scope: live.scopes,
      expires_in: null,
      application: { uid: live.clientId },
      created_at: Math.floor(live.createdAt / 1000),
    });
  };

  const lookup = (req: IncomingMessage, res: ServerResponse, query: URLSearchParams): void => {
    if (flavour === 'gotosocial' && !liveToken(bearerToken(req))) {
      return json(res, 401, { error: 'Unauthorized: token not supplied' });
    }
    const acct = (query.get('acct') ?? '').replace(/^@/, '');
    const host = new URL(origin).host;
    const name = acct.endsWith(`@${host}`) ? acct.slice(0, -host.length - 1) : acct;
    const user = users.find((u) => u.username === name);
    if (!user) return json(res, 404, { error: 'Record not found' });
    json(res, 200, accountJson(user));
  };

  const {
    software,
    nodeinfo: nodeinfoVersion,
    instance: instanceVersion,
  } = akkoma ? AKKOMA_VERSION : VERSIONS[flavour];

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
      case 'GET /oauth/token/info':
        if (flavour !== 'mastodon') break;
        return tokenInfo(req, res);
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
    if (flavour === 'pleroma' && req.method === 'GET') {
      // Pleroma's router ends in Fallback.RedirectController: /api/* answers 404 "Not
      // implemented", any other path the front end's index page with 200.
      if (url.pathname.startsWith('/api/')) return json(res, 404, { error: 'Not implemented' });
      return sendHtml(res, 200, '<!DOCTYPE html><html><body><div id="app"></div></body></html>');
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
      const value = makeCode({
        clientId: o.clientId,
        redirectUri: o.redirectUri,
        scopes: splitScopes(o.scope, app.scopes),
        userId: findUser(o.user).id,
        challenge: o.codeChallenge,
      });
      const code = codes.get(value);
      if (code && o.used) code.used = true;
      return value;
    },
    issueToken(o = {}) {
      const app = o.clientId
        ? apps.get(o.clientId)
        : addApp('fedi-token tests', [OOB], ['read', 'write']);
      if (!app) throw new Error('issueToken: unknown client');
      const userId = o.user === null ? null : findUser(o.user).id;
      const token = mintToken(app.clientId, splitScopes(o.scope, app.scopes), userId);
      if (o.createdAt) token.createdAt = o.createdAt.getTime();
      return token.value;
    },
    isRevoked(value) {
      return tokens.get(value)?.revoked ?? false;
    },
    setUserState(key, state) {
      findUser(key).state = state;
    },
    inject(fault) {
      faults.inject(fault);
    },
    close: listening.close,
  };
}
