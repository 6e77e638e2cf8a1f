/**
 * The loopback server itself: each flavour does what PROTOCOLS.md says that family does, so the
 * action's tests against it mean something. Plain fetch over loopback, no client code of ours.
 */
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { OOB, startMastodonServer, type Flavour, type MastodonServer } from './servers/mastodon.ts';

interface Call {
  form?: Record<string, string>;
  json?: unknown;
  bearer?: string;
  basic?: [string, string];
}

async function call(server: MastodonServer, method: string, path: string, opts: Call = {}) {
  const headers: Record<string, string> = {};
  let body: string | undefined;
  if (opts.form) {
    headers['content-type'] = 'application/x-www-form-urlencoded';
    body = new URLSearchParams(opts.form).toString();
  } else if (opts.json !== undefined) {
    headers['content-type'] = 'application/json';
    body = JSON.stringify(opts.json);
  }
  if (opts.bearer) headers.authorization = `Bearer ${opts.bearer}`;
  if (opts.basic) {
    headers.authorization = `Basic ${Buffer.from(opts.basic.join(':')).toString('base64')}`;
  }
  const res = await fetch(server.url + path, { method, headers, body, redirect: 'manual' });
  const text = await res.text();
  let data: Record<string, unknown> = {};
  try {
    data = JSON.parse(text) as Record<string, unknown>;
  } catch {
    // HTML pages stay in `text`.
  }
  return { status: res.status, headers: res.headers, text, data };
}

const s256 = (v: string) => createHash('sha256').update(v).digest('base64url');

