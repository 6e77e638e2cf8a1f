/**
 * A loopback Misskey that behaves as PROTOCOLS.md and Misskey's own source say: POST JSON API under
 * /api/ with the token as `i` or Bearer, `{error:{message, code, id, kind}}` errors, MiAuth (with a
 * web page to approve a session) and the legacy app flow, nodeinfo, and the catch-all 404 for
 * unknown /api/ paths. Other tests add endpoints with `addEndpoint` and faults with `faults`.
 */
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { FaultQueue, serveFault } from './faults.ts';
import { bearerToken, escapeHtml, listen, readBody, redirect, sendHtml, sendJson } from './util.ts';

/**
 * The permissions the MiAuth page keeps (pages/miauth.vue filters `permission=` through
 * misskey-js's `permissions`, consts.ts, Misskey 2025.10.2); anything else is dropped silently.
 * There is no plain `read`.
 */
export const MISSKEY_PERMISSIONS = [
  'read:account',
  'write:account',
  'read:blocks',
  'write:blocks',
  'read:drive',
  'write:drive',
  'read:favorites',
  'write:favorites',
  'read:following',
  'write:following',
  'read:messaging',
  'write:messaging',
  'read:mutes',
  'write:mutes',
  'write:notes',
  'read:notifications',
  'write:notifications',
  'read:reactions',
  'write:reactions',
  'write:votes',
  'read:pages',
  'write:pages',
  'write:page-likes',
  'read:page-likes',
  'read:user-groups',
  'write:user-groups',
  'read:channels',
  'write:channels',
  'read:gallery',
  'write:gallery',
  'read:gallery-likes',
  'write:gallery-likes',
  'read:flash',
  'write:flash',
  'read:flash-likes',
  'write:flash-likes',
  'read:admin:abuse-user-reports',
  'write:admin:delete-account',
  'write:admin:delete-all-files-of-a-user',
  'read:admin:index-stats',
  'read:admin:table-stats',
  'read:admin:user-ips',
  'read:admin:meta',
  'write:admin:reset-password',
  'write:admin:resolve-abuse-user-report',
  'write:admin:send-email',
  'read:admin:server-info',
  'read:admin:show-moderation-log',
  'read:admin:show-user',
  'write:admin:suspend-user',
  'write:admin:unset-user-avatar',
  'write:admin:unset-user-banner',
  'write:admin:unsuspend-user',
  'write:admin:meta',
  'write:admin:user-note',
  'write:admin:roles',
  'read:admin:roles',
  'write:admin:relays',
  'read:admin:relays',
  'write:admin:invite-codes',
  'read:admin:invite-codes',
  'write:admin:announcements',
  'read:admin:announcements',
  'write:admin:avatar-decorations',
  'read:admin:avatar-decorations',
  'write:admin:federation',
  'write:admin:account',
  'read:admin:account',
  'write:admin:emoji',
  'read:admin:emoji',
  'write:admin:queue',
  'read:admin:queue',
  'write:admin:promo',
  'write:admin:drive',
  'read:admin:drive',
  'write:admin:ad',
  'read:admin:ad',
  'write:invite-codes',
  'read:invite-codes',
  'write:clip-favorite',
  'read:clip-favorite',
  'read:federation',
  'write:report-abuse',
  'write:chat',
  'read:chat',
];

/** What Sharkey's misskey-js adds to the list (consts.ts, Sharkey develop 3d13024828). */
export const SHARKEY_EXTRA_PERMISSIONS = [
  'read:notes-schedule',
  'write:notes-schedule',
  'read:admin:abuse-report:notification-recipient',
  'write:admin:abuse-report:notification-recipient',
  'write:admin:approve-user',
  'write:admin:decline-user',
  'write:admin:nsfw-user',
  'write:admin:unnsfw-user',
  'write:admin:cw-user',
  'write:admin:cw-note',
  'write:admin:cw-instance',
  'write:admin:silence-user',
  'write:admin:unsilence-user',
  'write:admin:reject-quotes',
  'write:admin:restart-migration',
];

