/**
 * platform: anyweb, run as the runner runs the bundle, against the loopback AnyWeb API.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomUUID } from 'node:crypto';
import { decodeJwt, expiry } from '../src/providers/anyweb.ts';
import { findLeaks, runAction, type ActionRun } from './harness/action.ts';
import { startAnyWeb, type AnyWebServer } from './servers/anyweb.ts';

const servers: AnyWebServer[] = [];
let server: AnyWebServer;
let app: { appid: string; secret: string };

beforeAll(async () => {
  server = await start();
  app = server.registerApp();
});
afterAll(async () => {
  await Promise.all(servers.map((s) => s.close()));
});

async function start(options: Parameters<typeof startAnyWeb>[0] = {}): Promise<AnyWebServer> {
  const started = await startAnyWeb(options);
  servers.push(started);
  return started;
}

function run(on: AnyWebServer, inputs: Record<string, string>): Promise<ActionRun> {
  return runAction('main', { instance: on.url, platform: 'anyweb', ...inputs });
}

function exchangeInputs(on: AnyWebServer, creds: { appid: string; secret: string }, code: string) {
  return { operation: 'exchange', 'client-id': creds.appid, 'client-secret': creds.secret, code };
}

function expiresInSeconds(iso: string | undefined): number {
  return (Date.parse(iso ?? '') - Date.now()) / 1000;
}

describe('exchange', () => {
  it('accepts the new response generation: expiry, masked refresh token, unionid, scope', async () => {
    const unionid = randomUUID();
    const code = server.mintCode(app.appid, { unionid });
    const result = await run(server, exchangeInputs(server, app, code));
    expect(result.exitCode).toBe(0);
    const { outputs } = result;
    expect(outputs['account-id']).toBe(unionid);
    expect(decodeJwt(outputs['access-token'] ?? '')?.id).toBe(unionid);
    expect(outputs['refresh-token']).toMatch(/^ey/);
    expect(outputs.scope).toBe('baseInfo identity');
    expect(expiresInSeconds(outputs['expires-at'])).toBeGreaterThan(7000);
    expect(expiresInSeconds(outputs['expires-at'])).toBeLessThanOrEqual(7200);
    expect(result.masks).toEqual(
      expect.arrayContaining([app.secret, code, outputs['access-token'], outputs['refresh-token']]),
    );
    expect(server.requests.at(-1)).toMatchObject({
      path: '/oauth/accessToken',
      body: { appid: app.appid, secret: app.secret, code },
    });
    expectNoLeaks(result, [app.secret, code, outputs['access-token'], outputs['refresh-token']]);
  });

  it.each(['old', 'wiki'] as const)('accepts the %s response generation', async (generation) => {
    const other = await start({ generation });
    const creds = other.registerApp();
    const result = await run(other, exchangeInputs(other, creds, other.mintCode(creds.appid)));
    expect(result.exitCode).toBe(0);
    expect(result.outputs['access-token']).toMatch(/^ey/);
    expect(expiresInSeconds(result.outputs['expires-at'])).toBeGreaterThan(7000);
    if (generation === 'old') expect(result.outputs['refresh-token']).toBe('');
    else expect(result.outputs['refresh-token']).toMatch(/^ey/);
    expectNoLeaks(result, [creds.secret, result.outputs['access-token'] ?? '']);
  });

  it.each(['old', 'new', 'wiki'] as const)(
    'reads expires-at from the %s generation’s lifetime field when the JWT has no exp',
    async (generation) => {
      const other = await start({ generation, expClaim: false, accessLifetime: 5000 });
      const creds = other.registerApp();
      const result = await run(other, exchangeInputs(other, creds, other.mintCode(creds.appid)));
      expect(result.exitCode).toBe(0);
      expect(decodeJwt(result.outputs['access-token'] ?? '')?.exp).toBeUndefined();
      expect(expiresInSeconds(result.outputs['expires-at'])).toBeGreaterThan(4990);
      expect(expiresInSeconds(result.outputs['expires-at'])).toBeLessThanOrEqual(5000);
    },
  );

  it('never treats a failure code under HTTP 200 as success, and names it', async () => {
    const code = server.mintCode(app.appid);
    const first = await run(server, exchangeInputs(server, app, code));
    expect(first.exitCode).toBe(0);
    const reused = await run(server, exchangeInputs(server, app, code));
    expect(reused.exitCode).not.toBe(0);
    expect(reused.outputs['access-token']).toBeUndefined();
    expect(reused.maskedLog).toContain(
      `${server.url} POST /oauth/accessToken answered HTTP 200 (A107P009): code is invalid`,
    );
    expect(reused.maskedLog).toContain('cfx_accounts');

    const wrongSecret = await run(server, {
      ...exchangeInputs(server, app, server.mintCode(app.appid)),
      'client-secret': 'not-the-secret',
    });
    expect(wrongSecret.maskedLog).toContain('(A107P005): secret is invalid');
    expect(wrongSecret.maskedLog).toContain("Check 'client-id' (the appid)");
    expectNoLeaks(wrongSecret, ['not-the-secret', app.secret]);
  });

  it('gives both meanings of a code that AnyWeb’s two code tables read differently', async () => {
    const unknownApp = await run(server, {
      ...exchangeInputs(server, { appid: randomUUID(), secret: 'some-app-secret' }, 'c0de'),
    });
    expect(unknownApp.exitCode).not.toBe(0);
    expect(unknownApp.maskedLog).toContain(
      `${server.url} POST /oauth/accessToken answered HTTP 200 (A107P007): appid is invalid ` +
        "(AnyWeb's older code table: code is invalid). Check 'client-id' (the appid)",
    );
    expect(unknownApp.maskedLog).toContain('if they are right, the code is wrong, expired or used');

    const older = await start({ codeTable: 'older' });
    const creds = older.registerApp();
    const code = older.mintCode(creds.appid);
    expect((await run(older, exchangeInputs(older, creds, code))).exitCode).toBe(0);
    const reused = await run(older, exchangeInputs(older, creds, code));
    expect(reused.exitCode).not.toBe(0);
    expect(reused.maskedLog).toContain(
      "(A107P007): appid is invalid (AnyWeb's older code table: code is invalid)",
    );
    expectNoLeaks(unknownApp, ['some-app-secret']);
  });

  it.each([400, 500])(
    'reads a failure wrapper under HTTP %i the same way: English meaning and hint',
    async (status) => {
      const strict = await start({ failureStatus: status });
      const creds = strict.registerApp();
      const result = await run(strict, exchangeInputs(strict, creds, 'bad-code'));
      expect(result.exitCode).not.toBe(0);
      expect(result.maskedLog).toContain(
        `POST /oauth/accessToken answered HTTP ${status} (A107P009): code is invalid`,
      );
      expect(result.maskedLog).toContain("get a new code from the SDK's cfx_accounts call");
      expect(result.maskedLog).not.toContain('code无效');
      // A code exchange is never repeated, whatever the status.
      expect(strict.requests.filter((r) => r.path === '/oauth/accessToken')).toHaveLength(1);
    },
  );

  it('leaves a wrapper under a retryable status to the retry policy', async () => {
    const creds = server.registerApp();
    const got = await run(server, exchangeInputs(server, creds, server.mintCode(creds.appid)));
    const token = got.outputs['access-token'] ?? '';
    const wrapper503 = { code: 'A107P006', message: 'accessToken无效', data: null };
    server.faults.inject({
      kind: 'status',
      status: 503,
      path: '/oauth/userInfo',
      body: wrapper503,
    });
    const before = server.requests.length;
    const result = await run(server, {
      operation: 'validate',
      'access-token': token,
      'client-id': creds.appid,
      'client-secret': creds.secret,
    });
    // userInfo is read-only, so the 503 is retried and the second answer is the real one.
    expect(result.exitCode).toBe(0);
    expect(result.outputs.valid).toBe('true');
    expect(server.requests.length - before).toBe(1);
  });

  it('fails before any request without client-id or client-secret', async () => {
    const before = server.requests.length;
    const result = await run(server, {
      operation: 'exchange',
      'client-id': app.appid,
      code: 'c0de',
    });
    expect(result.exitCode).not.toBe(0);
    expect(result.maskedLog).toContain("Input 'client-secret': is required by AnyWeb");
    expect(server.requests.length).toBe(before);
  });
});

describe('refresh', () => {
  it('rotates the refresh token; the old one then fails with A107B013', async () => {
    const code = server.mintCode(app.appid);
    const got = await run(server, exchangeInputs(server, app, code));
    const oldRefresh = got.outputs['refresh-token'] ?? '';
    const refreshed = await run(server, { operation: 'refresh', 'refresh-token': oldRefresh });
    expect(refreshed.exitCode).toBe(0);
    const newRefresh = refreshed.outputs['refresh-token'] ?? '';
    const newAccess = refreshed.outputs['access-token'] ?? '';
    expect(newRefresh).toMatch(/^ey/);
    expect(newRefresh).not.toBe(oldRefresh);
    expect(newAccess).not.toBe(got.outputs['access-token']);
    expect(refreshed.outputs['account-id']).toBe(got.outputs['account-id']);
    expect(refreshed.masks).toEqual(expect.arrayContaining([newRefresh, newAccess]));
    expect(server.requests.at(-1)).toMatchObject({ path: '/open/refreshToken' });
    expectNoLeaks(refreshed, [oldRefresh, newRefresh, newAccess]);

    const stale = await run(server, { operation: 'refresh', 'refresh-token': oldRefresh });
    expect(stale.exitCode).not.toBe(0);
    expect(stale.maskedLog).toContain('POST /open/refreshToken answered HTTP 200 (A107B013)');
    expect(stale.maskedLog).toContain('already used');
    expectNoLeaks(stale, [oldRefresh]);
  });

  it.each([true, false])(
    'outputs expires-at for the refreshed token (exp claim: %p)',
    async (expClaim) => {
      const other = await start({ accessLifetime: 5000, expClaim });
      const creds = other.registerApp();
      const got = await run(other, exchangeInputs(other, creds, other.mintCode(creds.appid)));
      const refreshed = await run(other, {
        operation: 'refresh',
        'refresh-token': got.outputs['refresh-token'] ?? '',
      });
      expect(refreshed.exitCode).toBe(0);
      const access = refreshed.outputs['access-token'] ?? '';
      expect(decodeJwt(access)?.exp === undefined).toBe(!expClaim);
      expect(expiresInSeconds(refreshed.outputs['expires-at'])).toBeGreaterThan(4990);
      expect(expiresInSeconds(refreshed.outputs['expires-at'])).toBeLessThanOrEqual(5000);
    },
  );

  it('falls back to /oauth/refreshToken only when /open/refreshToken does not exist', async () => {
    const legacy = await start({ refreshPath: '/oauth/refreshToken' });
    const creds = legacy.registerApp();
    const got = await run(legacy, exchangeInputs(legacy, creds, legacy.mintCode(creds.appid)));
    const result = await run(legacy, {
      operation: 'refresh',
      'refresh-token': got.outputs['refresh-token'] ?? '',
    });
    expect(result.exitCode).toBe(0);
    expect(legacy.requests.map((r) => r.path).slice(-2)).toEqual([
      '/open/refreshToken',
      '/oauth/refreshToken',
    ]);
  });
});

describe('validate', () => {
  it('decodes exp locally without a request when no app credentials are given', async () => {
    const code = server.mintCode(app.appid);
    const got = await run(server, exchangeInputs(server, app, code));
    const token = got.outputs['access-token'] ?? '';
    const before = server.requests.length;
    const result = await run(server, { operation: 'validate', 'access-token': token });
    expect(result.exitCode).toBe(0);
    expect(result.outputs.valid).toBe('true');
    expect(result.outputs['expires-at']).toBe(got.outputs['expires-at']);
    expect(server.requests.length).toBe(before);

    const expired = server.sign({
      id: 'u',
      appid: app.appid,
      isRefresh: false,
      exp: 1_700_000_000,
    });
    const stale = await run(server, {
      operation: 'validate',
      'access-token': expired,
      'client-id': app.appid,
      'client-secret': app.secret,
      'fail-on-invalid': 'false',
    });
    expect(stale.exitCode).toBe(0);
    expect(stale.outputs.valid).toBe('false');
    expect(stale.maskedLog).toContain('expired at 2023-11-14T22:13:20.000Z');
    expect(server.requests.length).toBe(before);
    expectNoLeaks(result, [token]);
  });

  it('reports a token that is not a JWT as invalid without asking AnyWeb', async () => {
    const before = server.requests.length;
    const withCreds = { 'client-id': app.appid, 'client-secret': app.secret };
    for (const creds of [{}, withCreds] as Record<string, string>[]) {
      const result = await run(server, {
        operation: 'validate',
        'access-token': 'not-a-jwt-0123456789',
        'fail-on-invalid': 'false',
        ...creds,
      });
      expect(result.exitCode).toBe(0);
      expect(result.outputs.valid).toBe('false');
      expect(result.maskedLog).toContain(
        'it is not an AnyWeb access token (not a JWT with a payload)',
      );
      expectNoLeaks(result, ['not-a-jwt-0123456789', app.secret]);
    }
    expect(server.requests.length).toBe(before);
  });

  it('says what it checked when the token has no exp or no unionid claim', async () => {
    const before = server.requests.length;
    const creds = { 'client-id': app.appid, 'client-secret': app.secret };
    const noExp = server.sign({ id: 'u', appid: app.appid, isRefresh: false });
    const noId = server.sign({ appid: app.appid, isRefresh: false, exp: 4_000_000_000 });
    const bare = server.sign({ appid: app.appid, isRefresh: false });
    const [noExpAlone, noIdWithCreds, bareWithCreds, expAlone] = await Promise.all([
      run(server, { operation: 'validate', 'access-token': noExp }),
      run(server, { operation: 'validate', 'access-token': noId, ...creds }),
      run(server, { operation: 'validate', 'access-token': bare, ...creds }),
      run(server, { operation: 'validate', 'access-token': noId }),
    ]);
    expect(noExpAlone.maskedLog).toContain(
      "The token has no exp claim, so nothing could be checked locally; give 'client-id' and 'client-secret'",
    );
    expect(noExpAlone.maskedLog).not.toContain('Checked the token');
    expect(noIdWithCreds.maskedLog).toContain(
      "AnyWeb was not asked: the token has no unionid ('id') claim, which userInfo needs; only its expiry was checked locally",
    );
    expect(noIdWithCreds.maskedLog).not.toContain("give 'client-id'");
    expect(bareWithCreds.maskedLog).toContain(
      'it has no exp claim either, so nothing was checked beyond its JWT form',
    );
    expect(expAlone.maskedLog).toContain(
      "Checked the token's expiry locally (2096-10-02T07:06:40.000Z); give 'client-id'",
    );
    expect(server.requests.length).toBe(before);
    for (const result of [noExpAlone, noIdWithCreds, bareWithCreds, expAlone]) {
      expect(result.exitCode).toBe(0);
      expectNoLeaks(result, [noExp, noId, bare, app.secret]);
    }
  });

  it('confirms with userInfo when client-id and client-secret are given', async () => {
    const unionid = randomUUID();
    const address = 'cfxtest:aak6a2u06b2ww0v67xdej48rggvadfem0ecnzgapz4';
    const got = await run(
      server,
      exchangeInputs(server, app, server.mintCode(app.appid, { unionid, address })),
    );
    const token = got.outputs['access-token'] ?? '';
    const inputs = {
      operation: 'validate',
      'access-token': token,
      'client-id': app.appid,
      'client-secret': app.secret,
    };
    const result = await run(server, inputs);
    expect(result.exitCode).toBe(0);
    expect(result.outputs).toMatchObject({
      valid: 'true',
      'account-id': unionid,
      username: address,
      scope: 'baseInfo identity',
    });
    expect(server.requests.at(-1)).toMatchObject({
      path: '/oauth/userInfo',
      body: { appid: app.appid, unionid, accessToken: token, scopes: ['baseInfo'] },
    });
    // Asked for baseInfo only: no real-name answer, so nothing billed (the user granted
    // identity and is verified, so an answer to a call without `scopes` would be).
    expect(server.billed).toBe(0);
    const unscoped = await fetch(`${server.url}/oauth/userInfo`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ appid: app.appid, secret: app.secret, accessToken: token, unionid }),
    });
    expect(await unscoped.json()).toMatchObject({ code: 1000, data: { level: 1 } });
    expect(server.billed).toBe(1);

    server.deauthorize(app.appid, unionid);
    const withdrawn = await run(server, inputs);
    expect(withdrawn.exitCode).not.toBe(0);
    expect(withdrawn.maskedLog).toContain('A107P011');

    const forged = server.sign({
      id: unionid,
      appid: app.appid,
      isRefresh: true,
      exp: 4_000_000_000,
    });
    const rejected = await run(server, { ...inputs, 'access-token': forged });
    expect(rejected.exitCode).not.toBe(0);
    expect(rejected.maskedLog).toContain('AnyWeb rejects it (A107P006');
    expectNoLeaks(rejected, [forged, app.secret, token]);
  });

  it('reads the older code table’s accessToken-invalid and no-authorization codes as invalid', async () => {
    const older = await start({ codeTable: 'older' });
    const creds = older.registerApp();
    const unionid = randomUUID();
    const got = await run(
      older,
      exchangeInputs(older, creds, older.mintCode(creds.appid, { unionid })),
    );
    const inputs = {
      operation: 'validate',
      'client-id': creds.appid,
      'client-secret': creds.secret,
      'fail-on-invalid': 'false',
    };
    const forged = older.sign({
      id: unionid,
      appid: creds.appid,
      isRefresh: true,
      exp: 4_000_000_000,
    });
    const rejected = await run(older, { ...inputs, 'access-token': forged });
    expect(rejected.exitCode).toBe(0);
    expect(rejected.outputs.valid).toBe('false');
    expect(rejected.maskedLog).toContain(
      'AnyWeb rejects it (A107P004: accessToken is invalid, in its older code table)',
    );
    expect(rejected.outputs['expires-at']).toBe(new Date(4_000_000_000_000).toISOString());

    older.deauthorize(creds.appid, unionid);
    const withdrawn = await run(older, {
      ...inputs,
      'access-token': got.outputs['access-token'] ?? '',
    });
    expect(withdrawn.exitCode).toBe(0);
    expect(withdrawn.outputs.valid).toBe('false');
    expect(withdrawn.maskedLog).toContain('the user no longer authorizes this app (A107P009');
    expectNoLeaks(rejected, [forged, creds.secret]);
  });

  it('wants both app credentials or neither, before any request', async () => {
    const before = server.requests.length;
    const result = await run(server, {
      operation: 'validate',
      'access-token': 'a.b.c',
      'client-id': app.appid,
    });
    expect(result.exitCode).not.toBe(0);
    expect(result.maskedLog).toContain("Input 'client-secret'");
    expect(server.requests.length).toBe(before);
  });
});

describe('operations AnyWeb does not have', () => {
  it('names the platform and the alternative for revoke and client-credentials', async () => {
    const revoke = await run(server, { operation: 'revoke', 'access-token': 'x.y.z' });
    expect(revoke.exitCode).not.toBe(0);
    expect(revoke.maskedLog).toContain('AnyWeb has no token revocation');
    const cc = await run(server, {
      operation: 'client-credentials',
      'client-id': app.appid,
      'client-secret': app.secret,
    });
    expect(cc.maskedLog).toContain("AnyWeb issues user tokens only; use 'exchange'");
    expectNoLeaks(cc, [app.secret]);
  });
});

describe('expiry', () => {
  const now = Date.parse('2026-01-01T00:00:00Z');
  it('reads seconds, epoch seconds and epoch milliseconds', () => {
    expect(expiry(7200, now)?.toISOString()).toBe('2026-01-01T02:00:00.000Z');
    expect(expiry('1767232800', now)?.toISOString()).toBe('2026-01-01T02:00:00.000Z');
    expect(expiry(1767232800000, now)?.toISOString()).toBe('2026-01-01T02:00:00.000Z');
    expect(expiry(0, now)).toBeUndefined();
    expect(expiry(null, now)).toBeUndefined();
  });
});

function expectNoLeaks(result: ActionRun, secrets: (string | undefined)[]): void {
  expect(
    findLeaks(
      result,
      secrets.filter((s): s is string => Boolean(s)),
    ),
  ).toEqual([]);
}