describe.each(['mastodon', 'gotosocial', 'pleroma'] as Flavour[])('%s flavour', (flavour) => {
  let server: MastodonServer;
  beforeAll(async () => {
    server = await startMastodonServer({ flavour });
  });
  afterAll(() => server.close());

  it('registers apps from a form with newline-separated redirect URIs', async () => {
    const res = await call(server, 'POST', '/api/v1/apps', {
      form: {
        client_name: 'x',
        redirect_uris: `${OOB}\nhttp://127.0.0.1:1/cb`,
        scopes: 'read write',
      },
    });
    expect(res.status).toBe(200);
    if (flavour === 'pleroma') {
      // AppView "show.json": the URIs as sent, no scopes.
      expect(res.data.redirect_uri).toBe(`${OOB}\nhttp://127.0.0.1:1/cb`);
      expect(res.data).not.toHaveProperty('scopes');
    } else {
      expect(res.data.redirect_uris).toEqual([OOB, 'http://127.0.0.1:1/cb']);
      expect(res.data.scopes).toEqual(['read', 'write']);
    }
    expect(typeof res.data.client_id).toBe('string');
    expect(typeof res.data.client_secret).toBe('string');
  });

  it('accepts a JSON array of redirect URIs only on Mastodon', async () => {
    const res = await call(server, 'POST', '/api/v1/apps', {
      json: { client_name: 'x', redirect_uris: [OOB] },
    });
    expect(res.status).toBe(flavour === 'mastodon' ? 200 : 400);
  });

  it('drives the authorize page: approve redirects with code and state, deny with access_denied', async () => {
    const cb = 'http://127.0.0.1:1/callback';
    const app = server.registerApp({
      name: 'Page <test>',
      redirectUris: [cb],
      scopes: ['read', 'write'],
    });
    const query = new URLSearchParams({
      response_type: 'code',
      client_id: app.clientId,
      redirect_uri: cb,
      scope: 'read',
      state: 's1',
    });
    const page = await call(server, 'GET', `/oauth/authorize?${query}`);
    expect(page.status).toBe(200);
    expect(page.text).toContain('Page &#60;test&#62;');
    expect(page.text).toContain('id="approve"');
    expect(page.text).toContain('id="deny"');
    const fields = Object.fromEntries(query);
    const approve = await call(server, 'POST', '/oauth/authorize', {
      form: { ...fields, decision: 'approve' },
    });
    expect(approve.status).toBe(302);
    const location = new URL(approve.headers.get('location') ?? '');
    expect(location.origin + location.pathname).toBe(cb);
    expect(location.searchParams.get('state')).toBe('s1');
    const code = location.searchParams.get('code') ?? '';
    const token = await call(server, 'POST', '/oauth/token', {
      form: {
        grant_type: 'authorization_code',
        code,
        redirect_uri: cb,
        client_id: app.clientId,
        client_secret: app.clientSecret,
      },
    });
    expect(token.status).toBe(200);
    expect(token.data.scope).toBe('read');

    const deny = await call(server, 'POST', '/oauth/authorize', {
      form: { ...fields, decision: 'deny' },
    });
    const denied = new URL(deny.headers.get('location') ?? '');
    expect(denied.searchParams.get('error')).toBe('access_denied');
    expect(denied.searchParams.get('state')).toBe('s1');

    const mismatch = await call(
      server,
      'GET',
      `/oauth/authorize?${new URLSearchParams({ ...fields, redirect_uri: `${cb}/` })}`,
    );
    expect(mismatch.status).toBe(400);
  });

  it('shows an OOB code the way the family does', async () => {
    const app = server.registerApp();
    const approve = await call(server, 'POST', '/oauth/authorize', {
      form: {
        response_type: 'code',
        client_id: app.clientId,
        redirect_uri: OOB,
        decision: 'approve',
      },
    });
    let page = approve;
    if (flavour === 'gotosocial') {
      expect(approve.status).toBe(302);
      const location = approve.headers.get('location') ?? '';
      expect(location).toMatch(/^\/oauth\/oob\?code=/);
      page = await call(server, 'GET', location);
    }
    expect(page.status).toBe(200);
    expect(page.text).toMatch(/id="code"[^>]*value="[^"]{20,}"/);
  });

  it('uses single-use codes bound to the exact redirect URI', async () => {
    const app = server.registerApp();
    const code = server.issueCode({ clientId: app.clientId, redirectUri: OOB });
    const form = {
      grant_type: 'authorization_code',
      code,
      redirect_uri: OOB,
      client_id: app.clientId,
      client_secret: app.clientSecret,
    };
    const wrongRedirect = await call(server, 'POST', '/oauth/token', {
      form: { ...form, redirect_uri: `${OOB} ` },
    });
    // GoToSocial: an unregistered redirect URI is 403 "invalid redirect uri". Pleroma does not
    // look at redirect_uri when it exchanges a code: that exchange used the code.
    expect(wrongRedirect.status).toBe({ gotosocial: 403, mastodon: 400, pleroma: 200 }[flavour]);
    if (flavour === 'pleroma') {
      const reused = await call(server, 'POST', '/oauth/token', { form });
      expect([reused.status, reused.data.error]).toEqual([400, 'Invalid credentials']);
      form.code = server.issueCode({ clientId: app.clientId, redirectUri: OOB });
    }
    const first = await call(server, 'POST', '/oauth/token', { form });
    expect(first.status).toBe(200);
    const second = await call(server, 'POST', '/oauth/token', { form });
    expect(second.status).toBe(400);
    if (flavour === 'mastodon') expect(second.data.error).toBe('invalid_grant');
    if (flavour === 'gotosocial') expect(second.data.error).toBe('invalid authorize code');
    if (flavour === 'mastodon') {
      expect(first.data).not.toHaveProperty('expires_in');
      expect(first.data).not.toHaveProperty('refresh_token');
    }
    if (flavour === 'pleroma') {
      expect(typeof first.data.refresh_token).toBe('string');
      expect(first.data.expires_in).toBeGreaterThan(3e9);
      expect(first.data.me).toBe(`${server.url}/users/alice`);
    }
  });

  it('answers a wrong client secret with the family’s status', async () => {
    const app = server.registerApp();
    const res = await call(server, 'POST', '/oauth/token', {
      form: {
        grant_type: 'client_credentials',
        redirect_uri: OOB,
        client_id: app.clientId,
        client_secret: 'wrong',
      },
    });
    expect(res.status).toBe(flavour === 'mastodon' ? 401 : 400);
    if (flavour !== 'pleroma') expect(res.data.error).toBe('invalid_client');
  });

  it('takes JSON bodies, and Basic client auth except on GoToSocial', async () => {
    const app = server.registerApp();
    const basic = await call(server, 'POST', '/oauth/token', {
      json: { grant_type: 'client_credentials', redirect_uri: OOB },
      basic: [app.clientId, app.clientSecret],
    });
    // GoToSocial reads client_id and client_secret from the body only.
    expect(basic.status).toBe(flavour === 'gotosocial' ? 400 : 200);
    const res = await call(server, 'POST', '/oauth/token', {
      json: {
        grant_type: 'client_credentials',
        redirect_uri: OOB,
        client_id: app.clientId,
        client_secret: app.clientSecret,
      },
    });
    expect(res.status).toBe(200);
    if (flavour === 'gotosocial') expect(res.data.expires_in).toBe(7200);
    if (flavour === 'mastodon') expect(res.data).not.toHaveProperty('expires_in');
  });

  it('checks scopes against the app, parents granting children', async () => {
    const app = server.registerApp({ scopes: ['read'] });
    const base = {
      grant_type: 'client_credentials',
      redirect_uri: OOB,
      client_id: app.clientId,
      client_secret: app.clientSecret,
    };
    const child = await call(server, 'POST', '/oauth/token', {
      form: { ...base, scope: 'read:accounts' },
    });
    expect(child.status).toBe(200);
    const wider = await call(server, 'POST', '/oauth/token', { form: { ...base, scope: 'write' } });
    expect(wider.status).toBe({ gotosocial: 403, mastodon: 400, pleroma: 200 }[flavour]);
    // Pleroma ignores the scope asked for and grants the app's.
    if (flavour === 'pleroma') expect(wider.data.scope).toBe('read');
  });

  it('answers verify_credentials for user, app, revoked and narrow tokens as the family does', async () => {
    const app = server.registerApp({ scopes: ['read', 'write'] });
    const user = server.issueToken({ clientId: app.clientId });
    const appToken = server.issueToken({ clientId: app.clientId, user: null });
    const narrow = server.issueToken({ clientId: app.clientId, scope: 'write' });
    const path = '/api/v1/accounts/verify_credentials';
    const ok = await call(server, 'GET', path, { bearer: user });
    expect(ok.status).toBe(200);
    expect(typeof ok.data.id).toBe('string');
    const asApp = await call(server, 'GET', path, { bearer: appToken });
    const invalid = await call(server, 'GET', path, { bearer: 'nope' });
    const tooNarrow = await call(server, 'GET', path, { bearer: narrow });
    expect(tooNarrow.status).toBe(403);
    const appCheck = await call(server, 'GET', '/api/v1/apps/verify_credentials', {
      bearer: appToken,
    });
    if (flavour === 'mastodon') {
      expect([asApp.status, invalid.status]).toEqual([422, 401]);
      expect(invalid.data.error).toBe('The access token is invalid');
      expect(appCheck.status).toBe(200);
    } else if (flavour === 'gotosocial') {
      expect([asApp.status, invalid.status]).toEqual([401, 401]);
      expect(asApp.data.error).toBe('Unauthorized: user not supplied or not authorized');
      expect(invalid.data.error).toBe('Unauthorized: token not supplied');
      expect(appCheck.status).toBe(404);
    } else {
      expect([asApp.status, invalid.status]).toEqual([403, 403]);
      expect(appCheck.status).toBe(200);
      const unknownApp = await call(server, 'GET', '/api/v1/apps/verify_credentials', {
        bearer: 'nope',
      });
      expect(unknownApp.status).toBe(400);
    }
  });

  it('revokes as the family does', async () => {
    const app = server.registerApp();
    const other = server.registerApp();
    const token = server.issueToken({ clientId: app.clientId });
    const auth = { client_id: app.clientId, client_secret: app.clientSecret };
    if (flavour === 'gotosocial') {
      const json = await call(server, 'POST', '/oauth/revoke', { json: { ...auth, token } });
      expect(json.status).toBe(400);
      expect(json.text).toContain('client_id not set');
      expect(server.isRevoked(token)).toBe(false);
    }
    if (flavour === 'mastodon') {
      const foreign = await call(server, 'POST', '/oauth/revoke', {
        form: { client_id: other.clientId, client_secret: other.clientSecret, token },
      });
      expect(foreign.status).toBe(403);
      expect(foreign.data.error).toBe('unauthorized_client');
    }
    const unknown = await call(server, 'POST', '/oauth/revoke', { form: { ...auth, token: 'x' } });
    expect([unknown.status, unknown.data]).toEqual([200, {}]);
    const done = await call(server, 'POST', '/oauth/revoke', { form: { ...auth, token } });
    expect(done.status).toBe(200);
    expect(server.isRevoked(token)).toBe(true);
    const again = await call(server, 'POST', '/oauth/revoke', { form: { ...auth, token } });
    expect(again.status).toBe(200);
  });

  it('describes itself through the instance API and nodeinfo', async () => {
    const instance = await call(server, 'GET', '/api/v1/instance');
    expect(instance.data.version).toBe(
      { mastodon: '4.4.0', gotosocial: '0.19.0', pleroma: '2.7.2 (compatible; Pleroma 2.7.0)' }[
        flavour
      ],
    );
    const links = await call(server, 'GET', '/.well-known/nodeinfo');
    const href = (links.data.links as { href: string }[])[0]?.href ?? '';
    const nodeinfo = await fetch(href).then(
      (r) => r.json() as Promise<{ software: { name: string } }>,
    );
    expect(nodeinfo.software.name).toBe(flavour);
    expect(instance.headers.has('x-ratelimit-limit')).toBe(flavour !== 'pleroma');
  });
});

