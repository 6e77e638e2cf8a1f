/**
 * Every operation of platform `mastodon`, run as the runner runs the bundle, against the loopback
 * server in each flavour. Every run's log is scanned for the secrets involved.
 */
import { createHash, randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { findLeaks, runAction, type ActionRun } from './harness/action.ts';
import { OOB, startMastodonServer, type MastodonServer } from './servers/mastodon.ts';

const s256 = (v: string) => createHash('sha256').update(v).digest('base64url');

function expectNoLeaks(run: ActionRun, secrets: (string | undefined)[]): void {
  expect(
    findLeaks(
      run,
      secrets.filter((s): s is string => !!s),
    ),
  ).toEqual([]);
}

function errorLine(run: ActionRun): string {
  return run.stdout.split('\n').find((line) => line.startsWith('::error::')) ?? '';
}

describe.each(['mastodon', 'gotosocial'] as const)('platform mastodon on %s', (flavour) => {
  let server: MastodonServer;
  beforeAll(async () => {
    server = await startMastodonServer({ flavour });
  });
  afterAll(() => server.close());

  const base = () => ({ instance: server.url, platform: 'mastodon' });

  it('exchanges a code with PKCE and names the account; a reused code fails', async () => {
    const app = server.registerApp({ scopes: ['read', 'write'] });
    const verifier = randomBytes(32).toString('base64url');
    const code = server.issueCode({
      clientId: app.clientId,
      redirectUri: OOB,
      codeChallenge: s256(verifier),
    });
    const inputs = {
      ...base(),
      operation: 'exchange',
      'client-id': app.clientId,
      'client-secret': app.clientSecret,
      code,
      'code-verifier': verifier,
    };
    const run = await runAction('main', inputs);
    expect(run.exitCode).toBe(0);
    const token = run.outputs['access-token'] ?? '';
    expect(token).toMatch(/\S{20,}/);
    expect(run.masks).toContain(token);
    expect(run.outputs['token-type']).toBe('Bearer');
    expect(run.outputs.scope).toBe('read write');
    expect(run.outputs['expires-at']).toBe('');
    expect(run.outputs.username).toBe('alice');
    expect(run.outputs['account-id']).toMatch(/^[0-9A-Za-z]{16,}$/);
    expect(run.outputs.platform).toBe('mastodon');
    expect(run.summary).toContain('@alice');
    expect(run.summary).toMatch(/Platform.*mastodon/s);
    expect(run.summary).toMatch(/Scopes.*read write/s);
    expect(run.summary).toMatch(/Expires.*never/s);
    expectNoLeaks(run, [token, app.clientSecret, code, verifier]);

    const again = await runAction('main', inputs);
    expect(again.exitCode).toBe(1);
    const message = errorLine(again);
    expect(message).toContain(server.url);
    expect(message).toContain('POST /oauth/token');
    expect(message).toContain('HTTP 400');
    if (flavour === 'mastodon') expect(message).toContain('invalid_grant');
    expect(message).toContain('already used');
    expectNoLeaks(again, [token, app.clientSecret, code, verifier]);
  });

  it('exchanges a code without a verifier', async () => {
    const app = server.registerApp();
    const code = server.issueCode({ clientId: app.clientId, redirectUri: OOB });
    const run = await runAction('main', {
      ...base(),
      operation: 'exchange',
      'client-id': app.clientId,
      'client-secret': app.clientSecret,
      code,
    });
    expect(run.exitCode).toBe(0);
    expect(run.outputs.scope).toBe('read');
    expectNoLeaks(run, [run.outputs['access-token'], app.clientSecret, code]);
  });

  it('fails an exchange with another redirect-uri, naming the status', async () => {
    const app = server.registerApp({ redirectUris: [OOB, 'http://127.0.0.1:9/cb'] });
    const code = server.issueCode({ clientId: app.clientId, redirectUri: 'http://127.0.0.1:9/cb' });
    const run = await runAction('main', {
      ...base(),
      operation: 'exchange',
      'client-id': app.clientId,
      'client-secret': app.clientSecret,
      code,
    });
    expect(run.exitCode).toBe(1);
    const message = errorLine(run);
    expect(message).toContain('POST /oauth/token');
    // A registered URI that is not the code's: both call the code invalid.
    expect(message).toContain('HTTP 400 (invalid_grant)');
    const unregistered = await runAction('main', {
      ...base(),
      operation: 'exchange',
      'client-id': app.clientId,
      'client-secret': app.clientSecret,
      'redirect-uri': 'http://127.0.0.1:9/elsewhere',
      code,
    });
    expect(unregistered.exitCode).toBe(1);
    // GoToSocial answers an unregistered redirect URI with 403; Mastodon with invalid_grant.
    expect(errorLine(unregistered)).toContain(
      flavour === 'gotosocial' ? 'HTTP 403' : 'HTTP 400 (invalid_grant)',
    );
    expectNoLeaks(run, [app.clientSecret, code]);
    expectNoLeaks(unregistered, [app.clientSecret, code]);
  });

  it('gets an app token with client-credentials', async () => {
    const app = server.registerApp({ scopes: ['read', 'write'] });
    const before = Date.now();
    const run = await runAction('main', {
      ...base(),
      operation: 'client-credentials',
      'client-id': app.clientId,
      'client-secret': app.clientSecret,
      scope: 'read',
    });
    expect(run.exitCode).toBe(0);
    const token = run.outputs['access-token'] ?? '';
    expect(token).not.toBe('');
    if (flavour === 'gotosocial') {
      const expires = Date.parse(run.outputs['expires-at'] ?? '');
      expect(expires).toBeGreaterThanOrEqual(before + 7200_000 - 5000);
      expect(expires).toBeLessThanOrEqual(Date.now() + 7200_000 + 5000);
    } else {
      expect(run.outputs['expires-at']).toBe('');
    }
    expectNoLeaks(run, [token, app.clientSecret]);
  });

  it('validates a user token and an app token', async () => {
    const app = server.registerApp({ scopes: ['read'] });
    const user = server.issueToken({ clientId: app.clientId });
    const appToken = server.issueToken({ clientId: app.clientId, user: null });
    const [userRun, appRun] = await Promise.all([
      runAction('main', { ...base(), operation: 'validate', 'access-token': user }),
      runAction('main', { ...base(), operation: 'validate', 'access-token': appToken }),
    ]);
    expect(userRun.exitCode).toBe(0);
    expect(userRun.outputs.valid).toBe('true');
    expect(userRun.outputs.username).toBe('alice');
    expect(userRun.outputs['account-id']).not.toBe('');
    expect(userRun.summary).toContain('Valid');
    expectNoLeaks(userRun, [user]);
    expect(appRun.exitCode).toBe(0);
    expect(appRun.outputs.valid).toBe('true');
    // An app token has no account; Mastodon names the app, GoToSocial cannot.
    expect(appRun.outputs['account-id']).toBe('');
    expect(appRun.outputs.username).toBe(flavour === 'mastodon' ? 'fedi-token tests' : '');
    expectNoLeaks(appRun, [appToken]);
  });

  it('revokes with a form body; validating the revoked token fails or reports valid=false', async () => {
    const app = server.registerApp();
    const token = server.issueToken({ clientId: app.clientId });
    const run = await runAction('main', {
      ...base(),
      operation: 'revoke',
      'client-id': app.clientId,
      'client-secret': app.clientSecret,
      'access-token': token,
    });
    expect(run.exitCode).toBe(0);
    expect(server.isRevoked(token)).toBe(true);
    expectNoLeaks(run, [token, app.clientSecret]);

    const [failing, soft] = await Promise.all([
      runAction('main', { ...base(), operation: 'validate', 'access-token': token }),
      runAction('main', {
        ...base(),
        operation: 'validate',
        'access-token': token,
        'fail-on-invalid': 'false',
      }),
    ]);
    expect(failing.exitCode).toBe(1);
    expect(errorLine(failing)).toContain('not valid');
    expect(soft.exitCode).toBe(0);
    expect(soft.outputs.valid).toBe('false');
    expectNoLeaks(failing, [token]);
    expectNoLeaks(soft, [token]);
  });

  it('refresh: explains the server has no refresh tokens; refused before any request when detected', async () => {
    const app = server.registerApp();
    const refreshToken = 'not-a-real-refresh-token-0123';
    const inputs = {
      operation: 'refresh',
      'client-id': app.clientId,
      'client-secret': app.clientSecret,
      'refresh-token': refreshToken,
    };
    const given = await runAction('main', { ...base(), ...inputs });
    expect(given.exitCode).toBe(1);
    expect(errorLine(given)).toContain(
      `${server.url} POST /oauth/token answered HTTP 400 (unsupported_grant_type)`,
    );
    expect(errorLine(given)).toContain('issues no refresh tokens');
    expectNoLeaks(given, [refreshToken, app.clientSecret]);

    server.requests.length = 0;
    const detected = await runAction('main', { instance: server.url, ...inputs });
    expect(detected.exitCode).toBe(1);
    expect(errorLine(detected)).toMatch(
      new RegExp(`::error::${flavour}.* issues no refresh tokens`, 'i'),
    );
    expect(server.requests.filter((r) => r.path === '/oauth/token')).toEqual([]);
    expectNoLeaks(detected, [refreshToken, app.clientSecret]);
  });

  it('revoke-on-exit: post revokes what main obtained, using main’s state', async () => {
    const app = server.registerApp();
    const inputs = {
      ...base(),
      operation: 'client-credentials',
      'client-id': app.clientId,
      'client-secret': app.clientSecret,
      'revoke-on-exit': 'true',
      'export-env': 'FEDI_TOKEN',
    };
    const main = await runAction('main', inputs);
    expect(main.exitCode).toBe(0);
    const token = main.outputs['access-token'] ?? '';
    expect(main.env.FEDI_TOKEN).toBe(token);
    expect(Object.values(main.state)).toContain(token);
    expect(server.isRevoked(token)).toBe(false);
    const post = await runAction('post', inputs, { state: main.state });
    expect(post.exitCode).toBe(0);
    expect(post.stdout).not.toContain('::warning::');
    expect(server.isRevoked(token)).toBe(true);
    expectNoLeaks(main, [token, app.clientSecret]);
    expectNoLeaks(post, [token, app.clientSecret]);
  });
});

describe('revoke-on-exit edge cases', () => {
  let server: MastodonServer;
  beforeAll(async () => {
    server = await startMastodonServer({ flavour: 'gotosocial' });
  });
  afterAll(() => server.close());

  it('skips an expired token without a request, and warns (exit 0) when revoking fails', async () => {
    const app = server.registerApp();
    const token = server.issueToken({ clientId: app.clientId, user: null });
    const inputs = {
      instance: server.url,
      platform: 'mastodon',
      operation: 'client-credentials',
      'client-id': app.clientId,
      'client-secret': app.clientSecret,
      'revoke-on-exit': 'true',
    };
    const state = {
      'revoke-token': token,
      'revoke-platform': 'mastodon',
      'revoke-expires-at': new Date(Date.now() - 1000).toISOString(),
    };
    const before = server.requests.length;
    const expired = await runAction('post', inputs, { state });
    expect(expired.exitCode).toBe(0);
    expect(server.requests.length).toBe(before);
    expect(server.isRevoked(token)).toBe(false);

    server.inject({ method: 'POST', path: '/oauth/revoke', kind: 'status', status: 500, times: 5 });
    const failing = await runAction('post', inputs, {
      state: { ...state, 'revoke-expires-at': '' },
    });
    expect(failing.exitCode).toBe(0);
    expect(failing.stdout).toMatch(/::warning::Could not revoke.*POST \/oauth\/revoke.*HTTP 500/);
    expect(server.isRevoked(token)).toBe(false);
    expectNoLeaks(expired, [token, app.clientSecret]);
    expectNoLeaks(failing, [token, app.clientSecret]);
  });
});

describe('platform detection', () => {
  it.each(['mastodon', 'gotosocial', 'pleroma'] as const)(
    'auto detects %s with at most two requests; a given platform costs none',
    async (flavour) => {
      const server = await startMastodonServer({ flavour });
      try {
        const token = server.issueToken();
        const auto = await runAction('main', {
          instance: server.url,
          operation: 'validate',
          'access-token': token,
        });
        expect(auto.exitCode).toBe(0);
        expect(auto.outputs.platform).toBe('mastodon');
        expect(auto.outputs.software).toContain(flavour);
        const detection = server.requests.filter(
          (r) => r.path.includes('nodeinfo') || r.path === '/api/v1/instance',
        );
        expect(detection.length).toBeGreaterThan(0);
        expect(detection.length).toBeLessThanOrEqual(2);
        server.requests.length = 0;
        const given = await runAction('main', {
          instance: server.url,
          platform: 'mastodon',
          operation: 'validate',
          'access-token': token,
        });
        expect(given.exitCode).toBe(0);
        expect(server.requests.map((r) => r.path)).toEqual(['/api/v1/accounts/verify_credentials']);
        expectNoLeaks(auto, [token]);
        expectNoLeaks(given, [token]);
      } finally {
        await server.close();
      }
    },
  );
});

describe('pleroma', () => {
  let server: MastodonServer;
  beforeAll(async () => {
    server = await startMastodonServer({ flavour: 'pleroma', rotateRefreshTokens: true });
  });
  afterAll(() => server.close());

  it('exchange returns a refresh token and an expiry; refresh rotates and revokes the old token', async () => {
    const app = server.registerApp({ scopes: ['read'] });
    const code = server.issueCode({ clientId: app.clientId, redirectUri: OOB });
    const common = {
      instance: server.url,
      platform: 'mastodon',
      'client-id': app.clientId,
      'client-secret': app.clientSecret,
    };
    const run = await runAction('main', { ...common, operation: 'exchange', code });
    expect(run.exitCode).toBe(0);
    const access = run.outputs['access-token'] ?? '';
    const refresh = run.outputs['refresh-token'] ?? '';
    expect(refresh).not.toBe('');
    expect(run.masks).toContain(refresh);
    expect(new Date(run.outputs['expires-at'] ?? '').getTime()).toBeGreaterThan(
      Date.now() + 50 * 365 * 86400_000,
    );
    const refreshed = await runAction('main', {
      ...common,
      operation: 'refresh',
      'refresh-token': refresh,
    });
    expect(refreshed.exitCode).toBe(0);
    const next = refreshed.outputs['access-token'] ?? '';
    expect(next).not.toBe(access);
    expect(refreshed.outputs['refresh-token']).not.toBe(refresh);
    expect(server.isRevoked(access)).toBe(true);
    expectNoLeaks(run, [access, refresh, code, app.clientSecret]);
    expectNoLeaks(refreshed, [
      access,
      refresh,
      next,
      refreshed.outputs['refresh-token'],
      app.clientSecret,
    ]);
  });

  it('validates a user token, and reports a revoked one as not valid', async () => {
    const token = server.issueToken();
    const ok = await runAction('main', {
      instance: server.url,
      platform: 'mastodon',
      operation: 'validate',
      'access-token': token,
    });
    expect(ok.outputs.valid).toBe('true');
    expect(ok.outputs['account-id']).toBe('AqbkKnCrT2lJ2hJ3aK');
    const revoked = server.issueToken();
    const app = server.registerApp();
    await runAction('main', {
      instance: server.url,
      platform: 'mastodon',
      operation: 'revoke',
      'client-id': app.clientId,
      'client-secret': app.clientSecret,
      'access-token': revoked,
    });
    expect(server.isRevoked(revoked)).toBe(true);
    const bad = await runAction('main', {
      instance: server.url,
      platform: 'mastodon',
      operation: 'validate',
      'access-token': revoked,
      'fail-on-invalid': 'false',
    });
    expect(bad.exitCode).toBe(0);
    expect(bad.outputs.valid).toBe('false');
    expectNoLeaks(ok, [token]);
    expectNoLeaks(bad, [revoked]);
  });
});
