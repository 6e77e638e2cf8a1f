/**
 * The loopback Mastodon and Pleroma/Akkoma flavours against what the servers' source says
 * (Mastodon v4.5.15 with Doorkeeper 5.8.2; Pleroma 2.7.0; Akkoma develop 300302d4, 2025-10).
 * Plain fetch over loopback: these pin the server's behaviour that the action's tests rely on.
 */
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { OOB, startMastodonServer, type MastodonServer } from './servers/mastodon.ts';

interface Call {
  form?: Record<string, string>;
  bearer?: string;
}

async function call(server: MastodonServer, method: string, path: string, opts: Call = {}) {
  const headers: Record<string, string> = {};
  let body: string | undefined;
  if (opts.form) {
    headers['content-type'] = 'application/x-www-form-urlencoded';
    body = new URLSearchParams(opts.form).toString();
  }
  if (opts.bearer) headers.authorization = `Bearer ${opts.bearer}`;
  const res = await fetch(server.url + path, { method, headers, body, redirect: 'manual' });
  const text = await res.text();
  let data: Record<string, unknown> = {};
  try {
    data = JSON.parse(text) as Record<string, unknown>;
  } catch {
    // HTML stays in `text`.
  }
  return { status: res.status, headers: res.headers, text, data };
}

const s256 = (v: string) => createHash('sha256').update(v).digest('base64url');
const VERIFY = '/api/v1/accounts/verify_credentials';
const APP_VERIFY = '/api/v1/apps/verify_credentials';

