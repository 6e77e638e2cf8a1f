/**
 * A real OAuth 2.0 / OpenID Connect server (oidc-provider) on loopback, with refresh-token
 * rotation, client credentials, RFC 7009 revocation and RFC 7662 introspection on, PKCE required,
 * two confidential clients, one registered for client_secret_basic and one for
 * client_secret_post, and a public client (`none`: no secret, PKCE only). oidc-provider itself takes either secret method from any such client
 * (lib/shared/client_auth.js treats them as one), so the front server here answers 401
 * invalid_client when a client authenticates with another method than its registered one, as
 * strict servers do (RFC 6749 §2.3).
 * `authorize()` plays the user in the browser: it drives the login and consent pages over HTTP
 * with a cookie jar and returns the code from the redirect.
 */
import { createHash, generateKeyPairSync, randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import Provider from 'oidc-provider';
import { basicAuth, readText, sendJson } from './util.ts';

export const REDIRECT_URI = 'http://127.0.0.1/callback';

export interface OidcClient {
  id: string;
  secret: string;
}

export interface OidcServer {
  issuer: string;
  basic: OidcClient;
  post: OidcClient;
  /** No secret (`secret` is ''); registered unless `authMethods` leaves out `none`. */
  public: OidcClient;
  /** Requests seen, as `METHOD /path`. */
  requests: string[];
  /** For each POST: how the client authenticated, `basic` (Authorization header) or `body`. */
  clientAuth: string[];
  /** For each revocation or introspection request, the token_type_hint sent ('' for none). */
  tokenTypeHints: string[];
  /**
   * Requests to these paths are answered 503 without reaching oidc-provider (token endpoint down).
   * The set is live: tests add and remove paths.
   */
  down: Set<string>;
  authorize(options: AuthorizeOptions): Promise<{ code: string; verifier: string }>;
  close(): Promise<void>;
}

export interface AuthorizeOptions {
  client: OidcClient;
  scope?: string;
  user?: string;
}

const secret = (): string => randomBytes(24).toString('base64url');

/** oidc-provider's endpoints that authenticate the client. */
const CLIENT_AUTH_PATHS = new Set(['/token', '/token/revocation', '/token/introspection']);

// oidc-provider warns on every start about the in-memory adapter and built-in login pages, and
// once about the request body this front reads before it: all are what the tests want, and the
// warnings would bury real test output.
const QUIET_WARNINGS = [
  'oidc-provider WARNING: a quick start development-only',
  'oidc-provider WARNING: already parsed request body detected',
];
const warn = console.warn;
console.warn = (...args: unknown[]) => {
  if (!QUIET_WARNINGS.some((quiet) => String(args[0]).includes(quiet))) warn(...args);
};

/** How a token-endpoint request authenticated its client, and which client it claims to be. */
function usedClientAuth(req: IncomingMessage, body: string): { id: string; method: string } {
  const basic = basicAuth(req);
  if (basic) return { id: basic.id, method: 'client_secret_basic' };
  const form = new URLSearchParams(body);
  const method = form.get('client_secret') ? 'client_secret_post' : 'none';
  return { id: form.get('client_id') ?? '', method };
}

export interface OidcOptions {
  /** The client authentication methods the server accepts and lists in its metadata. */
  authMethods?: string[];
  /** Rotate refresh tokens on every use (default true); false keeps handing back the same one. */
  rotate?: boolean;
}

export async function startOidc(options: OidcOptions = {}): Promise<OidcServer> {
  const sockets = new Set<Socket>();
  const requests: string[] = [];
  const clientAuth: string[] = [];
  const tokenTypeHints: string[] = [];
  const down = new Set<string>();
  // The issuer URL needs the port, so oidc-provider is attached once the server listens.
  const attached: { app?: (req: IncomingMessage, res: ServerResponse) => void } = {};
  /** Each client's registered token_endpoint_auth_method, by client_id. */
  const registered = new Map<string, string>();
  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    requests.push(`${req.method ?? 'GET'} ${path}`);
    if (req.method === 'POST') {
      clientAuth.push(/^Basic /i.test(req.headers.authorization ?? '') ? 'basic' : 'body');
    }
    if (down.has(path) || !attached.app) {
      req.resume();
      res.writeHead(503, { 'content-type': 'text/html' });
      res.end('<html><body>503 Service Unavailable</body></html>');
      return;
    }
    if (req.method === 'POST' && CLIENT_AUTH_PATHS.has(path)) {
      const body = await readText(req);
      if (path !== '/token') {
        tokenTypeHints.push(new URLSearchParams(body).get('token_type_hint') ?? '');
      }
      const used = usedClientAuth(req, body);
      const method = registered.get(used.id);
      if (method && method !== used.method) {
        return sendJson(
          res,
          401,
          {
            error: 'invalid_client',
            error_description: `client authentication failed: the client is registered for ${method}`,
          },
          used.method === 'client_secret_basic'
            ? { 'www-authenticate': 'Basic realm="token"' }
            : {},
        );
      }
      // oidc-provider takes a body that was read before it from req.body.
      (req as IncomingMessage & { body?: string }).body = body;
    }
    attached.app(req, res);
  };
  const server = createServer((req, res) => {
    handle(req, res).catch(() => res.destroy());
  });
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  const basic = { id: 'basic-app', secret: `basic-${secret()}` };
  const post = { id: 'post-app', secret: `post-${secret()}` };
  const publicClient = { id: 'public-app', secret: '' };
  const methods = options.authMethods;
  const clientMetadata = (client: OidcClient, wanted: string) => {
    const method = !methods || methods.includes(wanted) ? wanted : (methods[0] ?? wanted);
    registered.set(client.id, method);
    return {
      client_id: client.id,
      ...(method === 'none' ? {} : { client_secret: client.secret }),
      application_type: 'native',
      redirect_uris: [REDIRECT_URI],
      // A client that cannot authenticate gets no client-credentials grant.
      grant_types: ['authorization_code', 'refresh_token'].concat(
        method === 'none' ? [] : ['client_credentials'],
      ),
      response_types: ['code'],
      token_endpoint_auth_method: method,
      scope: 'openid offline_access profile api:read',
    };
  };
  const signingKey = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({
    format: 'jwk',
  });

  const provider = new Provider(issuer, {
    clients: [
      clientMetadata(basic, 'client_secret_basic'),
      clientMetadata(post, 'client_secret_post'),
      ...(!methods || methods.includes('none') ? [clientMetadata(publicClient, 'none')] : []),
    ],
    jwks: { keys: [{ ...signingKey, kid: 'test', use: 'sig', alg: 'RS256' }] },
    cookies: { keys: [secret()] },
    scopes: ['openid', 'offline_access', 'profile', 'api:read'],
    claims: { openid: ['sub'], profile: ['preferred_username', 'name'] },
    async findAccount(_ctx: unknown, id: string) {
      return {
        accountId: id,
        claims: async () => ({ sub: id, preferred_username: id, name: id }),
      };
    },
    features: {
      devInteractions: { enabled: true },
      introspection: {
        enabled: true,
        allowedPolicy: async (
          _ctx: unknown,
          client: { clientId: string },
          token: { clientId?: string },
        ) => token.clientId === client.clientId,
      },
      revocation: {
        enabled: true,
        allowedPolicy: async (
          _ctx: unknown,
          client: { clientId: string },
          token: { clientId?: string },
        ) => token.clientId === client.clientId,
      },
      clientCredentials: { enabled: true },
    },
    pkce: { required: () => true },
    rotateRefreshToken: options.rotate ?? true,
    ...(methods ? { clientAuthMethods: methods } : {}),
    // Explicit lifetimes keep oidc-provider from printing a notice for each default it uses.
    ttl: {
      AccessToken: 3600,
      AuthorizationCode: 600,
      ClientCredentials: 600,
      Grant: 86400,
      IdToken: 3600,
      Interaction: 600,
      RefreshToken: 86400,
      Session: 86400,
    },
  });
  attached.app = provider.callback();

  return {
    issuer,
    basic,
    post,
    public: publicClient,
    requests,
    clientAuth,
    tokenTypeHints,
    down,
    authorize: (options) => authorize(issuer, options),
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

/** The browser's part: authorization request, login form, consent form, redirect with the code. */
async function authorize(
  issuer: string,
  options: AuthorizeOptions,
): Promise<{ code: string; verifier: string }> {
  const verifier = randomBytes(32).toString('base64url');
  const challenge = createHash('sha256').update(verifier).digest('base64url');
  const state = randomBytes(8).toString('hex');
  const start = new URL('/auth', issuer);
  start.search = new URLSearchParams({
    client_id: options.client.id,
    response_type: 'code',
    redirect_uri: REDIRECT_URI,
    scope: options.scope ?? 'openid offline_access profile api:read',
    prompt: 'consent',
    state,
    code_challenge: challenge,
    code_challenge_method: 'S256',
  }).toString();

  const jar = new Map<string, string>();
  let url = start.href;
  let method = 'GET';
  let body: string | undefined;
  for (let step = 0; step < 12; step++) {
    const response = await fetch(url, {
      method,
      body,
      redirect: 'manual',
      headers: {
        cookie: [...jar].map(([name, value]) => `${name}=${value}`).join('; '),
        ...(body ? { 'content-type': 'application/x-www-form-urlencoded' } : {}),
      },
    });
    for (const cookie of response.headers.getSetCookie()) {
      const [pair = ''] = cookie.split(';');
      const at = pair.indexOf('=');
      const value = pair.slice(at + 1);
      if (value === '' || /expires=Thu, 01 Jan 1970/i.test(cookie)) jar.delete(pair.slice(0, at));
      else jar.set(pair.slice(0, at), value);
    }
    const location = response.headers.get('location');
    if (location) {
      const next = new URL(location, url);
      if (next.href.startsWith(REDIRECT_URI)) {
        const code = next.searchParams.get('code');
        if (next.searchParams.get('state') !== state || !code) {
          throw new Error(`authorization failed: ${next.searchParams.get('error') ?? 'no code'}`);
        }
        return { code, verifier };
      }
      url = next.href;
      method = 'GET';
      body = undefined;
      continue;
    }
    const html = await response.text();
    const action = /<form[^>]*action="([^"]+)"/.exec(html)?.[1];
    const prompt = /name="prompt" value="([^"]+)"/.exec(html)?.[1];
    if (!action || !prompt) throw new Error(`unexpected page at ${url} (HTTP ${response.status})`);
    url = new URL(action.replace(/&amp;/g, '&'), url).href;
    method = 'POST';
    body = new URLSearchParams(
      prompt === 'login' ? { prompt, login: options.user ?? 'alice', password: 'any' } : { prompt },
    ).toString();
  }
  throw new Error('authorization did not finish');
}

// `node __tests__/servers/oidc.ts` starts one for the demo and prints where it is.
if (import.meta.url === `file://${process.argv[1]}`) {
  const oidc = await startOidc();
  console.log(JSON.stringify({ issuer: oidc.issuer, basic: oidc.basic.id, post: oidc.post.id }));
}
