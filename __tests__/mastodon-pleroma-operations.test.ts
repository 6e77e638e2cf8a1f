/**
 * The action's answers where Mastodon, Pleroma and Akkoma behave as their source says and the
 * obvious reading of an answer would be wrong (issue 10): run as the runner runs the bundle,
 * against the loopback servers, every log scanned for the secrets involved.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { findLeaks, runAction, type ActionRun } from './harness/action.ts';
import { startGitHub } from './servers/github.ts';
import { OOB, startMastodonServer, type MastodonServer } from './servers/mastodon.ts';

function expectNoLeaks(run: ActionRun, secrets: (string | undefined)[]): void {
  expect(
    findLeaks(
      run,
      secrets.filter((s): s is string => !!s),
    ),
  ).toEqual([]);
}

const errorLine = (run: ActionRun): string =>
  run.stdout.split('\n').find((line) => line.startsWith('::error::')) ?? '';
const warnings = (run: ActionRun): string[] =>
  run.stdout.split('\n').filter((line) => line.startsWith('::warning::'));

describe('mastodon: validate tells app tokens, narrow tokens and refused accounts apart', () => {
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

  const validate = (token: string, extra: Record<string, string> = {}) =>
    runAction('main', {
      instance: server.url,
      platform: 'mastodon',
      operation: 'validate',
      'access-token': token,
      ...extra,
    });

  it('a client-credentials token with only write: an app token, its scope write (403 before 422)', async () => {
    const app = server.registerApp({ name: 'Publisher', scopes: ['read', 'write'] });
    const token = server.issueToken({ clientId: app.clientId, user: null, scope: 'write' });
    const run = await validate(token);
    expect(run.exitCode).toBe(0);
    expect(run.outputs.valid).toBe('true');
    expect(run.outputs.username).toBe('Publisher');
    expect(run.outputs['account-id']).toBe('');
    // The token's own scope, not the app's registered 'read write'.
    expect(run.outputs.scope).toBe('write');
    expect(run.summary).toContain('app Publisher');
    expect(run.stdout).toContain('The access token is valid for app Publisher');
    expectNoLeaks(run, [token]);
  });

  it('an app token that may read: scope from the token, not apps/verify_credentials', async () => {
    const app = server.registerApp({ name: 'Reader', scopes: ['read', 'write'] });
    const token = server.issueToken({ clientId: app.clientId, user: null, scope: 'read' });
    const run = await validate(token);
    expect(run.outputs.valid).toBe('true');
    expect(run.outputs.username).toBe('Reader');
    expect(run.outputs.scope).toBe('read');
    expectNoLeaks(run, [token]);
  });

  it('a user token without read:accounts: valid, a user we cannot name, its own scope', async () => {
    const app = server.registerApp({ scopes: ['read', 'write'] });
    const token = server.issueToken({ clientId: app.clientId, scope: 'write:statuses' });
    const run = await validate(token);
    expect(run.outputs.valid).toBe('true');
    expect(run.outputs.username).toBe('');
    expect(run.outputs.scope).toBe('write:statuses');
    expect(run.summary).not.toContain('app ');
    expectNoLeaks(run, [token]);
  });

  it('a user token that reads its account publishes no scope it cannot know', async () => {
    const app = server.registerApp({ scopes: ['read', 'write'] });
    const token = server.issueToken({ clientId: app.clientId, scope: 'read' });
    const run = await validate(token);
    expect(run.outputs.username).toBe('alice');
    expect(run.outputs.scope).toBe('');
    expect(server.requests.at(-1)?.path).toBe('/api/v1/accounts/verify_credentials');
    expectNoLeaks(run, [token]);
  });

  it.each([
    ['suspended', 'Your login is currently disabled'],
    ['unconfirmed', 'Your login is missing a confirmed e-mail address'],
    ['disabled', 'Your login is currently disabled'],
  ] as const)('a %s account is not valid', async (state, message) => {
    const token = server.issueToken({ user: 'bob' });
    server.setUserState('bob', state);
    try {
      const [soft, failing] = await Promise.all([
        validate(token, { 'fail-on-invalid': 'false' }),
        validate(token),
      ]);
      expect(soft.exitCode).toBe(0);
      expect(soft.outputs.valid).toBe('false');
      expect(soft.stdout).toContain(message);
      expect(failing.exitCode).toBe(1);
      expect(errorLine(failing)).toContain(`not valid: the server refuses its account: ${message}`);
      expectNoLeaks(soft, [token]);
      expectNoLeaks(failing, [token]);
    } finally {
      server.setUserState('bob', undefined);
    }
  });

  it('a revoked token says so in the server’s words', async () => {
    const app = server.registerApp();
    const token = server.issueToken({ clientId: app.clientId });
    await runAction('main', {
      instance: server.url,
      platform: 'mastodon',
      operation: 'revoke',
      'client-id': app.clientId,
      'client-secret': app.clientSecret,
      'access-token': token,
    });
    const run = await validate(token, { 'fail-on-invalid': 'false' });
    expect(run.outputs.valid).toBe('false');
    expect(run.stdout).toContain('The access token was revoked');
    expectNoLeaks(run, [token, app.clientSecret]);
  });

  it('revoke with a wrong client secret points at client-id and client-secret', async () => {
    const app = server.registerApp();
    const token = server.issueToken({ clientId: app.clientId });
    const run = await runAction('main', {
      instance: server.url,
      platform: 'mastodon',
      operation: 'revoke',
      'client-id': app.clientId,
      'client-secret': 'not-the-secret-0000',
      'access-token': token,
    });
    expect(run.exitCode).toBe(1);
    const message = errorLine(run);
    expect(message).toContain('POST /oauth/revoke answered HTTP 403 (unauthorized_client)');
    expect(message).toContain("Check 'client-id' and 'client-secret'");
    expect(server.isRevoked(token)).toBe(false);
    expectNoLeaks(run, [token, 'not-the-secret-0000']);
  });
});

describe('mastodon with DISALLOW_UNAUTHENTICATED_API_ACCESS', () => {
  let server: MastodonServer;
  beforeAll(async () => {
    server = await startMastodonServer({ flavour: 'mastodon', disallowUnauthenticated: true });
  });
  afterAll(() => server.close());

  it('an app token is valid (not "revoked"); an unknown token is not', async () => {
    const app = server.registerApp({ scopes: ['read'] });
    const token = server.issueToken({ clientId: app.clientId, user: null });
    const common = { instance: server.url, platform: 'mastodon', operation: 'validate' };
    const [appRun, unknownRun] = await Promise.all([
      runAction('main', { ...common, 'access-token': token }),
      runAction('main', {
        ...common,
        'access-token': 'unknown-token-00000000',
        'fail-on-invalid': 'false',
      }),
    ]);
    expect(appRun.exitCode).toBe(0);
    expect(appRun.outputs.valid).toBe('true');
    expect(appRun.outputs.scope).toBe('read');
    expect(appRun.outputs['account-id']).toBe('');
    expect(unknownRun.outputs.valid).toBe('false');
    expectNoLeaks(appRun, [token]);
  });
});

describe('mastodon hands back a live token it issued before', () => {
  let server: MastodonServer;
  beforeAll(async () => {
    server = await startMastodonServer({ flavour: 'mastodon' });
  });
  afterAll(() => server.close());

  it('exchange warns, and revoke-on-exit leaves the shared token alone', async () => {
    const app = server.registerApp({ scopes: ['read'] });
    const earlier = server.issueToken({
      clientId: app.clientId,
      scope: 'read',
      createdAt: new Date(Date.now() - 3_600_000),
    });
    const code = server.issueCode({ clientId: app.clientId, redirectUri: OOB, scope: 'read' });
    const inputs = {
      instance: server.url,
      platform: 'mastodon',
      operation: 'exchange',
      'client-id': app.clientId,
      'client-secret': app.clientSecret,
      code,
      'revoke-on-exit': 'true',
    };
    const main = await runAction('main', inputs);
    expect(main.exitCode).toBe(0);
    expect(main.outputs['access-token']).toBe(earlier);
    expect(warnings(main).join('\n')).toMatch(/issued at .* before this request/);
    expect(warnings(main).join('\n')).toContain(
      'revoke-on-exit: the post step will not revoke this token',
    );
    expect(Object.values(main.state)).not.toContain(earlier);
    const before = server.requests.length;
    const post = await runAction('post', inputs, { state: main.state });
    expect(post.exitCode).toBe(0);
    expect(server.requests.length).toBe(before);
    expect(server.isRevoked(earlier)).toBe(false);
    expectNoLeaks(main, [earlier, code, app.clientSecret]);
  });

  it('a fresh token is revoked on exit as before', async () => {
    const app = server.registerApp({ scopes: ['read'] });
    const code = server.issueCode({ clientId: app.clientId, redirectUri: OOB });
    const inputs = {
      instance: server.url,
      platform: 'mastodon',
      operation: 'exchange',
      'client-id': app.clientId,
      'client-secret': app.clientSecret,
      code,
      'revoke-on-exit': 'true',
    };
    const main = await runAction('main', inputs);
    expect(warnings(main)).toEqual([]);
    const token = main.outputs['access-token'] ?? '';
    const post = await runAction('post', inputs, { state: main.state });
    expect(post.exitCode).toBe(0);
    expect(server.isRevoked(token)).toBe(true);
    expectNoLeaks(main, [token, code, app.clientSecret]);
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

  /** An authorization exchanged by hand: its access and refresh tokens. */
  async function authorized(app: { clientId: string; clientSecret: string }) {
    const code = server.issueCode({ clientId: app.clientId, redirectUri: OOB });
    const res = await fetch(`${server.url}/oauth/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        grant_type: 'authorization_code',
        code,
        client_id: app.clientId,
        client_secret: app.clientSecret,
      }),
    });
    const data = (await res.json()) as { access_token: string; refresh_token: string };
    return { access: data.access_token, refresh: data.refresh_token };
  }

  it('refresh + revoke-on-exit is refused before any request once detected', async () => {
    const app = server.registerApp();
    const { refresh } = await authorized(app);
    const before = server.requests.length;
    const run = await runAction('main', {
      instance: server.url,
      operation: 'refresh',
      'client-id': app.clientId,
      'client-secret': app.clientSecret,
      'refresh-token': refresh,
      'revoke-on-exit': 'true',
    });
    expect(run.exitCode).toBe(1);
    expect(errorLine(run)).toContain(
      `Input 'revoke-on-exit': cannot be used with 'refresh' on ${software}`,
    );
    expect(errorLine(run)).toContain('deletes its refresh token too');
    const sent = server.requests.slice(before).map((r) => r.path);
    expect(sent).not.toContain('/oauth/token');
    expectNoLeaks(run, [refresh, app.clientSecret]);
  });

  it('refresh + revoke-on-exit + write-back is refused before the secret is touched', async () => {
    const app = server.registerApp();
    const { refresh } = await authorized(app);
    const githubToken = `github_pat_${'Q1w2E3r4'.repeat(6)}`;
    const gh = await startGitHub({ token: githubToken, readOnlyTokens: [] });
    try {
      const run = await runAction(
        'main',
        {
          instance: server.url,
          operation: 'refresh',
          'client-id': app.clientId,
          'client-secret': app.clientSecret,
          'refresh-token': refresh,
          'revoke-on-exit': 'true',
          'secret-name': 'FEDI_REFRESH_TOKEN',
          'github-token': githubToken,
        },
        { env: { GITHUB_API_URL: gh.url, GITHUB_REPOSITORY: gh.repository } },
      );
      expect(run.exitCode).toBe(1);
      expect(errorLine(run)).toContain("Input 'revoke-on-exit'");
      expect(gh.writes).toEqual([]);
      expectNoLeaks(run, [refresh, app.clientSecret, githubToken]);
    } finally {
      await gh.close();
    }
  });

  it('refresh + revoke-on-exit with platform given: the post step keeps the refresh token alive', async () => {
    const app = server.registerApp();
    const { refresh } = await authorized(app);
    const inputs = {
      instance: server.url,
      platform: 'mastodon',
      operation: 'refresh',
      'client-id': app.clientId,
      'client-secret': app.clientSecret,
      'refresh-token': refresh,
      'revoke-on-exit': 'true',
    };
    const main = await runAction('main', inputs);
    expect(main.exitCode).toBe(0);
    const access = main.outputs['access-token'] ?? '';
    expect(warnings(main).join('\n')).toContain(
      'revoke-on-exit: the post step will not revoke this token: revoking an access token deletes its refresh token too on Pleroma and Akkoma',
    );
    const post = await runAction('post', inputs, { state: main.state });
    expect(post.exitCode).toBe(0);
    expect(server.isRevoked(access)).toBe(false);
    // The next scheduled run still refreshes.
    const next = await runAction('main', { ...inputs, 'revoke-on-exit': 'false' });
    expect(next.exitCode).toBe(0);
    expectNoLeaks(main, [refresh, access, app.clientSecret]);
    expectNoLeaks(next, [refresh, app.clientSecret, next.outputs['access-token']]);
  });

  it('client-credentials warns that the token got more than was asked, and publishes what it got', async () => {
    const app = server.registerApp({ scopes: ['read', 'write'] });
    const run = await runAction('main', {
      instance: server.url,
      platform: 'mastodon',
      operation: 'client-credentials',
      'client-id': app.clientId,
      'client-secret': app.clientSecret,
      scope: 'read',
    });
    expect(run.exitCode).toBe(0);
    expect(run.outputs.scope).toBe('read write');
    expect(warnings(run).join('\n')).toContain(
      "granted 'read write', more than the 'read' asked for (also write)",
    );
    expectNoLeaks(run, [app.clientSecret, run.outputs['access-token']]);
  });

  it('validate names an app token as an app, and calls an unknown one not valid', async () => {
    const app = server.registerApp({ name: 'Gallery', scopes: ['read'] });
    const token = server.issueToken({ clientId: app.clientId, user: null });
    const common = { instance: server.url, platform: 'mastodon', operation: 'validate' };
    const [appRun, unknown] = await Promise.all([
      runAction('main', { ...common, 'access-token': token }),
      runAction('main', {
        ...common,
        'access-token': 'unknown-token-00000000',
        'fail-on-invalid': 'false',
      }),
    ]);
    expect(appRun.outputs.valid).toBe('true');
    expect(appRun.outputs.username).toBe('Gallery');
    expect(appRun.summary).toContain('app Gallery');
    expect(appRun.outputs.scope).toBe('');
    expect(unknown.outputs.valid).toBe('false');
    expectNoLeaks(appRun, [token]);
  });

  it('validate: a user token without read:accounts is valid', async () => {
    const app = server.registerApp({ scopes: ['read', 'write'] });
    const token = server.issueToken({ clientId: app.clientId, scope: 'write' });
    const run = await runAction('main', {
      instance: server.url,
      platform: 'mastodon',
      operation: 'validate',
      'access-token': token,
    });
    expect(run.outputs.valid).toBe('true');
    expect(run.outputs.username).toBe('');
    expectNoLeaks(run, [token]);
  });

  it('a malformed code: HTTP 500 explained, nothing retried', async () => {
    const app = server.registerApp();
    const before = server.requests.length;
    const run = await runAction('main', {
      instance: server.url,
      platform: 'mastodon',
      operation: 'exchange',
      'client-id': app.clientId,
      'client-secret': app.clientSecret,
      code: 'pasted+with/the=wrong-alphabet',
    });
    expect(run.exitCode).toBe(1);
    expect(errorLine(run)).toContain('POST /oauth/token answered HTTP 500');
    expect(errorLine(run)).toContain('a code that cannot be one of theirs');
    const sent = server.requests.slice(before).filter((r) => r.path === '/oauth/token');
    expect(sent).toHaveLength(1);
    expectNoLeaks(run, [app.clientSecret, 'pasted+with/the=wrong-alphabet']);
  });

  it(
    software === 'akkoma'
      ? 'a used code: Akkoma answers with the newest live token, which is reported and kept on exit'
      : 'a used code is refused',
    async () => {
      const app = server.registerApp();
      const inUse = server.issueToken({
        clientId: app.clientId,
        createdAt: new Date(Date.now() - 86_400_000),
      });
      const code = server.issueCode({ clientId: app.clientId, redirectUri: OOB, used: true });
      const inputs = {
        instance: server.url,
        platform: 'mastodon',
        operation: 'exchange',
        'client-id': app.clientId,
        'client-secret': app.clientSecret,
        code,
        'revoke-on-exit': 'true',
      };
      const main = await runAction('main', inputs);
      if (software === 'pleroma') {
        expect(main.exitCode).toBe(1);
        expect(errorLine(main)).toContain('HTTP 400: Invalid credentials');
        expectNoLeaks(main, [inUse, code, app.clientSecret]);
        return;
      }
      expect(main.exitCode).toBe(0);
      expect(main.outputs['access-token']).toBe(inUse);
      expect(warnings(main).join('\n')).toMatch(
        /issued at .*before this request.*Akkoma answers an already used code/,
      );
      const post = await runAction('post', inputs, { state: main.state });
      expect(post.exitCode).toBe(0);
      expect(server.isRevoked(inUse)).toBe(false);
      expectNoLeaks(main, [inUse, code, app.clientSecret]);
    },
  );
});