export interface MisskeyUser {
  id: string;
  username: string;
  /** A moderator suspended the account: endpoints that need a credential refuse it. */
  isSuspended?: boolean;
}

interface Token {
  token: string;
  userId: string;
  permission: string[];
  /** MiAuth: the session it was issued for, and whether the check already handed it out. */
  session?: string;
  fetched?: boolean;
}

interface App {
  id: string;
  name: string;
  secret: string;
  permission: string[];
  callbackUrl: string | null;
}

interface LegacySession {
  token: string;
  appId: string;
  userId: string | null;
}

export interface ApiCall {
  body: Record<string, unknown>;
  user: MisskeyUser | undefined;
  token: Token | undefined;
}

export interface EndpointSpec {
  /** The permission a token needs (Misskey's `kind`); user sessions need none. */
  kind?: string;
  requireCredential?: boolean;
  handler(call: ApiCall): unknown;
}

export class MisskeyApiError extends Error {
  readonly status: number;
  readonly code: string;
  readonly info: Record<string, unknown> | undefined;
  readonly id: string | undefined;
  constructor(
    status: number,
    code: string,
    message: string,
    info?: Record<string, unknown>,
    id?: string,
  ) {
    super(message);
    this.status = status;
    this.code = code;
    this.info = info;
    this.id = id;
  }
}

export interface RecordedRequest {
  method: string;
  path: string;
  body: Record<string, unknown>;
  authorization: string | undefined;
}

export interface MisskeyServerOptions {
  /** nodeinfo `software.name` (misskey, sharkey, …); `null` serves no nodeinfo at all. */
  software?: string | null;
  version?: string;
}

export interface MisskeyServer {
  url: string;
  close(): Promise<void>;
  requests: RecordedRequest[];
  /** Every request as `METHOD /path`, web pages and nodeinfo included. */
  hits: string[];
  faults: FaultQueue;
  /** Make a user (or return the existing one with that name). */
  user(username?: string): MisskeyUser;
  /** A token for `username` with these permissions, as Settings → API would create one. */
  issueToken(username?: string, permission?: string[]): string;
  /** Revoke a token, as the user does in Settings. */
  revokeToken(token: string): void;
  /** A moderator suspends the account (admin/suspend-user). */
  suspendUser(username: string): void;
  /** The user approves MiAuth session `session`; returns the token the check will hand out. */
  approveMiAuth(session: string, options?: { username?: string; permission?: string[] }): string;
  /** app/create, as a developer would call it; returns the app id and secret. */
  createApp(options?: { name?: string; permission?: string[] }): { id: string; secret: string };
  /** auth/session/generate for `appSecret`; returns the session token. */
  generateLegacySession(appSecret: string): string;
  /** The user approves a legacy session; returns the API token `i` the app will end up with. */
  approveLegacySession(sessionToken: string, options?: { username?: string }): string;
  addEndpoint(name: string, spec: EndpointSpec): void;
}

const ERROR_IDS: Record<string, string> = {
  AUTHENTICATION_FAILED: 'b0a7f5f8-dc2f-4171-b91f-de88ad238e14',
  CREDENTIAL_REQUIRED: '1384574d-a912-4b81-8601-c7b1c4085df1',
  PERMISSION_DENIED: '1370e5b7-d4eb-4566-bb1d-7748ee6a1838',
  RATE_LIMIT_EXCEEDED: 'd5826d14-3982-4d2e-8011-b9e9f02499ef',
  YOUR_ACCOUNT_SUSPENDED: 'a8c724b3-6e9c-4b46-b1a8-bc3ed6258370',
  UNKNOWN_API_ENDPOINT: '2ca3b769-540a-4f08-9dd5-b5a825b6d0f1',
  // auth/session/userkey's; auth/session/generate has its own id (below).
  NO_SUCH_APP: 'fcab192a-2c5a-43b7-8ad8-9b7054d8d40d',
  NO_SUCH_SESSION: '5b5a1503-8bc8-4bd0-8054-dc189e8cdcb3',
  PENDING_SESSION: '8c8a4145-02cc-4cca-8e66-29ba60445a8e',
  INVALID_PARAM: '3d81ceae-475f-4600-b2a8-2bc116157532',
};