describe('mastodon', () => {
  let server: MastodonServer;
  beforeAll(async () => {
    server = await startMastodonServer({
      flavour: 'mastodon',
      users: [
        { id: '113406148396826625', username: 'alice' },
        { id: '113406148396826626', username: 'bob' },
      ],
    });
  });
  afterAll(() => server.close());

  it('checks scopes before the user: a write-only app token gets 403, a read one 422', async () => {
    const app = server.registerApp({ scopes: ['read', 'write'] });
    const writeApp = server.issueToken({ clientId: app.clientId, user: null, scope: 'write' });
    const readApp = server.issueToken({ clientId: app.clientId, user: null, scope: 'read' });
    const narrow = await call(server, 'GET', VERIFY, { bearer: writeApp });
    expect([narrow.status, narrow.data.error]).toEqual([
      403,
      'This action is outside the authorized scopes',
    ]);
    const wide = await call(server, 'GET', VERIFY, { bearer: readApp });
    expect([wide.status, wide.data.error]).toEqual([
      422,
      'This method requires an authenticated user',
    ]);
  });

  it('answers apps/verify_credentials with the registered scopes, token/info with the token’s', async () => {
    const app = server.registerApp({ scopes: ['read', 'write'] });
    const token = server.issueToken({ clientId: app.clientId, user: null, scope: 'write' });
    const registered = await call(server, 'GET', APP_VERIFY, { bearer: token });
    expect(registered.data.scopes).toEqual(['read', 'write']);
    const info = await call(server, 'GET', '/oauth/token/info', { bearer: token });
    expect(info.status).toBe(200);
    expect(info.data).toMatchObject({
      resource_owner_id: null,
      scope: ['write'],
      expires_in: null,
      application: { uid: app.clientId },
    });
    const user = await call(server, 'GET', '/oauth/token/info', {
      bearer: server.issueToken({ clientId: app.clientId }),
    });
    expect(typeof user.data.resource_owner_id).toBe('number');
    const unknown = await call(server, 'GET', '/oauth/token/info', { bearer: 'nope' });
    expect([unknown.status, unknown.data.error]).toEqual([401, 'invalid_token']);
    expect(unknown.headers.get('www-authenticate')).toMatch(/^Bearer /);
  });

  it('says why a token is refused: revoked, unknown', async () => {
    const token = server.issueToken();
    const app = server.registerApp();
    const mine = server.issueToken({ clientId: app.clientId });
    await call(server, 'POST', '/oauth/revoke', {
      form: { client_id: app.clientId, client_secret: app.clientSecret, token: mine },
    });
    const revoked = await call(server, 'GET', VERIFY, { bearer: mine });
    expect([revoked.status, revoked.data.error]).toEqual([401, 'The access token was revoked']);
    const unknown = await call(server, 'GET', VERIFY, { bearer: `${token}x` });
    expect([unknown.status, unknown.data.error]).toEqual([401, 'The access token is invalid']);
  });

  it('refuses accounts that cannot use the API: 403 on verify_credentials, apps/verify_credentials only for suspended ones', async () => {
    const app = server.registerApp({ scopes: ['read'] });
    const token = server.issueToken({ clientId: app.clientId, user: 'bob' });
    const answers: Record<string, [number, unknown, number]> = {};
    for (const state of ['suspended', 'unconfirmed', 'pending', 'disabled', 'memorial'] as const) {
      server.setUserState('bob', state);
      const user = await call(server, 'GET', VERIFY, { bearer: token });
      const appCheck = await call(server, 'GET', APP_VERIFY, { bearer: token });
      answers[state] = [user.status, user.data.error, appCheck.status];
    }
    server.setUserState('bob', undefined);
    expect(answers).toEqual({
      suspended: [403, 'Your login is currently disabled', 403],
      unconfirmed: [403, 'Your login is missing a confirmed e-mail address', 200],
      pending: [403, 'Your login is currently pending approval', 200],
      disabled: [403, 'Your login is currently disabled', 200],
      memorial: [403, 'Your login is currently disabled', 200],
    });
    expect((await call(server, 'GET', VERIFY, { bearer: token })).status).toBe(200);
  });

  it('revoke: a wrong client secret is 403 unauthorized_client before the token is looked at', async () => {
    const app = server.registerApp();
    const token = server.issueToken({ clientId: app.clientId });
    for (const tokenValue of [token, 'unknown-token']) {
      const res = await call(server, 'POST', '/oauth/revoke', {
        form: { client_id: app.clientId, client_secret: 'wrong', token: tokenValue },
      });
      expect([res.status, res.data.error]).toEqual([403, 'unauthorized_client']);
    }
    expect(server.isRevoked(token)).toBe(false);
  });

  it('ignores the port of loopback-IP redirect URIs at authorize and at exchange (RFC 8252 §7.3)', async () => {
    const app = server.registerApp({ redirectUris: ['http://127.0.0.1/callback'] });
    const authorize = (redirect: string) =>
      call(
        server,
        'GET',
        `/oauth/authorize?${new URLSearchParams({
          response_type: 'code',
          client_id: app.clientId,
          redirect_uri: redirect,
          scope: 'read',
        })}`,
      );
    expect((await authorize('http://127.0.0.1:49152/callback')).status).toBe(200);
    expect((await authorize('http://127.0.0.1:49152/elsewhere')).status).toBe(400);
    // localhost is a name, not a loopback IP literal: its port counts.
    const named = server.registerApp({ redirectUris: ['http://localhost/callback'] });
    const byName = await call(
      server,
      'GET',
      `/oauth/authorize?${new URLSearchParams({
        response_type: 'code',
        client_id: named.clientId,
        redirect_uri: 'http://localhost:49152/callback',
      })}`,
    );
    expect(byName.status).toBe(400);
    const code = server.issueCode({
      clientId: app.clientId,
      redirectUri: 'http://127.0.0.1:49152/callback',
    });
    const exchanged = await call(server, 'POST', '/oauth/token', {
      form: {
        grant_type: 'authorization_code',
        code,
        redirect_uri: 'http://127.0.0.1:50000/callback',
        client_id: app.clientId,
        client_secret: app.clientSecret,
      },
    });
    expect(exchanged.status).toBe(200);
  });

  it('throttles app registrations to 5 per 10 minutes, reporting the window’s end', async () => {
    const throttled = await startMastodonServer({
      flavour: 'mastodon',
      throttleAppRegistrations: true,
    });
    try {
      const form = { client_name: 'x', redirect_uris: OOB };
      const statuses: number[] = [];
      let last: Awaited<ReturnType<typeof call>> | undefined;
      for (let i = 0; i < 6; i++) {
        last = await call(throttled, 'POST', '/api/v1/apps', { form });
        statuses.push(last.status);
      }
      // Five pass unless the ten-minute window turned between two of them.
      expect(statuses.filter((s) => s === 429).length).toBeLessThanOrEqual(1);
      if (last?.status === 429) {
        expect(last.data.error).toBe('Too many requests');
        expect(last.headers.get('x-ratelimit-limit')).toBe('5');
        expect(last.headers.get('x-ratelimit-remaining')).toBe('0');
        const reset = Date.parse(last.headers.get('x-ratelimit-reset') ?? '');
        expect(reset).toBeGreaterThan(Date.now());
        expect(reset).toBeLessThanOrEqual(Date.now() + 600_000);
        expect(reset % 600_000).toBe(0);
      }
    } finally {
      await throttled.close();
    }
  });

  it('with DISALLOW_UNAUTHENTICATED_API_ACCESS, app and unknown tokens get 401 on both verify endpoints; token/info still answers', async () => {
    const closed = await startMastodonServer({
      flavour: 'mastodon',
      disallowUnauthenticated: true,
    });
    try {
      const app = closed.registerApp({ scopes: ['read'] });
      const appToken = closed.issueToken({ clientId: app.clientId, user: null });
      for (const bearer of [appToken, 'unknown']) {
        for (const path of [VERIFY, APP_VERIFY]) {
          const res = await call(closed, 'GET', path, { bearer });
          expect([res.status, res.data.error]).toEqual([
            401,
            'This method requires an authenticated user',
          ]);
        }
      }
      const info = await call(closed, 'GET', '/oauth/token/info', { bearer: appToken });
      expect([info.status, info.data.resource_owner_id]).toEqual([200, null]);
      const user = await call(closed, 'GET', VERIFY, {
        bearer: closed.issueToken({ clientId: app.clientId }),
      });
      expect(user.status).toBe(200);
    } finally {
      await closed.close();
    }
  });

  it('asks for a verifier before the client when the code has a challenge', async () => {
    const app = server.registerApp();
    const code = server.issueCode({
      clientId: app.clientId,
      redirectUri: OOB,
      codeChallenge: s256('v'),
    });
    const res = await call(server, 'POST', '/oauth/token', {
      form: { grant_type: 'authorization_code', code, redirect_uri: OOB, client_id: 'nobody' },
    });
    expect(res.data).toEqual({
      error: 'invalid_request',
      error_description: 'Missing required parameter: code_verifier.',
    });
  });
});