describe('mastodon specifics', () => {
  let server: MastodonServer;
  beforeAll(async () => {
    server = await startMastodonServer({ flavour: 'mastodon' });
  });
  afterAll(() => server.close());

  const exchange = (
    code: string,
    app: { clientId: string; clientSecret: string },
    verifier?: string,
  ) =>
    call(server, 'POST', '/oauth/token', {
      form: {
        grant_type: 'authorization_code',
        code,
        redirect_uri: OOB,
        client_id: app.clientId,
        client_secret: app.clientSecret,
        ...(verifier ? { code_verifier: verifier } : {}),
      },
    });

  it('verifies PKCE: a wrong verifier, or one without a challenge, is invalid_grant; a missing one invalid_request', async () => {
    const app = server.registerApp();
    const challenge = s256('right-verifier');
    const wrong = await exchange(
      server.issueCode({ clientId: app.clientId, redirectUri: OOB, codeChallenge: challenge }),
      app,
      'wrong-verifier',
    );
    expect([wrong.status, wrong.data.error]).toEqual([400, 'invalid_grant']);
    const missing = await exchange(
      server.issueCode({ clientId: app.clientId, redirectUri: OOB, codeChallenge: challenge }),
      app,
    );
    // Doorkeeper checks parameters first: a code with a challenge needs a verifier.
    expect([missing.status, missing.data.error]).toEqual([400, 'invalid_request']);
    const unasked = await exchange(
      server.issueCode({ clientId: app.clientId, redirectUri: OOB }),
      app,
      'some-verifier',
    );
    expect(unasked.status).toBe(400);
    const right = await exchange(
      server.issueCode({ clientId: app.clientId, redirectUri: OOB, codeChallenge: challenge }),
      app,
      'right-verifier',
    );
    expect(right.status).toBe(200);
  });

  it('reuses the live token when the same app is authorized again', async () => {
    const app = server.registerApp();
    const first = await exchange(
      server.issueCode({ clientId: app.clientId, redirectUri: OOB }),
      app,
    );
    const second = await exchange(
      server.issueCode({ clientId: app.clientId, redirectUri: OOB }),
      app,
    );
    expect(second.data.access_token).toBe(first.data.access_token);
  });

  it('has no refresh_token grant', async () => {
    const app = server.registerApp();
    const res = await call(server, 'POST', '/oauth/token', {
      form: {
        grant_type: 'refresh_token',
        refresh_token: 'x',
        client_id: app.clientId,
        client_secret: app.clientSecret,
      },
    });
    expect([res.status, res.data.error]).toEqual([400, 'unsupported_grant_type']);
  });
});