/**
 * ApiCallService's error answer (Misskey 2025.10.2): `{error: {message, code, id, kind, info?}}`,
 * with the WWW-Authenticate header #sendApiError and #sendAuthenticationError add.
 */
export function misskeyError(
  res: ServerResponse,
  status: number,
  code: string,
  message: string,
  info?: Record<string, unknown>,
  headers: Record<string, string> = {},
  id?: string,
): void {
  // error.ts: kind defaults to 'client'; the permission errors ApiCallService raises say
  // 'permission', and an internal error 'server'.
  const kind =
    code === 'PERMISSION_DENIED' || code === 'YOUR_ACCOUNT_SUSPENDED'
      ? 'permission'
      : status >= 500
        ? 'server'
        : 'client';
  const authenticate =
    code === 'AUTHENTICATION_FAILED'
      ? `Bearer realm="Misskey", error="invalid_token", error_description="${message}"`
      : status === 401
        ? 'Bearer realm="Misskey"'
        : code === 'PERMISSION_DENIED'
          ? `Bearer realm="Misskey", error="insufficient_scope", error_description="${message}"`
          : kind === 'client' && status !== 429
            ? `Bearer realm="Misskey", error="invalid_request", error_description="${message}"`
            : undefined;
  sendJson(
    res,
    status,
    {
      error: {
        message,
        code,
        id: id ?? ERROR_IDS[code] ?? randomUUID(),
        kind,
        ...(info ? { info } : {}),
      },
    },
    { ...(authenticate ? { 'www-authenticate': authenticate } : {}), ...headers },
  );
}

