/**
 * A loopback Pixelfed server: the routes fedi-token calls, answering as Pixelfed v0.12.6 does
 * (upstream commit f5f7b3e "Bump version to v0.12.6", read through the pixelfed-glitch mirror;
 * the files cited are unchanged at upstream staging 34278c7, December 2025). Its OAuth is Laravel
 * Passport 12 (composer.lock: v12.4.2; read at v12.3.0) on league/oauth2-server 8.5.5.
 *
 * What sets it apart from the Mastodon family in mastodon.ts, so it lives in its own module:
 * - app/Exceptions/Handler.php renders every exception a JSON client (Accept: application/json)
 *   causes as `{"error": message}` with the exception's getStatusCode(), else 500. Passport's
 *   OAuthServerException and Laravel's AuthenticationException have none: every OAuth error and
 *   every refused token is HTTP 500.
 * - Passport tokens expire (365 days), refresh tokens rotate (400 days), access tokens are JWTs
 *   whose claims carry the scopes; the token response has no `scope`.
 * - No /oauth/revoke; no /api/v1/accounts/lookup; account statuses without a Link header.
 *
 * Erasable TypeScript only, so Node 24 runs it directly.
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
} from './util.ts';

export const OOB = 'urn:ietf:wg:oauth:2.0:oob';
export const PIXELFED_VERSION = '0.12.6';

/** Passport::tokensCan in app/Providers/AuthServiceProvider.php: the only scopes there are. */
const KNOWN_SCOPES = [
  'read',
  'write',
  'follow',
  'admin:read',
  'admin:read:domain_blocks',
  'admin:write',
  'admin:write:domain_blocks',
  'push',
];
/** Passport::setDefaultScope (same file): what a request without `scope` gets. */
const DEFAULT_SCOPES = ['read', 'write', 'follow'];
/** config/instance.php `oauth.token_expiration` and `oauth.refresh_expiration`, in days. */
const ACCESS_DAYS = 365;
const REFRESH_DAYS = 400;
/** league/oauth2-server's AuthCodeGrant TTL as Passport builds it (PassportServiceProvider). */
const CODE_TTL_MS = 10 * 60 * 1000;

/** league/oauth2-server 8.5.5 OAuthServerException messages, by error type. */
const LEAGUE = {
  invalid_request:
    'The request is missing a required parameter, includes an invalid parameter value, includes a parameter more than once, or is otherwise malformed.',
  invalid_client: 'Client authentication failed',
  invalid_grant:
    'The provided authorization grant (e.g., authorization code, resource owner credentials) or refresh token is invalid, expired, revoked, does not match the redirection URI used in the authorization request, or was issued to another client.',
  invalid_refresh: 'The refresh token is invalid.',
  unsupported_grant_type:
    'The authorization grant type is not supported by the authorization server.',
  invalid_scope: 'The requested scope is invalid, unknown, or malformed',
} as const;
/** Each exception's own status and error code (OAuthServerException's static constructors). */
const LEAGUE_STATUS: Record<keyof typeof LEAGUE, [number, string]> = {
  invalid_request: [400, 'invalid_request'],
  invalid_client: [401, 'invalid_client'],
  invalid_grant: [400, 'invalid_grant'],
  invalid_refresh: [401, 'invalid_request'],
  unsupported_grant_type: [400, 'unsupported_grant_type'],
  invalid_scope: [400, 'invalid_scope'],
};

export type PostType = 'photo' | 'photo:album' | 'video' | 'text' | 'reply' | 'share' | 'poll';
export type Scope = 'public' | 'unlisted' | 'private' | 'direct';

export interface Post {
  index: number;
  id: string;
  createdAt: string;
  type: PostType;
  scope: Scope;
  inReplyToId: string | null;
  reblogOfId: string | null;
  /** StatusService cannot load it: the controller's map returns false and filter() drops it. */
  unloadable: boolean;
}

interface App {
  id: string;
  name: string;
  secret: string;
  redirects: string[];
}

interface Token {
  value: string;
  jti: string;
  clientId: string;
  userId: string;
  scopes: string[];
  expiresAt: number;
  revoked: boolean;
}

interface Refresh {
  value: string;
  clientId: string;
  accessJti: string;
  scopes: string[];
  userId: string;
  expiresAt: number;
  revoked: boolean;
}

interface Code {
  value: string;
  clientId: string;
  userId: string;
  redirectUri: string;
  scopes: string[];
  challenge?: string;
  challengeMethod?: string;
  expiresAt: number;
  revoked: boolean;
}

