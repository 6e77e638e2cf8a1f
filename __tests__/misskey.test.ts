/**
 * platform: misskey, run as the runner runs the bundle, against the loopback Misskey.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createHash, randomUUID } from 'node:crypto';
import { findLeaks, runAction, type ActionRun } from './harness/action.ts';
import { rateLimitFault, startMisskey, type MisskeyServer } from './servers/misskey.ts';

let server: MisskeyServer;

beforeAll(async () => {
  server = await startMisskey();
});
afterAll(async () => {
  await server.close();
});

function run(inputs: Record<string, string>): Promise<ActionRun> {
  return runAction('main', { instance: server.url, platform: 'misskey', ...inputs });
}

function expectNoLeaks(result: ActionRun, secrets: string[]): void {
  expect(findLeaks(result, secrets)).toEqual([]);
}

describe('exchange with a MiAuth session id', () => {
  it('returns the token and the account once, then explains ok:false', async () => {
    const session = randomUUID();
    const token = server.approveMiAuth(session, {
      username: 'miauth_user',
      permission: ['read:account', 'write:notes', 'read:notes-made-up'],
    });
    const first = await run({ operation: 'exchange', code: session });
    expect(first.exitCode).toBe(0);
    expect(first.outputs['access-token']).toBe(token);
    expect(first.outputs.username).toBe('miauth_user');
    expect(first.outputs['account-id']).toBe(server.user('miauth_user').id);
    expect(first.outputs.platform).toBe('misskey');
    expect(first.outputs['expires-at']).toBe('');
    expect(first.masks).toEqual(expect.arrayContaining([session, token]));
    expectNoLeaks(first, [session, token]);

    const again = await run({ operation: 'exchange', code: session });
    expect(again.exitCode).not.toBe(0);
    expect(again.maskedLog).toContain('POST /api/miauth/{session}/check answered HTTP 200');
    expect(again.maskedLog).toContain('not approved yet or was already used');
    expect(again.maskedLog).toContain('start a new session');
    expect(again.outputs['access-token']).toBeUndefined();
    expectNoLeaks(again, [session, token]);
  });

  it('says the same for a session nobody approved, and never puts the id in the log', async () => {
    const session = randomUUID();
    const result = await run({ operation: 'exchange', code: session });
    expect(result.exitCode).not.toBe(0);
    expect(result.maskedLog).toContain('ok:false');
    expect(result.maskedLog).toContain("pressed 'Allow'");
    expect(result.log).not.toMatch(new RegExp(`(?<!add-mask::)${session}`));
    expectNoLeaks(result, [session]);
  });

  it.each(['../i/../../admin', '..', '.', '...', 'a/b', '%2e%2e'])(
    'rejects the session id %p, not one plain path segment, before any request',
    async (code) => {
      const before = server.requests.length;
      const result = await run({ operation: 'exchange', code });
      expect(result.exitCode).not.toBe(0);
      expect(result.maskedLog).toContain("Input 'code': must be a MiAuth session id");
      expect(server.requests.length).toBe(before);
    },
  );

  it('approves through the MiAuth web page and redirects to the callback with the session', async () => {
    const session = randomUUID();
    const page = await fetch(
      `${server.url}/miauth/${session}?name=test&permission=read:account&callback=${encodeURIComponent('http://127.0.0.1:9/cb?x=1')}`,
    );
    const html = await page.text();
    expect(html).toContain('id="approve"');
    const approve = await fetch(`${server.url}/miauth/${session}/approve`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        permission: 'read:account',
        callback: 'http://127.0.0.1:9/cb?x=1',
      }),
      redirect: 'manual',
    });
    expect(approve.status).toBe(302);
    const location = new URL(approve.headers.get('location') ?? '');
    expect(location.searchParams.get('session')).toBe(session);
    expect(location.searchParams.get('x')).toBe('1');
    const result = await run({ operation: 'exchange', code: session });
    expect(result.exitCode).toBe(0);
    expect(result.outputs['access-token']).toMatch(/.+/);
  });
  it('keeps the session id out of a network error too, and does not repeat the check', async () => {
    const session = randomUUID();
    server.approveMiAuth(session);
    server.faults.inject({ kind: 'reset', path: `/api/miauth/${session}/check` });
    const result = await run({ operation: 'exchange', code: session, 'max-attempts': '3' });
    expect(result.exitCode).not.toBe(0);
    expect(result.maskedLog).toContain('POST /api/miauth/{session}/check');
    expect(
      server.hits.filter((hit) => hit.includes('/check') && hit.includes(session)),
    ).toHaveLength(1);
    expectNoLeaks(result, [session]);
  });
});

describe('the loopback Misskey itself', () => {
  it('takes the token as Bearer too, and answers like Misskey for missing tokens and unknown paths', async () => {
    const token = server.issueToken('bearer_user');
    const post = (path: string, headers: Record<string, string> = {}) =>
      fetch(`${server.url}${path}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...headers },
        body: '{}',
      });
    const me = await post('/api/i', { authorization: `Bearer ${token}` });
    expect(await me.json()).toMatchObject({ username: 'bearer_user' });
    const anonymous = await post('/api/i');
    expect(anonymous.status).toBe(401);
    expect(await anonymous.json()).toMatchObject({ error: { code: 'CREDENTIAL_REQUIRED' } });
    const unknown = await fetch(`${server.url}/api/v1/instance`);
    expect(unknown.status).toBe(404);
    expect(await unknown.json()).toMatchObject({
      error: { code: 'UNKNOWN_API_ENDPOINT', id: expect.any(String), kind: 'client' },
    });
    expect((await fetch(`${server.url}/api/i`)).status).toBe(405);
    // Only POST is routed for the MiAuth check, so a GET is an unknown endpoint, not a 405.
    const getCheck = await fetch(`${server.url}/api/miauth/${randomUUID()}/check`);
    expect(getCheck.status).toBe(404);
    expect(await getCheck.json()).toMatchObject({ error: { code: 'UNKNOWN_API_ENDPOINT' } });
    const postCheck = await post(`/api/miauth/${randomUUID()}/check`);
    expect(await postCheck.json()).toEqual({ ok: false });
    // The catch-all is a GET route: a POST to an unknown endpoint meets Fastify's own 404.
    const unknownPost = await post('/api/no/such/endpoint');
    expect(unknownPost.status).toBe(404);
    expect(await unknownPost.json()).toEqual({
      message: 'Route POST:/api/no/such/endpoint not found',
      error: 'Not Found',
      statusCode: 404,
    });
    const bad = await post('/api/i', { authorization: 'Bearer nope' });
    expect(bad.headers.get('www-authenticate')).toContain('error="invalid_token"');
  });

  it('keeps every permission app/create is given, and refuses app tokens on kind-less endpoints', async () => {
    const response = await fetch(`${server.url}/api/app/create`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        name: 'x',
        description: '',
        permission: ['notes-write', 'read:made-up'],
      }),
    });
    // app/create.ts only rewrites the old spelling; nothing is dropped.
    expect(await response.json()).toMatchObject({ permission: ['write:notes', 'read:made-up'] });
    server.addEndpoint('i/web-only', { requireCredential: true, handler: () => ({ ok: true }) });
    const token = server.issueToken('web_only_user', ['read:account']);
    const refused = await fetch(`${server.url}/api/i/web-only`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ i: token }),
    });
    expect(refused.status).toBe(403);
    expect(await refused.json()).toMatchObject({
      error: { code: 'PERMISSION_DENIED', kind: 'permission' },
    });
  });
});

describe('exchange with the legacy app flow', () => {
  it('maps PENDING_SESSION, derives i = sha256(accessToken + appSecret), then NO_SUCH_SESSION', async () => {
    const app = server.createApp({ permission: ['read:account'] });
    const sessionToken = server.generateLegacySession(app.secret);
    const inputs = { operation: 'exchange', 'client-secret': app.secret, code: sessionToken };

    const pending = await run(inputs);
    expect(pending.exitCode).not.toBe(0);
    expect(pending.maskedLog).toContain(
      'POST /api/auth/session/userkey answered HTTP 400 (PENDING_SESSION)',
    );
    expect(pending.maskedLog).toContain('not been approved yet');

    const expected = server.approveLegacySession(sessionToken, { username: 'legacy_user' });
    const done = await run(inputs);
    expect(done.exitCode).toBe(0);
    expect(done.outputs['access-token']).toBe(expected);
    expect(done.outputs.username).toBe('legacy_user');
    // The raw user key never leaves the provider; only the derived API token is output.
    const raw = done.masks.find(
      (mask) =>
        createHash('sha256')
          .update(mask + app.secret)
          .digest('hex') === expected,
    );
    expect(raw).toBeDefined();
    expectNoLeaks(done, [app.secret, sessionToken, expected, raw ?? '']);

    const validate = await run({ operation: 'validate', 'access-token': expected });
    expect(validate.exitCode).toBe(0);
    expect(validate.outputs.valid).toBe('true');

    const used = await run(inputs);
    expect(used.exitCode).not.toBe(0);
    expect(used.maskedLog).toContain('(NO_SUCH_SESSION)');
    expect(used.maskedLog).toContain('already used');
    expectNoLeaks(used, [app.secret, sessionToken]);
  });

  it('names a wrong app secret', async () => {
    const result = await run({
      operation: 'exchange',
      'client-secret': 'nope-secret',
      code: 'abc',
    });
    expect(result.exitCode).not.toBe(0);
    expect(result.maskedLog).toContain('(NO_SUCH_APP)');
    expect(result.maskedLog).toContain("'client-secret' is not the secret");
    expectNoLeaks(result, ['nope-secret']);
  });
});

describe('validate', () => {
  it('reports the account of a valid token and sends it as i in the body', async () => {
    const token = server.issueToken('validator', ['read:account']);
    const result = await run({ operation: 'validate', 'access-token': token });
    expect(result.exitCode).toBe(0);
    expect(result.outputs.valid).toBe('true');
    expect(result.outputs.username).toBe('validator');
    expect(result.outputs['account-id']).toBe(server.user('validator').id);
    expect(server.requests.at(-1)).toMatchObject({ path: '/api/i', body: { i: token } });
    expectNoLeaks(result, [token]);
  });

  it('tells an unknown token (401) from one that lacks read:account (403)', async () => {
    const revoked = server.issueToken('validator');
    server.revokeToken(revoked);
    const invalid = await run({ operation: 'validate', 'access-token': revoked });
    expect(invalid.exitCode).not.toBe(0);
    expect(invalid.maskedLog).toContain('AUTHENTICATION_FAILED');
    expectNoLeaks(invalid, [revoked]);

    const soft = await run({
      operation: 'validate',
      'access-token': revoked,
      'fail-on-invalid': 'false',
    });
    expect(soft.exitCode).toBe(0);
    expect(soft.outputs.valid).toBe('false');

    const narrow = server.issueToken('validator', ['write:notes']);
    const limited = await run({ operation: 'validate', 'access-token': narrow });
    expect(limited.exitCode).toBe(0);
    expect(limited.outputs.valid).toBe('true');
    expect(limited.outputs.username).toBe('');
    expect(limited.maskedLog).toContain('lacks the read:account permission');
    expectNoLeaks(limited, [narrow]);
  });

  it('reports a token whose account is suspended as invalid, saying so', async () => {
    const token = server.issueToken('suspended_user', ['read:account']);
    server.suspendUser('suspended_user');
    const result = await run({
      operation: 'validate',
      'access-token': token,
      'fail-on-invalid': 'false',
    });
    expect(result.exitCode).toBe(0);
    expect(result.outputs.valid).toBe('false');
    expect(result.maskedLog).toContain('the account that owns this token is suspended');
    const failing = await run({ operation: 'validate', 'access-token': token });
    expect(failing.exitCode).toBe(1);
    expect(failing.stdout).toContain(
      '::error::The access token is not valid: the account that owns this token is suspended',
    );
    expectNoLeaks(result, [token]);
  });

  it('reads the error code, not the status, as older releases used 403 and 400 for these', async () => {
    const token = server.issueToken('old_release');
    const old = (status: number, code: string) => ({
      kind: 'status' as const,
      status,
      path: '/api/i',
      body: { error: { message: 'x', code, id: randomUUID() } },
    });
    server.faults.inject(old(403, 'AUTHENTICATION_FAILED'));
    const invalid = await run({
      operation: 'validate',
      'access-token': token,
      'fail-on-invalid': 'false',
    });
    expect(invalid.outputs.valid).toBe('false');
    server.faults.inject(old(400, 'PERMISSION_DENIED'));
    const limited = await run({ operation: 'validate', 'access-token': token });
    expect(limited.outputs.valid).toBe('true');
    expect(limited.maskedLog).toContain('lacks the read:account permission');
  });

  it('waits out a 429 RATE_LIMIT_EXCEEDED with Retry-After, and refuses a wait that is too long', async () => {
    const token = server.issueToken('limited_user');
    server.faults.inject(rateLimitFault('/api/i', 1));
    const before = server.requests.length;
    const result = await run({ operation: 'validate', 'access-token': token });
    expect(result.exitCode).toBe(0);
    expect(result.outputs.valid).toBe('true');
    expect(server.requests.length).toBe(before + 1);

    server.faults.inject(rateLimitFault('/api/i', 3600));
    const refused = await run({ operation: 'validate', 'access-token': token });
    expect(refused.exitCode).not.toBe(0);
    expect(refused.maskedLog).toContain('answered HTTP 429 (RATE_LIMIT_EXCEEDED)');
    expect(refused.maskedLog).toContain('asks to wait 3600 s');
    expectNoLeaks(refused, [token]);
  });
});

describe('operations Misskey does not have', () => {
  it('refuses revoke and revoke-on-exit before any request, saying where to revoke', async () => {
    const token = server.issueToken('keeper');
    const before = server.requests.length;
    const revoke = await run({ operation: 'revoke', 'access-token': token });
    expect(revoke.exitCode).not.toBe(0);
    expect(revoke.maskedLog).toContain('Misskey does not let an app revoke its own token');
    expect(revoke.maskedLog).toContain('Settings → API');
    const onExit = await run({
      operation: 'exchange',
      code: randomUUID(),
      'revoke-on-exit': 'true',
    });
    expect(onExit.exitCode).not.toBe(0);
    expect(onExit.maskedLog).toContain("Input 'revoke-on-exit'");
    expect(onExit.maskedLog).toContain('Installed apps');
    expect(server.requests.length).toBe(before);
    expectNoLeaks(revoke, [token]);
  });

  it('names the platform and the alternative for refresh and client-credentials', async () => {
    const refresh = await run({ operation: 'refresh', 'refresh-token': 'rt-secret' });
    expect(refresh.exitCode).not.toBe(0);
    expect(refresh.maskedLog).toContain('Misskey tokens do not expire');
    const cc = await run({
      operation: 'client-credentials',
      'client-id': 'a',
      'client-secret': 'b',
    });
    expect(cc.exitCode).not.toBe(0);
    expect(cc.maskedLog).toContain(
      "Misskey has no app-only tokens; get a user token with 'exchange'",
    );
    expectNoLeaks(refresh, ['rt-secret']);
  });
});