export async function startMisskey(options: MisskeyServerOptions = {}): Promise<MisskeyServer> {
  const software = options.software === undefined ? 'misskey' : options.software;
  const version = options.version ?? '2025.4.0';
  const users = new Map<string, MisskeyUser>();
  const tokens = new Map<string, Token>();
  const apps = new Map<string, App>();
  const legacySessions = new Map<string, LegacySession>();
  const endpoints = new Map<string, EndpointSpec>();
  const requests: RecordedRequest[] = [];
  const hits: string[] = [];
  const faults = new FaultQueue();
  let nextId = 0;
  const newId = (): string =>
    `9${(Date.now() + nextId++).toString(36)}${randomBytes(3).toString('hex')}`;

  const userNamed = (username = 'alice'): MisskeyUser => {
    let found = [...users.values()].find((u) => u.username === username);
    if (!found) {
      found = { id: newId(), username };
      users.set(found.id, found);
    }
    return found;
  };
  const pack = (u: MisskeyUser) => ({
    id: u.id,
    username: u.username,
    name: u.username,
    host: null,
    onlineStatus: 'unknown',
  });

  endpoints.set('i', {
    kind: 'read:account',
    requireCredential: true,
    handler: ({ user }) => pack(user as MisskeyUser),
  });

  endpoints.set('app/create', {
    handler: ({ body }) => {
      const name = typeof body.name === 'string' ? body.name : '';
      const permission = Array.isArray(body.permission) ? body.permission.map(String) : null;
      if (!name || !permission || typeof body.description !== 'string') {
        throw new MisskeyApiError(400, 'INVALID_PARAM', 'Invalid param.');
      }
      const app: App = {
        id: newId(),
        name,
        secret: randomBytes(16).toString('hex'),
        // app/create.ts keeps every permission it is given, only rewriting the old
        // `notes-write` / `notes/read` spelling to `write:notes`.
        permission: [
          ...new Set(permission.map((p) => p.replace(/^(.+)(\/|-)(read|write)$/, '$3:$1'))),
        ],
        callbackUrl: typeof body.callbackUrl === 'string' ? body.callbackUrl : null,
      };
      apps.set(app.id, app);
      return {
        id: app.id,
        name: app.name,
        callbackUrl: app.callbackUrl,
        permission: app.permission,
        secret: app.secret,
      };
    },
  });

  const appBySecret = (secret: unknown, id?: string): App => {
    const app = [...apps.values()].find((a) => a.secret === secret);
    if (!app) throw new MisskeyApiError(400, 'NO_SUCH_APP', 'No such app.', undefined, id);
    return app;
  };

  endpoints.set('auth/session/generate', {
    handler: ({ body }) => {
      const app = appBySecret(body.appSecret, '92f93e63-428e-4f2f-a5a4-39e1407fe998');
      const token = randomUUID();
      legacySessions.set(token, { token, appId: app.id, userId: null });
      return { token, url: `${listening.url}/auth/${token}` };
    },
  });

  endpoints.set('auth/session/userkey', {
    handler: ({ body }) => {
      const app = appBySecret(body.appSecret);
      const session = legacySessions.get(String(body.token));
      if (!session || session.appId !== app.id) {
        throw new MisskeyApiError(400, 'NO_SUCH_SESSION', 'No such session.');
      }
      if (!session.userId) {
        throw new MisskeyApiError(400, 'PENDING_SESSION', 'This session is not completed yet.');
      }
      const raw = legacyRawToken(app, session.userId);
      legacySessions.delete(session.token);
      return { accessToken: raw, user: pack(users.get(session.userId) as MisskeyUser) };
    },
  });

  const rawTokens = new Map<string, string>();
  function legacyRawToken(app: App, userId: string): string {
    const key = `${app.id}:${userId}`;
    let raw = rawTokens.get(key);
    if (!raw) {
      raw = randomBytes(16).toString('hex');
      rawTokens.set(key, raw);
      const i = createHash('sha256')
        .update(raw + app.secret)
        .digest('hex');
      tokens.set(i, { token: i, userId, permission: app.permission });
    }
    return raw;
  }

  async function api(req: IncomingMessage, res: ServerResponse, name: string): Promise<void> {
    const spec = endpoints.get(name);
    // Endpoints are registered for every method (GET answers 405 unless allowed); the MiAuth
    // check is a POST-only route, so other methods reach the catch-all 404.
    const isMiAuthCheck = req.method === 'POST' && /^miauth\/[^/]+\/check$/.test(name);
    if (!spec && !isMiAuthCheck) {
      await readBody(req).catch(() => undefined);
      // ApiServerService's catch-all is a GET route; other methods meet Fastify's own 404.
      if (req.method !== 'GET') {
        return sendJson(res, 404, {
          message: `Route ${req.method ?? 'POST'}:/api/${name} not found`,
          error: 'Not Found',
          statusCode: 404,
        });
      }
      return misskeyError(res, 404, 'UNKNOWN_API_ENDPOINT', 'Unknown API endpoint.');
    }
    if (req.method === 'GET') {
      res.writeHead(405, { 'content-length': '0' });
      res.end();
      return;
    }
    const parsed = await readBody(req);
    const body = parsed.fields;
    requests.push({
      method: req.method ?? '',
      path: `/api/${name}`,
      body,
      authorization: req.headers.authorization,
    });
    if (isMiAuthCheck) {
      const session = decodeURIComponent(name.split('/')[1] ?? '');
      const token = [...tokens.values()].find((t) => t.session === session);
      if (token && !token.fetched) {
        token.fetched = true;
        return sendJson(res, 200, {
          ok: true,
          token: token.token,
          user: pack(users.get(token.userId) as MisskeyUser),
        });
      }
      return sendJson(res, 200, { ok: false });
    }
    const endpoint = spec as EndpointSpec;
    const credential = typeof body.i === 'string' ? body.i : bearerToken(req);
    let token: Token | undefined;
    if (credential !== undefined) {
      token = tokens.get(credential);
      // A bad token fails even on endpoints that need none.
      if (!token) {
        return misskeyError(
          res,
          401,
          'AUTHENTICATION_FAILED',
          'Authentication failed. Please ensure your token is correct.',
        );
      }
    }
    if (endpoint.requireCredential && !token) {
      return misskeyError(res, 401, 'CREDENTIAL_REQUIRED', 'Credential required.');
    }
    // ApiCallService checks suspension right after the credential, before the token's permission.
    if (endpoint.requireCredential && token && users.get(token.userId)?.isSuspended) {
      return misskeyError(res, 403, 'YOUR_ACCOUNT_SUSPENDED', 'Your account has been suspended.');
    }
    // An app token needs the endpoint's `kind`; an endpoint that requires a credential but
    // names no kind is for the user's own web session only.
    const lacksKind = endpoint.kind
      ? !token?.permission.includes(endpoint.kind)
      : endpoint.requireCredential;
    if (token && lacksKind) {
      return misskeyError(
        res,
        403,
        'PERMISSION_DENIED',
        'Your app does not have the necessary permissions to use this endpoint.',
      );
    }
    try {
      const result = endpoint.handler({
        body,
        user: token ? users.get(token.userId) : undefined,
        token,
      });
      if (result === undefined) {
        res.writeHead(204, { 'content-length': '0' });
        res.end();
        return;
      }
      sendJson(res, 200, result);
    } catch (error) {
      if (!(error instanceof MisskeyApiError)) throw error;
      misskeyError(res, error.status, error.code, error.message, error.info, {}, error.id);
    }
  }

  function miauthPage(res: ServerResponse, session: string, query: URLSearchParams): void {
    const name = query.get('name') ?? 'an app';
    const permission = query.get('permission') ?? '';
    const callback = query.get('callback') ?? '';
    sendHtml(
      res,
      200,
      `<!DOCTYPE html><html><head><title>MiAuth</title></head><body>` +
        `<h1>${escapeHtml(name)} wants to use your account</h1>` +
        `<p>Permissions: ${escapeHtml(permission || '(none)')}</p>` +
        `<form method="post" action="/miauth/${encodeURIComponent(session)}/approve">` +
        `<input type="hidden" name="permission" value="${escapeHtml(permission)}">` +
        `<input type="hidden" name="callback" value="${escapeHtml(callback)}">` +
        `<button id="approve" type="submit">Allow</button></form></body></html>`,
    );
  }

  const approveMiAuth: MisskeyServer['approveMiAuth'] = (session, opts = {}) => {
    const existing = [...tokens.values()].find((t) => t.session === session);
    if (existing) return existing.token;
    const owner = userNamed(opts.username);
    const token = randomBytes(16).toString('base64url');
    const known =
      software === 'sharkey'
        ? [...MISSKEY_PERMISSIONS, ...SHARKEY_EXTRA_PERMISSIONS]
        : MISSKEY_PERMISSIONS;
    const permission = (opts.permission ?? ['read:account']).filter((p) => known.includes(p));
    tokens.set(token, { token, userId: owner.id, permission, session, fetched: false });
    return token;
  };

  const listening = await listen(async (req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const path = url.pathname;
    hits.push(`${req.method ?? 'GET'} ${path}`);
    const fault = faults.take(req.method ?? 'GET', path);
    if (fault) return serveFault(fault, req, res);
    if (path.startsWith('/api/')) return api(req, res, path.slice('/api/'.length));
    if (path === '/.well-known/nodeinfo' && software) {
      return sendJson(res, 200, {
        links: [
          {
            rel: 'http://nodeinfo.diaspora.software/ns/schema/2.1',
            href: `${listening.url}/nodeinfo/2.1`,
          },
          {
            rel: 'http://nodeinfo.diaspora.software/ns/schema/2.0',
            href: `${listening.url}/nodeinfo/2.0`,
          },
        ],
      });
    }
    if ((path === '/nodeinfo/2.1' || path === '/nodeinfo/2.0') && software) {
      return sendJson(res, 200, {
        version: path.slice(-3),
        software: { name: software, version },
        protocols: ['activitypub'],
        openRegistrations: false,
        usage: { users: { total: users.size } },
        metadata: { nodeName: 'Loopback Misskey' },
      });
    }
    const miauth = /^\/miauth\/([^/]+)(\/approve)?$/.exec(path);
    if (miauth?.[1]) {
      const session = decodeURIComponent(miauth[1]);
      if (!miauth[2] && req.method === 'GET') return miauthPage(res, session, url.searchParams);
      if (miauth[2] && req.method === 'POST') {
        const form = (await readBody(req)).fields;
        const permission = String(form.permission ?? '')
          .split(',')
          .filter(Boolean);
        approveMiAuth(session, { permission });
        const callback = String(form.callback ?? '');
        if (callback && URL.canParse(callback)) {
          const target = new URL(callback);
          target.searchParams.set('session', session);
          return redirect(res, target.href);
        }
        return sendHtml(
          res,
          200,
          '<!DOCTYPE html><p id="done">Approved. You can close this page.</p>',
        );
      }
    }
    // Misskey's web client serves its HTML for everything else.
    sendHtml(res, 404, '<!DOCTYPE html><html><body><div id="misskey_app"></div></body></html>');
  });

  return {
    url: listening.url,
    close: listening.close,
    requests,
    hits,
    faults,
    user: userNamed,
    issueToken(username, permission = ['read:account']) {
      const owner = userNamed(username);
      const token = randomBytes(16).toString('base64url');
      tokens.set(token, { token, userId: owner.id, permission });
      return token;
    },
    revokeToken(token) {
      tokens.delete(token);
    },
    suspendUser(username) {
      userNamed(username).isSuspended = true;
    },
    approveMiAuth,
    createApp(opts = {}) {
      const app = endpoints.get('app/create')?.handler({
        body: {
          name: opts.name ?? 'fedi-token test',
          description: '',
          permission: opts.permission ?? ['read:account'],
        },
        user: undefined,
        token: undefined,
      }) as { id: string; secret: string };
      return { id: app.id, secret: app.secret };
    },
    generateLegacySession(appSecret) {
      const result = endpoints.get('auth/session/generate')?.handler({
        body: { appSecret },
        user: undefined,
        token: undefined,
      }) as { token: string };
      return result.token;
    },
    approveLegacySession(sessionToken, opts = {}) {
      const session = legacySessions.get(sessionToken);
      if (!session) throw new Error('no such legacy session');
      const owner = userNamed(opts.username);
      session.userId = owner.id;
      const app = apps.get(session.appId) as App;
      const raw = legacyRawToken(app, owner.id);
      return createHash('sha256')
        .update(raw + app.secret)
        .digest('hex');
    },
    addEndpoint(name, spec) {
      endpoints.set(name, spec);
    },
  };
}

/**
 * The 429 Misskey sends when a rate limit is hit, for `faults.inject`. ApiCallService puts the
 * `ratelimiter` package's info in the body (`total`, `remaining`, `reset` in epoch seconds,
 * `resetMs` in epoch milliseconds) and derives Retry-After from `resetMs` (Misskey 2025.10.2).
 */
export function rateLimitFault(path: string, retryAfter: number, times = 1) {
  const resetMs = Date.now() + retryAfter * 1000;
  return {
    kind: 'status' as const,
    status: 429,
    path,
    times,
    retryAfter,
    body: {
      error: {
        message: 'Rate limit exceeded. Please try again later.',
        code: 'RATE_LIMIT_EXCEEDED',
        id: ERROR_IDS.RATE_LIMIT_EXCEEDED,
        kind: 'client',
        info: { total: 10, remaining: 0, reset: Math.ceil(resetMs / 1000), resetMs },
      },
    },
  };
}