export interface User {
  id: string;
  username: string;
  /** users.status: null for an active user; 'suspended', 'disabled', 'delete'. */
  status: string | null;
}

export interface RequestRecord {
  method: string;
  path: string;
  query: URLSearchParams;
  status: number;
}

export interface PixelfedServerOptions {
  /** Statuses of the first user, generated up front; default 300. */
  posts?: number;
}

const random = (bytes = 32): string => randomBytes(bytes).toString('hex');
const b64url = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString('base64url');
const START = Date.parse('2024-03-01T00:00:00Z');
const STEP_MS = 53 * 60 * 1000;

/** Pixelfed's SnowflakeService ids: decimal, beyond 2^53, increasing with time. */
function snowflake(ms: number, sequence: number): string {
  return ((BigInt(ms - Date.parse('2018-06-01T00:00:00Z')) << 22n) | BigInt(sequence % 4096))
    .toString()
    .padStart(18, '0');
}

/** `http://127.0.0.1:*` and `http://[::1]:*` (RedirectUriValidator::isLoopbackUri, 8.5.5). */
function withoutLoopbackPort(uri: string): string {
  if (!URL.canParse(uri)) return uri;
  const url = new URL(uri);
  if (url.protocol !== 'http:' || !['127.0.0.1', '[::1]'].includes(url.hostname)) return uri;
  url.port = '';
  return url.href;
}

/** RedirectUriValidator::validateRedirectUri: exact, but the port is free on loopback URIs. */
function redirectAllowed(app: App, uri: string): boolean {
  const wanted = withoutLoopbackPort(uri);
  return wanted === uri
    ? app.redirects.includes(uri)
    : app.redirects.some((allowed) => withoutLoopbackPort(allowed) === wanted);
}

/** PHP's loose `$value == true` for a query string value: '' and '0' are false. */
function phpTruthy(value: string | null): boolean {
  return value !== null && value !== '' && value !== '0';
}

export class PixelfedServer {
  url = '';
  readonly requests: RequestRecord[] = [];
  readonly users: User[] = [
    { id: '708461337418252289', username: 'alice', status: null },
    { id: '708461337418252290', username: 'bob', status: null },
  ];
  readonly posts: Post[] = [];
  /** config('pixelfed.oauth_enabled'): false makes POST /api/v1/apps answer 404. */
  oauthEnabled = true;
  private readonly apps = new Map<string, App>();
  private readonly tokens = new Map<string, Token>();
  private readonly refreshes = new Map<string, Refresh>();
  private readonly codes = new Map<string, Code>();
  private readonly faults = new FaultQueue();
  private appCounter = 0;
  private published = 0;
  private closeListener: () => Promise<void> = async () => undefined;

  static async start(options: PixelfedServerOptions = {}): Promise<PixelfedServer> {
    const server = new PixelfedServer();
    server.addPosts(options.posts ?? 300);
    const listening = await listen((req, res) => server.handle(req, res));
    server.url = listening.url;
    server.closeListener = listening.close;
    return server;
  }

  close(): Promise<void> {
    return this.closeListener();
  }

  get alice(): User {
    return this.users[0] as User;
  }

  inject(fault: Fault): void {
    this.faults.inject(fault);
  }

  registerApp(opts: { redirectUris?: string[]; name?: string } = {}): {
    clientId: string;
    clientSecret: string;
  } {
    const app = this.addApp(opts.name ?? 'fedi-token tests', opts.redirectUris ?? [OOB]);
    return { clientId: app.id, clientSecret: app.secret };
  }

  issueCode(opts: {
    clientId: string;
    redirectUri: string;
    scopes?: string[];
    codeChallenge?: string;
    user?: string;
  }): string {
    return this.makeCode({
      clientId: opts.clientId,
      userId: this.user(opts.user).id,
      redirectUri: opts.redirectUri,
      scopes: opts.scopes ?? DEFAULT_SCOPES,
      challenge: opts.codeChallenge,
      challengeMethod: opts.codeChallenge ? 'S256' : undefined,
    });
  }

  /** A user token (and its refresh token) as an approved authorization would give. */
  issueToken(
    opts: { clientId?: string; scopes?: string[]; user?: string; accessDays?: number } = {},
  ): { accessToken: string; refreshToken: string } {
    const clientId = opts.clientId ?? this.addApp('fedi-token tests', [OOB]).id;
    const token = this.mintAccess(
      clientId,
      this.user(opts.user).id,
      opts.scopes ?? DEFAULT_SCOPES,
      opts.accessDays,
    );
    const refresh = this.mintRefresh(token);
    return { accessToken: token.value, refreshToken: refresh.value };
  }

