/**
 * A loopback AnyWeb open-platform API as its wiki describes it (IdeaLightLabs/AnyWeb-WiKi, last
 * commit 8dcd6f6, 2023-03-26: docs/OAuth/intro.md, accessToken.md, userInfo.md, Billing/index.md):
 * every answer is a `{code, message, data}` wrapper, failures are codes other than 1000 under HTTP
 * 200, access and refresh tokens are HS256 JWTs carrying `exp`, the unionid (`id`) and the appid
 * (the payload of userInfo.md's example token). A refresh rotates both tokens and the old refresh
 * token then fails with A107B013: the wiki does not say whether the old one keeps working, so the
 * loopback takes the stricter reading.
 */
import { createHmac, randomBytes, randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { FaultQueue, serveFault } from './faults.ts';
import { listen, readBody, sendJson } from './util.ts';

/**
 * Which `data` shape the token exchange answers with: `old` `{unionid, accessToken, expiresIn}`
 * (a timestamp), `new` `{…, expire, refreshToken, refreshExpire, scope}` (seconds), `wiki` the
 * wiki's example `{…, expiresIn: 7200, refreshToken, refreshExpiresIn, scope}`.
 */
export type AnyWebGeneration = 'old' | 'new' | 'wiki';

export interface AnyWebOptions {
  generation?: AnyWebGeneration;
  /** The refresh path this server serves; the other one answers 404 (the wiki names both). */
  refreshPath?: '/open/refreshToken' | '/oauth/refreshToken';
  /** Access-token lifetime in seconds; negative mints tokens that are already expired. */
  accessLifetime?: number;
  /** HTTP status of failure wrappers (AnyWeb uses 200). */
  failureStatus?: number;
  /**
   * false: tokens carry no `exp` claim, so the wrapper's lifetime fields are all a client has
   * (the server still enforces the lifetime).
   */
  expClaim?: boolean;
  /**
   * Which of the wiki's two code tables failures use. `older` renumbers the failures it names
   * (accessToken, appid, unionid and code invalid, no authorization); it has no secret or
   * refresh-token codes, so those keep the current ones.
   */
  codeTable?: 'current' | 'older';
}

export interface AnyWebRequest {
  path: string;
  body: Record<string, unknown>;
}

export interface AnyWebUser {
  unionid: string;
  address: string;
  phone: string;
  /** userInfo.md: 0 phone verified, 1 identity (real name) verified. */
  level: 0 | 1;
}

export interface AnyWebServer {
  url: string;
  close(): Promise<void>;
  requests: AnyWebRequest[];
  faults: FaultQueue;
  /** Register a dApp, as open.anyweb.cc does. */
  registerApp(): { appid: string; secret: string };
  /** The code the SDK's cfx_accounts call hands the dApp after the user approves. */
  mintCode(appid: string, user?: Partial<AnyWebUser> & { scopes?: string[] }): string;
  /** A signed token as this server would issue it, with any claims (for expired or forged ones). */
  sign(claims: Record<string, unknown>): string;
  /** The user withdraws the app's authorization: its tokens stop working. */
  deauthorize(appid: string, unionid: string): void;
  /**
   * userInfo answers that carried real-name data for a user with `level` > 0: each is billed to
   * the developer (Billing/index.md, 用户实名信息计费).
   */
  readonly billed: number;
}

const CURRENT_CODES = {
  accessTokenEmpty: 'A107P001',
  appidEmpty: 'A107P002',
  unionidEmpty: 'A107P003',
  secretEmpty: 'A107P004',
  secretInvalid: 'A107P005',
  accessTokenInvalid: 'A107P006',
  appidInvalid: 'A107P007',
  unionidInvalid: 'A107P008',
  codeInvalid: 'A107P009',
  notAuthorized: 'A107P011',
  refreshTokenInvalid: 'A107B013',
};
const OLDER_CODES: typeof CURRENT_CODES = {
  ...CURRENT_CODES,
  accessTokenInvalid: 'A107P004',
  appidInvalid: 'A107P005',
  unionidInvalid: 'A107P006',
  codeInvalid: 'A107P007',
  notAuthorized: 'A107P009',
};

const CODE_LIFETIME_MS = 5 * 60 * 1000;
const REFRESH_LIFETIME_S = 30 * 24 * 3600;

export async function startAnyWeb(options: AnyWebOptions = {}): Promise<AnyWebServer> {
  const generation = options.generation ?? 'new';
  const refreshPath = options.refreshPath ?? '/open/refreshToken';
  const accessLifetime = options.accessLifetime ?? 7200;
  const failureStatus = options.failureStatus ?? 200;
  const failCode = options.codeTable === 'older' ? OLDER_CODES : CURRENT_CODES;
  const key = randomBytes(32);
  const apps = new Map<string, string>();
  const codes = new Map<
    string,
    { appid: string; user: AnyWebUser; scopes: string[]; expires: number }
  >();
  const grants = new Map<string, { user: AnyWebUser; scopes: string[] }>();
  const spentRefresh = new Set<string>();
  const requests: AnyWebRequest[] = [];
  const faults = new FaultQueue();
  let billedAnswers = 0;

  const sign = (claims: Record<string, unknown>): string => {
    const part = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
    const head = `${part({ alg: 'HS256', typ: 'JWT' })}.${part(claims)}`;
    return `${head}.${createHmac('sha256', key).update(head).digest('base64url')}`;
  };
  const verify = (token: unknown): Record<string, unknown> | undefined => {
    if (typeof token !== 'string') return undefined;
    const [head, payload, signature] = token.split('.');
    if (!head || !payload || !signature) return undefined;
    const expected = createHmac('sha256', key).update(`${head}.${payload}`).digest('base64url');
    if (expected !== signature) return undefined;
    const claims = JSON.parse(Buffer.from(payload, 'base64url').toString()) as Record<
      string,
      unknown
    >;
    const exp = typeof claims.exp === 'number' ? claims.exp : undefined;
    const lifetimeEnd = typeof claims.lifetimeEnd === 'number' ? claims.lifetimeEnd : undefined;
    const end = exp ?? lifetimeEnd;
    if (end === undefined || end * 1000 <= Date.now()) return undefined;
    return claims;
  };
  const tokenPair = (appid: string, unionid: string) => {
    const iat = Math.floor(Date.now() / 1000);
    const common = { id: unionid, appid, iat, jti: randomUUID() };
    return {
      accessToken: sign({
        type: 'accessToken',
        ...common,
        isRefresh: false,
        ...(options.expClaim === false
          ? { lifetimeEnd: iat + accessLifetime }
          : { exp: iat + accessLifetime }),
      }),
      refreshToken: sign({
        type: 'refreshToken',
        ...common,
        isRefresh: true,
        exp: iat + REFRESH_LIFETIME_S,
      }),
      iat,
    };
  };
  const grantKey = (appid: string, unionid: string) => `${appid}:${unionid}`;

  function fail(res: ServerResponse, code: string, message: string): void {
    sendJson(res, failureStatus, { code, message, data: null });
  }
  function ok(res: ServerResponse, data: unknown): void {
    sendJson(res, 200, { code: 1000, message: 'success', data });
  }
  /** appid and secret, checked in the order the wiki lists the codes. */
  function checkApp(res: ServerResponse, body: Record<string, unknown>): string | undefined {
    const appid = typeof body.appid === 'string' ? body.appid : '';
    const secret = typeof body.secret === 'string' ? body.secret : '';
    if (!appid) return void fail(res, failCode.appidEmpty, 'appid为空');
    if (!secret) return void fail(res, failCode.secretEmpty, 'secret为空');
    if (!apps.has(appid)) return void fail(res, failCode.appidInvalid, 'appid无效');
    if (apps.get(appid) !== secret) return void fail(res, failCode.secretInvalid, 'secret无效');
    return appid;
  }

  async function handle(req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
    const body = (await readBody(req)).fields;
    requests.push({ path, body });
    if (req.method !== 'POST')
      return sendJson(res, 405, { code: 405, message: 'Method Not Allowed' });

    if (path === '/oauth/accessToken') {
      const appid = checkApp(res, body);
      if (!appid) return;
      const code = codes.get(String(body.code ?? ''));
      if (!code || code.appid !== appid || code.expires <= Date.now()) {
        return fail(res, failCode.codeInvalid, 'code无效');
      }
      codes.delete(String(body.code));
      grants.set(grantKey(appid, code.user.unionid), { user: code.user, scopes: code.scopes });
      const pair = tokenPair(appid, code.user.unionid);
      const scope = code.scopes.join(',');
      if (generation === 'old') {
        return ok(res, {
          unionid: code.user.unionid,
          accessToken: pair.accessToken,
          expiresIn: pair.iat + accessLifetime,
        });
      }
      if (generation === 'wiki') {
        return ok(res, {
          unionid: code.user.unionid,
          accessToken: pair.accessToken,
          expiresIn: accessLifetime,
          refreshToken: pair.refreshToken,
          refreshExpiresIn: REFRESH_LIFETIME_S,
          scope,
        });
      }
      return ok(res, {
        unionid: code.user.unionid,
        accessToken: pair.accessToken,
        expire: accessLifetime,
        refreshToken: pair.refreshToken,
        refreshExpire: REFRESH_LIFETIME_S,
        scope,
      });
    }

    if (path === refreshPath) {
      const token = body.refreshToken;
      const claims = verify(token);
      if (!claims || claims.isRefresh !== true || spentRefresh.has(String(token))) {
        return fail(res, failCode.refreshTokenInvalid, 'refreshToken无效');
      }
      const appid = String(claims.appid);
      const unionid = String(claims.id);
      if (!grants.has(grantKey(appid, unionid)))
        return fail(res, failCode.notAuthorized, '用户未授权');
      spentRefresh.add(String(token));
      const pair = tokenPair(appid, unionid);
      return ok(res, {
        token: pair.accessToken,
        expire: accessLifetime,
        refreshToken: pair.refreshToken,
        refreshExpire: REFRESH_LIFETIME_S,
      });
    }

    if (path === '/oauth/userInfo') {
      if (!body.accessToken) return fail(res, failCode.accessTokenEmpty, 'accessToken为空');
      const appid = checkApp(res, body);
      if (!appid) return;
      if (!body.unionid) return fail(res, failCode.unionidEmpty, 'unionid为空');
      const claims = verify(body.accessToken);
      if (!claims || claims.isRefresh !== false || claims.appid !== appid) {
        return fail(res, failCode.accessTokenInvalid, 'accessToken无效');
      }
      if (claims.id !== body.unionid) return fail(res, failCode.unionidInvalid, 'unionid无效');
      const grant = grants.get(grantKey(appid, String(claims.id)));
      if (!grant) return fail(res, failCode.notAuthorized, '用户未授权');
      // userInfo.md: `scopes` picks what comes back; left out, it is everything the user
      // granted. baseInfo gives the account facts, identity the real name and id number.
      const asked =
        Array.isArray(body.scopes) && body.scopes.length > 0
          ? body.scopes.map(String)
          : grant.scopes;
      const identity =
        asked.includes('identity') && grant.scopes.includes('identity') && grant.user.level > 0;
      if (identity) billedAnswers++;
      return ok(res, {
        unionid: grant.user.unionid,
        addressList: [grant.user.address],
        network: 1,
        scopes: grant.scopes,
        level: grant.user.level,
        phone: grant.user.phone,
        ...(identity ? { name: '张三', idNumber: '110101199003070000' } : {}),
      });
    }

    res.writeHead(404, { 'content-type': 'text/plain', 'content-length': '9' });
    res.end('Not Found');
  }

  const listening = await listen(async (req, res) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    const fault = faults.take(req.method ?? 'GET', path);
    if (fault) return serveFault(fault, req, res);
    return handle(req, res, path);
  });

  return {
    url: listening.url,
    close: listening.close,
    requests,
    faults,
    registerApp() {
      const appid = randomUUID();
      const secret = randomUUID();
      apps.set(appid, secret);
      return { appid, secret };
    },
    mintCode(appid, user = {}) {
      const code = randomBytes(12).toString('hex');
      codes.set(code, {
        appid,
        user: {
          unionid: user.unionid ?? randomUUID(),
          address: user.address ?? `cfxtest:aa${randomBytes(20).toString('hex').slice(0, 40)}`,
          phone: user.phone ?? '12345678901',
          level: user.level ?? 1,
        },
        scopes: user.scopes ?? ['baseInfo', 'identity'],
        expires: Date.now() + CODE_LIFETIME_MS,
      });
      return code;
    },
    sign,
    deauthorize(appid, unionid) {
      grants.delete(grantKey(appid, unionid));
    },
    get billed() {
      return billedAnswers;
    },
  };
}