describe('gotosocial specifics', () => {
  let server: MastodonServer;
  beforeAll(async () => {
    server = await startMastodonServer({ flavour: 'gotosocial' });
  });
  afterAll(() => server.close());

  it('requires redirect_uri on both grants and ignores PKCE', async () => {
    const app = server.registerApp();
    const auth = { client_id: app.clientId, client_secret: app.clientSecret };
    const cc = await call(server, 'POST', '/oauth/token', {
      form: { ...auth, grant_type: 'client_credentials' },
    });
    expect(cc.status).toBe(400);
    const code = server.issueCode({
      clientId: app.clientId,
      redirectUri: OOB,
      codeChallenge: s256('a'),
    });
    const noRedirect = await call(server, 'POST', '/oauth/token', {
      form: { ...auth, grant_type: 'authorization_code', code },
    });
    expect(noRedirect.status).toBe(400);
    const ignored = await call(server, 'POST', '/oauth/token', {
      form: {
        ...auth,
        grant_type: 'authorization_code',
        code,
        redirect_uri: OOB,
        code_verifier: 'b',
      },
    });
    expect(ignored.status).toBe(200);
  });
});

describe('faults', () => {
  it('apply to the matching method and path the given number of times, and are recorded', async () => {
    const server = await startMastodonServer();
    try {
      server.inject({
        method: 'GET',
        path: '/api/v1/instance',
        kind: 'status',
        status: 503,
        retryAfter: 7,
        times: 2,
      });
      const statuses: number[] = [];
      for (let i = 0; i < 3; i++)
        statuses.push((await call(server, 'GET', '/api/v1/instance')).status);
      expect(statuses).toEqual([503, 503, 200]);
      expect(server.requests.map((r) => r.status)).toEqual([503, 503, 200]);
      server.inject({ path: '/api/v1/instance', kind: 'status', status: 429, retryAfter: 7 });
      const limited = await call(server, 'GET', '/api/v1/instance');
      expect(limited.headers.get('retry-after')).toBe('7');
      expect(limited.data.error).toBe('Too many requests');
    } finally {
      await server.close();
    }
  });
});