  isRevoked(accessToken: string): boolean {
    return this.tokens.get(accessToken)?.revoked ?? false;
  }

  /** Publish `n` newer posts of the first user, as between two runs. */
  addPosts(n: number): Post[] {
    const added: Post[] = [];
    for (let k = 0; k < n; k++) {
      const index = ++this.published;
      const ms = START + index * STEP_MS;
      let type: PostType = index % 4 === 1 ? 'photo:album' : index % 9 === 4 ? 'video' : 'photo';
      let inReplyToId: string | null = null;
      let reblogOfId: string | null = null;
      if (index % 7 === 3) {
        type = 'reply';
        inReplyToId = snowflake(ms - 1000, index + 3000);
      } else if (index % 11 === 5) {
        type = 'share';
        reblogOfId = snowflake(ms - 2000, index + 2000);
      } else if (index % 23 === 8) type = 'text';
      else if (index % 29 === 9) type = 'poll';
      let scope: Scope = 'public';
      if (index % 13 === 2) scope = 'private';
      else if (index % 6 === 4) scope = 'unlisted';
      else if (index % 17 === 6) scope = 'direct';
      const post: Post = {
        index,
        id: snowflake(ms, index),
        createdAt: new Date(ms).toISOString(),
        type,
        scope,
        inReplyToId,
        reblogOfId,
        unloadable: index % 31 === 10,
      };
      this.posts.push(post);
      added.push(post);
    }
    return added;
  }

  /** What GET /api/v1/accounts/{id}/statuses lists for the owner, newest first. */
  listed(opts: { onlyMedia?: boolean } = {}): Post[] {
    return this.posts
      .filter((post) =>
        this.inQuery(post, opts.onlyMedia ?? false, ['public', 'unlisted', 'private']),
      )
      .filter((post) => !post.unloadable)
      .reverse();
  }

  // ---- helpers ------------------------------------------------------------------------------

  private user(key: string | undefined): User {
    const user =
      key === undefined ? this.alice : this.users.find((u) => u.id === key || u.username === key);
    if (!user) throw new Error(`no such user: ${key}`);
    return user;
  }

  private addApp(name: string, redirects: string[]): App {
    // ApiV1Controller::apps: the Passport client's auto-increment id is the client id.
    const app: App = { id: String(++this.appCounter), name, secret: random(20), redirects };
    this.apps.set(app.id, app);
    return app;
  }

  private makeCode(code: Omit<Code, 'value' | 'expiresAt' | 'revoked'>): string {
    // league encrypts the code's payload (Defuse, 'def50200…'); opaque to the client either way.
    const value = `def50200${random(96)}`;
    this.codes.set(value, { ...code, value, expiresAt: Date.now() + CODE_TTL_MS, revoked: false });
    return value;
  }

  private mintAccess(
    clientId: string,
    userId: string,
    scopes: string[],
    days = ACCESS_DAYS,
  ): Token {
    const now = Date.now() / 1000;
    const jti = random(40);
    const exp = now + days * 86_400;
    // AccessTokenTrait::convertToJWT: aud, jti, iat, nbf, exp (lcobucci writes microseconds),
    // sub and scopes; RS256 over the server's key. The signature is never checked here: the
    // loopback knows its tokens by value, as Passport knows them by jti.
    const value = [
      b64url({ typ: 'JWT', alg: 'RS256' }),
      b64url({ aud: clientId, jti, iat: now, nbf: now, exp, sub: userId, scopes }),
      randomBytes(256).toString('base64url'),
    ].join('.');
    const token: Token = {
      value,
      jti,
      clientId,
      userId,
      scopes,
      expiresAt: exp * 1000,
      revoked: false,
    };
    this.tokens.set(value, token);
    return token;
  }

  private mintRefresh(token: Token): Refresh {
    const refresh: Refresh = {
      value: `def50200${random(300)}`,
      clientId: token.clientId,
      accessJti: token.jti,
      scopes: token.scopes,
      userId: token.userId,
      expiresAt: Date.now() + REFRESH_DAYS * 86_400_000,
      revoked: false,
    };
    this.refreshes.set(refresh.value, refresh);
    return refresh;
  }

  /** Passport's TokenGuard: a live, unexpired token of an existing user, or nothing. */
  private authed(req: IncomingMessage): { token: Token; user: User } | undefined {
    const token = this.tokens.get(bearerToken(req) ?? '');
    if (!token || token.revoked || token.expiresAt <= Date.now()) return undefined;
    const user = this.users.find((u) => u.id === token.userId);
    return user ? { token, user } : undefined;
  }