describe.each(['pleroma', 'akkoma'] as const)('%s', (software) => {
  let server: MastodonServer;
  beforeAll(async () => {
    server = await startMastodonServer({
      flavour: 'pleroma',
      software: software === 'akkoma' ? 'akkoma' : undefined,
    });
  });
  afterAll(() => server.close());

  const token = (form: Record<string, string>) => call(server, 'POST', '/oauth/token', { form });

  it('names itself in nodeinfo', async () => {
    const links = await call(server, 'GET', '/.well-known/nodeinfo');
    const href = (links.data.links as { href: string }[])[0]?.href ?? '';
    const nodeinfo = (await fetch(href).then((r) => r.json())) as { software: { name: string } };
    expect(nodeinfo.software.name).toBe(software);
  });

  it('revoke deletes the token row: its refresh token stops working', async () => {
    const app = server.registerApp();
    const code = server.issueCode({ clientId: app.clientId, redirectUri: OOB });
    const auth = { client_id: app.clientId, client_secret: app.clientSecret };
    const first = await token({ ...auth, grant_type: 'authorization_code', code });
    const access = String(first.data.access_token);
    const refresh = String(first.data.refresh_token);
    // The revocation needs no client at all.
    const revoked = await call(server, 'POST', '/oauth/revoke', { form: { token: access } });
    expect([revoked.status, revoked.data]).toEqual([200, {}]);
    const again = await token({ ...auth, grant_type: 'refresh_token', refresh_token: refresh });
    expect([again.status, again.data.error]).toEqual([400, 'Invalid credentials']);
  });

  it('revoking a refresh token does nothing, and answers 200', async () => {
    const app = server.registerApp();
    const code = server.issueCode({ clientId: app.clientId, redirectUri: OOB });
    const auth = { client_id: app.clientId, client_secret: app.clientSecret };
    const first = await token({ ...auth, grant_type: 'authorization_code', code });
    const refresh = String(first.data.refresh_token);
    const res = await call(server, 'POST', '/oauth/revoke', { form: { token: refresh } });
    expect(res.status).toBe(200);
    expect(server.isRevoked(String(first.data.access_token))).toBe(false);
    const renewed = await token({ ...auth, grant_type: 'refresh_token', refresh_token: refresh });
    expect(renewed.status).toBe(200);
    // issue_new_refresh_token (default true) keeps the refresh token.
    expect(renewed.data.refresh_token).toBe(refresh);
  });

  it('grants client-credentials tokens the app’s scopes, whatever was asked', async () => {
    const app = server.registerApp({ scopes: ['read', 'write', 'follow'] });
    const res = await token({
      grant_type: 'client_credentials',
      client_id: app.clientId,
      client_secret: app.clientSecret,
      scope: 'read',
    });
    expect([res.status, res.data.scope]).toEqual([200, 'read write follow']);
  });

  it('answers malformed grants with HTTP 500', async () => {
    const app = server.registerApp();
    const auth = { client_id: app.clientId, client_secret: app.clientSecret };
    const unknown = await token({ ...auth, grant_type: 'device_code' });
    expect([unknown.status, unknown.data.error]).toEqual([500, 'Bad request']);
    const noGrant = await token(auth);
    expect(noGrant.status).toBe(500);
    const noRefresh = await token({ ...auth, grant_type: 'refresh_token' });
    expect(noRefresh.status).toBe(500);
    const noCode = await token({ ...auth, grant_type: 'authorization_code' });
    expect([noCode.status, noCode.data.errors]).toEqual([500, { detail: 'Internal server error' }]);
    const badCode = await token({ ...auth, grant_type: 'authorization_code', code: 'not=base64' });
    expect(badCode.status).toBe(500);
    // A wrong client is found first.
    const wrongClient = await token({
      client_id: app.clientId,
      client_secret: 'x',
      grant_type: 'authorization_code',
    });
    expect([wrongClient.status, wrongClient.data.error]).toEqual([400, 'Invalid credentials']);
  });

  it(
    software === 'akkoma'
      ? 'answers a used code with the newest live token of the app and user'
      : 'refuses a used code',
    async () => {
      const app = server.registerApp();
      const auth = { client_id: app.clientId, client_secret: app.clientSecret };
      const code = server.issueCode({ clientId: app.clientId, redirectUri: OOB });
      const first = await token({ ...auth, grant_type: 'authorization_code', code });
      const newer = await token({
        ...auth,
        grant_type: 'authorization_code',
        code: server.issueCode({ clientId: app.clientId, redirectUri: OOB }),
      });
      expect(newer.data.access_token).not.toBe(first.data.access_token);
      const replay = await token({ ...auth, grant_type: 'authorization_code', code });
      if (software === 'pleroma') {
        expect([replay.status, replay.data.error]).toEqual([400, 'Invalid credentials']);
        return;
      }
      expect(replay.status).toBe(200);
      expect(replay.data.access_token).toBe(newer.data.access_token);
      expect(replay.data.created_at).toBe(newer.data.created_at);
    },
  );

  it('tells app tokens, narrow tokens and unknown tokens apart only by their messages', async () => {
    const app = server.registerApp({ scopes: ['read', 'write'] });
    const appToken = server.issueToken({ clientId: app.clientId, user: null });
    const narrow = server.issueToken({ clientId: app.clientId, scope: 'write' });
    const asApp = await call(server, 'GET', VERIFY, { bearer: appToken });
    const unknown = await call(server, 'GET', VERIFY, { bearer: 'nope' });
    const tooNarrow = await call(server, 'GET', VERIFY, { bearer: narrow });
    expect([asApp.status, asApp.data.error]).toEqual([403, 'Invalid credentials.']);
    expect([unknown.status, unknown.data.error]).toEqual([403, 'Invalid credentials.']);
    expect([tooNarrow.status, tooNarrow.data.error]).toEqual([
      403,
      'Insufficient permissions: read:accounts.',
    ]);
    const appCheck = await call(server, 'GET', APP_VERIFY, { bearer: appToken });
    expect(appCheck.data).toEqual({
      name: 'fedi-token tests',
      website: null,
      vapid_key: expect.any(String),
    });
    const unknownCheck = await call(server, 'GET', APP_VERIFY, { bearer: 'nope' });
    expect([unknownCheck.status, unknownCheck.data.errors]).toEqual([
      400,
      { detail: 'Internal server error' },
    ]);
  });

  it('serves the front end, not token info, at /oauth/token/info', async () => {
    const res = await call(server, 'GET', '/oauth/token/info', { bearer: server.issueToken() });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toContain('text/html');
  });
});