  private can(token: Token, scope: string): boolean {
    return token.scopes.includes('*') || token.scopes.includes(scope);
  }

  /** The query of ApiV1Controller::accountStatusesById, before its limit. */
  private inQuery(post: Post, onlyMedia: boolean, visibility: Scope[]): boolean {
    const types: PostType[] = onlyMedia
      ? ['photo', 'photo:album', 'video']
      : ['photo', 'photo:album', 'video', 'share', 'reply'];
    return (
      post.inReplyToId === null &&
      post.reblogOfId === null &&
      types.includes(post.type) &&
      visibility.includes(post.scope)
    );
  }

  private account(user: User): Record<string, unknown> {
    return {
      id: user.id,
      username: user.username,
      acct: user.username,
      display_name: user.username,
      locked: false,
      url: `${this.url}/${user.username}`,
      note: '',
      avatar: `${this.url}/storage/avatars/default.jpg`,
      created_at: '2024-01-01T00:00:00.000Z',
      followers_count: 0,
      following_count: 0,
      statuses_count: this.posts.length,
    };
  }

  private status(post: Post, user: User): Record<string, unknown> {
    const media = ['photo', 'photo:album', 'video'].includes(post.type)
      ? [
          {
            id: String(800_000_000 + post.index),
            type: post.type === 'video' ? 'video' : 'image',
            url: `${this.url}/storage/m/${post.index}.jpg`,
            preview_url: `${this.url}/storage/m/${post.index}_thumb.jpg`,
            description: `Photo ${post.index}`,
          },
        ]
      : [];
    return {
      _v: 1,
      id: post.id,
      shortcode: post.id.slice(-8),
      uri: `${this.url}/p/${user.username}/${post.id}`,
      url: `${this.url}/p/${user.username}/${post.id}`,
      in_reply_to_id: post.inReplyToId,
      in_reply_to_account_id: null,
      reblog: null,
      content: `<p>Post ${post.index} — “ünïcode”</p>`,
      content_text: `Post ${post.index} — “ünïcode”`,
      created_at: post.createdAt,
      emojis: [],
      reblogs_count: post.index % 3,
      favourites_count: post.index % 7,
      reblogged: false,
      favourited: false,
      bookmarked: false,
      muted: null,
      sensitive: false,
      spoiler_text: '',
      visibility: post.scope,
      application: { name: 'web', website: null },
      language: null,
      mentions: [],
      pf_type: post.type,
      replies_count: 0,
      place: null,
      local: true,
      media_attachments: media,
      account: this.account(user),
      tags: [],
      poll: null,
      edited_at: null,
      pinned: false,
    };
  }

  /** app/Exceptions/Handler.php::render for a client that wants JSON. */
  private fail(res: ServerResponse, status: number, message: string): void {
    sendJson(res, status, { error: message });
  }

  /**
   * A league OAuthServerException thrown through Passport's withErrorHandling: Pixelfed's
   * handler turns it into `{"error": message}` with 500 for a JSON client; anyone else gets
   * Passport's own rendering, league's JSON with the exception's status.
   */
  private oauthError(
    req: IncomingMessage,
    res: ServerResponse,
    kind: keyof typeof LEAGUE,
    hint?: string,
  ): void {
    const message = LEAGUE[kind];
    if (wantsJson(req)) return this.fail(res, 500, message);
    const [status, error] = LEAGUE_STATUS[kind];
    sendJson(res, status, { error, error_description: message, hint, message });
  }

  // ---- routing ------------------------------------------------------------------------------

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const record: RequestRecord = {
      method: req.method ?? 'GET',
      path: url.pathname,
      query: url.searchParams,
      status: 0,
    };
    this.requests.push(record);
    res.on('finish', () => {
      record.status = res.statusCode;
    });
    const fault = this.faults.take(record.method, record.path);
    if (fault) return serveFault(fault, req, res);

    const key = `${record.method} ${url.pathname}`;
    const statuses = /^\/api\/v1\/accounts\/([^/]+)\/statuses$/.exec(url.pathname);
    const byName = /^\/api\/v1\.1\/accounts\/username\/([^/]+)$/.exec(url.pathname);
    const byId = /^\/api\/v1\/accounts\/([^/]+)$/.exec(url.pathname);
    switch (true) {
      case key === 'POST /api/v1/apps':
        return this.createApp(res, await readBody(req));
      case key === 'GET /oauth/authorize':
        return this.authorizePage(req, res, url.searchParams);
      case key === 'POST /oauth/authorize':
        return this.authorizeApprove(req, res, await readBody(req));
      case key === 'POST /oauth/token':
        return this.token(req, res, await readBody(req));
      case key === 'GET /api/v1/accounts/verify_credentials':
        return this.verifyCredentials(req, res);
      case key === 'GET /api/v1/apps/verify_credentials':
        return this.appCredentials(req, res);
      case record.method === 'GET' && statuses !== null:
        return this.accountStatuses(req, res, decodeURIComponent(statuses?.[1] ?? ''), url);
      case record.method === 'GET' && byName !== null:
        return this.usernameToId(req, res, decodeURIComponent(byName?.[1] ?? ''));
      // routes/api.php has no accounts/lookup: `lookup` reaches accounts/{id} as an id.
      case record.method === 'GET' && byId !== null:
        return this.accountById(req, res, decodeURIComponent(byId?.[1] ?? ''));
      case key === 'GET /api/v1/instance':
        return sendJson(res, 200, {
          uri: new URL(this.url).host,
          title: 'Pixelfed test server',
          // ApiV1Controller::instance.
          version: `3.5.3 (compatible; Pixelfed ${PIXELFED_VERSION})`,
          registrations: false,
        });
      case key === 'GET /.well-known/nodeinfo':
        // Nodeinfo::wellKnown: one 2.0 link, to config('pixelfed.nodeinfo.url').
        return sendJson(res, 200, {
          links: [
            {
              href: `${this.url}/api/nodeinfo/2.0.json`,
              rel: 'http://nodeinfo.diaspora.software/ns/schema/2.0',
            },
          ],
        });
      case key === 'GET /api/nodeinfo/2.0.json':
        return sendJson(res, 200, {
          metadata: { nodeName: 'pixelfed', software: { homepage: 'https://pixelfed.org' } },
          protocols: ['activitypub'],
          services: { inbound: [], outbound: [] },
          software: { name: 'pixelfed', version: PIXELFED_VERSION },
          usage: { localPosts: this.posts.length, users: { total: this.users.length } },
          version: '2.0',
          openRegistrations: false,
        });
    }
    // Laravel's router: NotFoundHttpException("The route … could not be found."), through the
    // handler. POST /oauth/revoke lands here: no route has that path.
    this.fail(res, 404, `The route ${url.pathname.slice(1)} could not be found.`);
  }

  // ---- POST /api/v1/apps (ApiV1Controller::apps) ----------------------------------------------

  private createApp(res: ServerResponse, body: Awaited<ReturnType<typeof readBody>>): void {
    if (!this.oauthEnabled) return this.fail(res, 404, '');
    const { fields } = body;
    const missing = ['client_name', 'redirect_uris'].filter(
      (name) => typeof fields[name] !== 'string' || (fields[name] as string).trim() === '',
    );
    if (missing.length > 0) {
      // $this->validate → ValidationException, rendered by the handler with its messages.
      const messages = missing.map((name) => `The ${name.replace('_', ' ')} field is required.`);
      return sendJson(res, 422, {
        message:
          messages.length > 1
            ? `${messages[0]} (and ${messages.length - 1} more error)`
            : messages[0],
        errors: Object.fromEntries(missing.map((name, i) => [name, [messages[i]]])),
      });
    }
    // Newline-separated, each urldecode()d, stored comma-joined; scopes and website are ignored.
    const redirects = String(fields.redirect_uris)
      .split('\n')
      .map((uri) => decodeURIComponent(uri.replace(/\+/g, ' ')))
      .filter(Boolean);
    const app = this.addApp(escapeHtml(String(fields.client_name)), redirects);
    sendJson(
      res,
      200,
      {
        id: app.id,
        name: app.name,
        website: null,
        redirect_uri: app.redirects.join(','),
        client_id: app.id,
        client_secret: app.secret,
        vapid_key: null,
      },
      { 'access-control-allow-origin': '*' },
    );
  }

  // ---- /oauth/authorize (Passport AuthorizationController, OobAuthorizationController) ---------

  /**
   * league AuthCodeGrant::validateAuthorizationRequest: the client, its redirect URI (port-free
   * on loopback), the scopes, PKCE's method. The signed-in user is implicit here.
   */
  private checkAuthorize(
    req: IncomingMessage,
    res: ServerResponse,
    params: Record<string, unknown>,
  ): { app: App; scopes: string[]; redirectUri: string } | undefined {
    const get = (name: string) => (typeof params[name] === 'string' ? params[name] : '');
    const app = this.apps.get(get('client_id'));
    const redirectUri = get('redirect_uri');
    if (!app || !redirectAllowed(app, redirectUri)) {
      this.oauthError(req, res, 'invalid_client');
      return undefined;
    }
    const scopes = get('scope') ? get('scope').split(' ').filter(Boolean) : DEFAULT_SCOPES;
    if (!scopes.every((scope) => KNOWN_SCOPES.includes(scope)) || get('response_type') !== 'code') {
      this.oauthError(
        req,
        res,
        get('response_type') === 'code' ? 'invalid_scope' : 'unsupported_grant_type',
      );
      return undefined;
    }
    const method = get('code_challenge_method') || 'plain';
    if (get('code_challenge') && !['plain', 'S256'].includes(method)) {
      this.oauthError(
        req,
        res,
        'invalid_request',
        'Code challenge method must be one of `plain`, `S256`',
      );
      return undefined;
    }
    return { app, scopes, redirectUri };
  }

  private authorizePage(req: IncomingMessage, res: ServerResponse, query: URLSearchParams): void {
    const checked = this.checkAuthorize(req, res, Object.fromEntries(query));
    if (!checked) return;
    const hidden = [...query]
      .map(
        ([name, value]) =>
          `<input type="hidden" name="${escapeHtml(name)}" value="${escapeHtml(value)}">`,
      )
      .join('');
    sendHtml(
      res,
      200,
      `<!DOCTYPE html><html><body><h1>Authorization Request</h1>
<p><strong>${escapeHtml(checked.app.name)}</strong> is requesting permission to access your account.</p>
<ul>${checked.scopes.map((s) => `<li>${escapeHtml(s)}</li>`).join('')}</ul>
<form method="post" action="/oauth/authorize">${hidden}
<button type="submit" id="approve" name="decision" value="approve">Authorize</button></form></body></html>`,
    );
  }

  /**
   * Passport keeps the authorization request in the session and the form posts its auth_token;
   * the loopback takes the request's parameters again instead (what a browser carries is not
   * what the CLI or the action see). OobAuthorizationController::approve answers an OOB request
   * with JSON `{code, state}`; any other with league's redirect.
   */
  private authorizeApprove(
    req: IncomingMessage,
    res: ServerResponse,
    body: Awaited<ReturnType<typeof readBody>>,
  ): void {
    const checked = this.checkAuthorize(req, res, body.fields);
    if (!checked) return;
    const get = (name: string) =>
      typeof body.fields[name] === 'string' ? (body.fields[name] as string) : '';
    const code = this.makeCode({
      clientId: checked.app.id,
      userId: this.alice.id,
      redirectUri: checked.redirectUri,
      scopes: checked.scopes,
      challenge: get('code_challenge') || undefined,
      challengeMethod: get('code_challenge') ? get('code_challenge_method') || 'plain' : undefined,
    });
    const state = get('state');
    if (checked.redirectUri === OOB) return sendJson(res, 200, { code, state });
    const target = new URL(checked.redirectUri);
    target.searchParams.set('code', code);
    if (state) target.searchParams.set('state', state);
    redirect(res, target.href);
  }

  // ---- POST /oauth/token (Passport AccessTokenController → league AuthorizationServer) ---------

  private token(
    req: IncomingMessage,
    res: ServerResponse,
    body: Awaited<ReturnType<typeof readBody>>,
  ): void {
    const str = (name: string) =>
      typeof body.fields[name] === 'string' ? (body.fields[name] as string) : undefined;
    const grant = str('grant_type');
    if (
      grant !== 'authorization_code' &&
      grant !== 'refresh_token' &&
      grant !== 'client_credentials'
    ) {
      return this.oauthError(req, res, 'unsupported_grant_type');
    }
    // AbstractGrant::getClientCredentials: Basic first, the body's fields win when present.
    const basic = basicAuth(req);
    const clientId = str('client_id') ?? basic?.id;
    const secret = str('client_secret') ?? basic?.secret;
    if (clientId === undefined)
      return this.oauthError(req, res, 'invalid_request', 'Check the `client_id` parameter');
    const app = this.apps.get(clientId);
    // Passport's ClientRepository::validateClient: a confidential client must send its secret.
    if (!app || secret !== app.secret) return this.oauthError(req, res, 'invalid_client');
    const redirectUri = str('redirect_uri');
    // AbstractGrant::validateClient: a redirect_uri, if sent, must be one the app registered.
    if (redirectUri !== undefined && !redirectAllowed(app, redirectUri)) {
      return this.oauthError(req, res, 'invalid_client');
    }

    if (grant === 'client_credentials') {
      const scopes = str('scope')?.split(' ').filter(Boolean) ?? DEFAULT_SCOPES;
      if (!scopes.every((scope) => KNOWN_SCOPES.includes(scope))) {
        return this.oauthError(req, res, 'invalid_scope');
      }
      // No user: user_id is null, and TokenGuard finds no user for it on any auth:api route.
      const token = this.mintAccess(app.id, '', scopes);
      return sendJson(res, 200, this.tokenJson(token));
    }

    if (grant === 'refresh_token') {
      const value = str('refresh_token');
      if (value === undefined)
        return this.oauthError(req, res, 'invalid_request', 'Check the `refresh_token` parameter');
      const old = this.refreshes.get(value);
      // RefreshTokenGrant::validateOldRefreshToken: undecryptable, another client's, expired,
      // revoked — all invalidRefreshToken.
      if (!old || old.clientId !== app.id || old.expiresAt < Date.now() || old.revoked) {
        return this.oauthError(req, res, 'invalid_refresh');
      }
      const scopes = str('scope')?.split(' ').filter(Boolean) ?? old.scopes;
      if (!scopes.every((scope) => old.scopes.includes(scope))) {
        return this.oauthError(req, res, 'invalid_scope');
      }
      // The old access token is revoked, and (revokeRefreshTokens, league's default, which
      // Passport keeps) the old refresh token too; a new pair is issued.
      for (const token of this.tokens.values())
        if (token.jti === old.accessJti) token.revoked = true;
      old.revoked = true;
      const token = this.mintAccess(app.id, old.userId, scopes);
      return sendJson(res, 200, this.tokenJson(token, this.mintRefresh(token)));
    }

    // AuthCodeGrant::respondToAccessTokenRequest and validateAuthorizationCode.
    const code = this.codes.get(str('code') ?? '');
    if (str('code') === undefined)
      return this.oauthError(req, res, 'invalid_request', 'Check the `code` parameter');
    if (!code)
      return this.oauthError(req, res, 'invalid_request', 'Cannot decrypt the authorization code');
    if (code.expiresAt < Date.now())
      return this.oauthError(req, res, 'invalid_request', 'Authorization code has expired');
    if (code.revoked)
      return this.oauthError(req, res, 'invalid_request', 'Authorization code has been revoked');
    if (code.clientId !== app.id)
      return this.oauthError(
        req,
        res,
        'invalid_request',
        'Authorization code was not issued to this client',
      );
    if (redirectUri !== code.redirectUri)
      return this.oauthError(req, res, 'invalid_request', 'Invalid redirect URI');
    const verifier = str('code_verifier');
    if (!code.challenge && verifier !== undefined) {
      return this.oauthError(
        req,
        res,
        'invalid_request',
        'code_verifier received when no code_challenge is present',
      );
    }
    if (code.challenge) {
      if (verifier === undefined || !/^[A-Za-z0-9._~-]{43,128}$/.test(verifier)) {
        return this.oauthError(req, res, 'invalid_request', 'Check the `code_verifier` parameter');
      }
      const computed =
        code.challengeMethod === 'S256'
          ? createHash('sha256').update(verifier).digest('base64url')
          : verifier;
      if (computed !== code.challenge)
        return this.oauthError(req, res, 'invalid_grant', 'Failed to verify `code_verifier`.');
    }
    code.revoked = true;
    const token = this.mintAccess(app.id, code.userId, code.scopes);
    sendJson(res, 200, this.tokenJson(token, this.mintRefresh(token)));
  }

  /** BearerTokenResponse::generateHttpResponse: no scope, no created_at. */
  private tokenJson(token: Token, refresh?: Refresh): Record<string, unknown> {
    return {
      token_type: 'Bearer',
      expires_in: Math.round((token.expiresAt - Date.now()) / 1000),
      access_token: token.value,
      ...(refresh ? { refresh_token: refresh.value } : {}),
    };
  }

  // ---- API (ApiV1Controller, ApiV1Dot1Controller) ---------------------------------------------

  /**
   * `auth:api` then the controller's own checks: abort_if no user/token (403), abort_unless
   * tokenCan('read') (403), and for the account endpoints abort_if the user's status (403).
   * An AuthenticationException is rendered as 500 "Unauthenticated.".
   */
  private gate(
    req: IncomingMessage,
    res: ServerResponse,
    opts: { read: boolean; status: boolean },
  ): { token: Token; user: User } | undefined {
    const authed = this.authed(req);
    if (!authed) {
      this.fail(res, 500, 'Unauthenticated.');
      return undefined;
    }
    if (
      (opts.read && !this.can(authed.token, 'read')) ||
      (opts.status && authed.user.status !== null)
    ) {
      this.fail(res, 403, '');
      return undefined;
    }
    return authed;
  }

  private verifyCredentials(req: IncomingMessage, res: ServerResponse): void {
    const authed = this.gate(req, res, { read: true, status: true });
    if (!authed) return;
    const account = this.account(authed.user);
    sendJson(res, 200, {
      ...account,
      source: { privacy: 'public', sensitive: false, language: 'en', note: '', fields: [] },
    });
  }

  /** getApp: any user token, no scope or status check; the app's name only. */
  private appCredentials(req: IncomingMessage, res: ServerResponse): void {
    const authed = this.gate(req, res, { read: false, status: false });
    if (!authed) return;
    const app = this.apps.get(authed.token.clientId);
    sendJson(res, 200, { name: app?.name ?? '', website: null, vapid_key: null });
  }

  private accountById(req: IncomingMessage, res: ServerResponse, id: string): void {
    if (!this.gate(req, res, { read: true, status: false })) return;
    const user = this.users.find((u) => u.id === id);
    if (!user) return this.fail(res, 404, 'Record not found');
    sendJson(res, 200, this.account(user));
  }

  /** ApiV1Dot1Controller::accountUsernameToId: `[]` (200) for a name it does not know. */
  private usernameToId(req: IncomingMessage, res: ServerResponse, username: string): void {
    if (!this.gate(req, res, { read: true, status: false })) return;
    let name = username.trim();
    const host = new URL(this.url).host;
    if (name.endsWith(host)) name = name.replace(/^@/, '').split('@')[0] ?? '';
    const user = this.users.find((u) => u.username === name);
    if (!user) return sendJson(res, 200, []);
    sendJson(res, 200, this.account(user));
  }

  /** ApiV1Controller::accountStatusesById. */
  private accountStatuses(req: IncomingMessage, res: ServerResponse, id: string, url: URL): void {
    const authed = this.gate(req, res, { read: true, status: false });
    if (!authed) return;
    const p = url.searchParams;
    const invalid: Record<string, string[]> = {};
    for (const name of ['max_id', 'since_id', 'min_id']) {
      const value = p.get(name);
      if (value !== null && value !== '' && !/^\d+$/.test(value)) {
        invalid[name] = [`The ${name.replace('_', ' ')} field must be an integer.`];
      }
    }
    const limitText = p.get('limit');
    if (limitText !== null && limitText !== '') {
      if (!/^-?\d+$/.test(limitText)) invalid.limit = ['The limit field must be an integer.'];
      else if (Number(limitText) < 1) invalid.limit = ['The limit field must be at least 1.'];
    }
    const fields = Object.keys(invalid);
    if (fields.length > 0) {
      const first = invalid[fields[0] ?? '']?.[0] ?? '';
      return sendJson(res, 422, {
        message: fields.length > 1 ? `${first} (and ${fields.length - 1} more error)` : first,
        errors: invalid,
      });
    }
    const owner = this.users.find((u) => u.id === id);
    if (!owner) return this.fail(res, 404, 'Account not found');
    const limit = Math.min(Number(limitText || 20), 40);
    const maxId = p.get('max_id') || undefined;
    let minId = p.get('min_id') || undefined;
    // `! $max_id && ! $min_id` → min_id = 1; then min_id wins over max_id; since_id is unused.
    if (!phpTruthy(maxId ?? null) && !phpTruthy(minId ?? null)) minId = '1';
    const upward = phpTruthy(minId ?? null);
    const cursor = BigInt(upward ? (minId as string) : (maxId as string));
    const visibility: Scope[] =
      authed.user.id === owner.id ? ['public', 'unlisted', 'private'] : ['public', 'unlisted'];
    const posts = owner.id === this.alice.id ? this.posts : [];
    const rows = posts
      .filter((post) => this.inQuery(post, phpTruthy(p.get('only_media')), visibility))
      .filter((post) => (upward ? BigInt(post.id) > cursor : BigInt(post.id) < cursor))
      .reverse()
      .slice(0, limit);
    // ->map(StatusService::getMastodon…)->filter(): a post that cannot be loaded is dropped.
    const shown = rows.filter((post) => !post.unloadable).map((post) => this.status(post, owner));
    // $this->json($res): no Link header.
    sendJson(res, 200, shown);
  }
}

/** Laravel's Request::wantsJson(): the Accept header asks for JSON. */
function wantsJson(req: IncomingMessage): boolean {
  const accept = String(req.headers.accept ?? '');
  return /\/json|\+json/.test(accept.split(',')[0] ?? '');
}
