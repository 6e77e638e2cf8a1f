/**
 * Pixelfed through the bundles, as the runner runs them, against the loopback Pixelfed server
 * (servers/pixelfed.ts): detection, exchange, validate, refresh with write-back to a repository
 * secret, what Pixelfed cannot do refused up front, the snapshot, and the CLI login. Every run's
 * log is scanned for the secrets involved.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from '@jest/globals';
import { findLeaks, runAction, type ActionRun } from './harness/action.ts';
import { answerAuthorize, startCli } from './harness/cli.ts';
import { startGitHub, type GitHubServer } from './servers/github.ts';
import { OOB, PixelfedServer } from './servers/pixelfed.ts';

const s256 = (v: string) => createHash('sha256').update(v).digest('base64url');
const GH_TOKEN = `github_pat_${'P1x3lf3d'.repeat(6)}`;
const SECRET = 'FEDI_REFRESH_TOKEN';
const DAY_MS = 86_400_000;

let server: PixelfedServer;
const secrets: string[] = [GH_TOKEN];

beforeAll(async () => {
  server = await PixelfedServer.start({ posts: 300 });
});
afterAll(() => server.close());

/** The main step; every secret it outputs joins the ones every later log is scanned for. */
async function main(
  inputs: Record<string, string>,
  env?: Record<string, string>,
): Promise<ActionRun> {
  const run = await runAction('main', { instance: server.url, ...inputs }, { env });
  for (const name of ['access-token', 'refresh-token']) {
    const value = run.outputs[name];
    if (value) secrets.push(value);
  }
  expect(findLeaks(run, secrets)).toEqual([]);
  return run;
}

function errorLine(run: ActionRun): string {
  return run.stdout.split('\n').find((line) => line.startsWith('::error::')) ?? '';
}

function app(redirectUris = [OOB]) {
  const registered = server.registerApp({ redirectUris });
  secrets.push(registered.clientSecret);
  return { 'client-id': registered.clientId, 'client-secret': registered.clientSecret };
}

const requestsTo = (path: string, since = 0) =>
  server.requests.slice(since).filter((r) => r.path === path);

describe('tokens', () => {
  it('platform auto: detected from nodeinfo; a PKCE code exchanged for expiring tokens; the code works once', async () => {
    const client = app();
    const verifier = randomBytes(32).toString('base64url');
    const code = server.issueCode({
      clientId: client['client-id'],
      redirectUri: OOB,
      codeChallenge: s256(verifier),
      scopes: ['read', 'write'],
    });
    secrets.push(code, verifier);
    const inputs = { ...client, operation: 'exchange', code, 'code-verifier': verifier };
    const run = await main(inputs);
    expect(run.exitCode).toBe(0);
    expect(run.stdout).toMatch(/Detected mastodon \(pixelfed\)/);
    expect(run.outputs.platform).toBe('mastodon');
    expect(run.outputs.software).toBe('pixelfed 0.12.6');
    expect(run.outputs['access-token']?.split('.')).toHaveLength(3);
    expect(run.outputs['refresh-token']).toMatch(/^def50200[0-9a-f]{600}$/);
    expect(run.masks).toEqual(
      expect.arrayContaining([run.outputs['access-token'], run.outputs['refresh-token']]),
    );
    // Passport's token response names no scope: the token's own claims do.
    expect(run.outputs.scope).toBe('read write');
    const expires = Date.parse(run.outputs['expires-at'] ?? '');
    expect(Math.abs(expires - (Date.now() + 365 * DAY_MS))).toBeLessThan(60_000);
    expect(run.outputs.username).toBe('alice');
    expect(run.outputs['account-id']).toBe(server.alice.id);

    const again = await main(inputs);
    expect(again.exitCode).toBe(1);
    // Pixelfed renders league's exception as HTTP 500 with its message only.
    expect(errorLine(again)).toContain(
      'POST /oauth/token answered HTTP 500: The request is missing',
    );
    expect(errorLine(again)).toMatch(/already used.*get a new code/);
  });

  it('a verifier for a code asked without PKCE is refused by the server (no downgrade)', async () => {
    const client = app();
    const code = server.issueCode({ clientId: client['client-id'], redirectUri: OOB });
    secrets.push(code);
    const verifier = randomBytes(32).toString('base64url');
    const run = await main({ ...client, operation: 'exchange', code, 'code-verifier': verifier });
    expect(run.exitCode).toBe(1);
    expect(errorLine(run)).toContain('HTTP 500');
    // The code was not spent: without the verifier it still works.
    const plain = await main({ ...client, operation: 'exchange', code });
    expect(plain.exitCode).toBe(0);
  });

  it('validate: a live token names its owner, scopes and expiry; refused tokens are not valid', async () => {
    const { accessToken } = server.issueToken({ scopes: ['read'] });
    secrets.push(accessToken);
    const ok = await main({ operation: 'validate', 'access-token': accessToken });
    expect(ok.exitCode).toBe(0);
    expect(ok.outputs).toMatchObject({
      valid: 'true',
      username: 'alice',
      'account-id': server.alice.id,
      scope: 'read',
    });
    expect(Date.parse(ok.outputs['expires-at'] ?? '')).toBeGreaterThan(Date.now() + 364 * DAY_MS);

    // A token Passport does not know: Pixelfed's 500 "Unauthenticated.", not a server failure.
    const unknown = await main({
      operation: 'validate',
      platform: 'mastodon',
      'access-token': `${accessToken.slice(0, -8)}AAAAAAAA`,
      'fail-on-invalid': 'false',
    });
    expect(unknown.exitCode).toBe(0);
    expect(unknown.outputs.valid).toBe('false');
    expect(unknown.stdout).toMatch(/revoked or unknown/);
  });

  it('validate: a token without read is valid but nameless; a suspended account is not valid', async () => {
    const narrow = server.issueToken({ scopes: ['write'] }).accessToken;
    const wide = server.issueToken({ scopes: ['read'], user: 'bob' }).accessToken;
    secrets.push(narrow, wide);
    const run = await main({ operation: 'validate', 'access-token': narrow });
    expect(run.outputs).toMatchObject({ valid: 'true', username: '', scope: 'write' });

    const bob = server.users[1];
    if (!bob) throw new Error('no second user');
    bob.status = 'suspended';
    try {
      const suspended = await main({
        operation: 'validate',
        'access-token': wide,
        'fail-on-invalid': 'false',
      });
      expect(suspended.outputs.valid).toBe('false');
      expect(suspended.stdout).toMatch(/suspended, disabled or being deleted/);
    } finally {
      bob.status = null;
    }
  });

  it('client-credentials, revoke and revoke-on-exit are refused once detected, before any token request', async () => {
    const client = app();
    const { accessToken } = server.issueToken({ clientId: client['client-id'] });
    secrets.push(accessToken);
    const before = server.requests.length;
    const cc = await main({ ...client, operation: 'client-credentials' });
    expect(cc.exitCode).toBe(1);
    expect(errorLine(cc)).toMatch(/accepts only user tokens/);
    const revoke = await main({ ...client, operation: 'revoke', 'access-token': accessToken });
    expect(revoke.exitCode).toBe(1);
    expect(errorLine(revoke)).toMatch(/no token revocation endpoint.*Settings → Applications/);
    const onExit = await main({
      ...client,
      operation: 'exchange',
      code: 'unused-code-value',
      'revoke-on-exit': 'true',
    });
    expect(onExit.exitCode).toBe(1);
    expect(errorLine(onExit)).toMatch(/Input 'revoke-on-exit'/);
    expect(requestsTo('/oauth/token', before)).toEqual([]);
    expect(requestsTo('/oauth/revoke', before)).toEqual([]);

    // Without detection the server's own answer is explained.
    const direct = await main({
      ...client,
      platform: 'mastodon',
      operation: 'revoke',
      'access-token': accessToken,
    });
    expect(direct.exitCode).toBe(1);
    expect(errorLine(direct)).toMatch(/HTTP 404.*This server has no \/oauth\/revoke/);
    expect(server.isRevoked(accessToken)).toBe(false);
  });
});

describe('refresh with write-back', () => {
  let gh: GitHubServer;
  beforeEach(async () => {
    gh = await startGitHub({ token: GH_TOKEN });
  });
  afterEach(() => gh.close());

  const env = () => ({ GITHUB_API_URL: gh.url, GITHUB_REPOSITORY: gh.repository });
  const writeBack = (refreshToken: string) => ({
    operation: 'refresh',
    'refresh-token': refreshToken,
    'secret-name': SECRET,
    'github-token': GH_TOKEN,
  });

  it('stores the rotated refresh token; the old pair stops working; the stored one refreshes again', async () => {
    // An app registered by the CLI (loopback and OOB): the refresh sends no redirect_uri to check.
    const client = app(['http://127.0.0.1:8123/callback']);
    const { accessToken, refreshToken } = server.issueToken({ clientId: client['client-id'] });
    secrets.push(accessToken, refreshToken);

    const run = await main({ ...client, ...writeBack(refreshToken) }, env());
    expect(run.exitCode).toBe(0);
    expect(run.stdout).toMatch(/Detected mastodon \(pixelfed\)/);
    const rotated = run.outputs['refresh-token'] ?? '';
    expect(rotated).toMatch(/^def50200/);
    expect(rotated).not.toBe(refreshToken);
    expect(run.outputs['access-token']).not.toBe(accessToken);
    expect(run.outputs.scope).toBe('read write follow');
    expect(Date.parse(run.outputs['expires-at'] ?? '')).toBeGreaterThan(Date.now() + 364 * DAY_MS);
    expect(run.stdout).toMatch(/Stored the rotated refresh token in secret FEDI_REFRESH_TOKEN/);
    expect(gh.writes.map(({ value, status }) => ({ value, status }))).toEqual([
      { value: refreshToken, status: 201 },
      { value: rotated, status: 204 },
    ]);
    expect(server.isRevoked(accessToken)).toBe(true);

    // A spent refresh token: Pixelfed's 500 carries league's message, read as invalid_grant.
    const replay = await main({ ...client, operation: 'refresh', 'refresh-token': refreshToken });
    expect(replay.exitCode).toBe(1);
    expect(errorLine(replay)).toContain('HTTP 500: The refresh token is invalid.');
    expect(errorLine(replay)).toMatch(/expired, revoked or was already rotated; authorize again/);
    expect(requestsTo('/oauth/token').filter((r) => r.status === 500).length).toBeGreaterThan(0);

    const next = await main({ ...client, ...writeBack(gh.secrets.get(SECRET) ?? '') }, env());
    expect(next.exitCode).toBe(0);
    expect(gh.secrets.get(SECRET)).toBe(next.outputs['refresh-token']);
  });

  it('a wrong client secret is the server’s invalid_client, and nothing is rotated', async () => {
    const client = app();
    const { refreshToken } = server.issueToken({ clientId: client['client-id'] });
    secrets.push(refreshToken);
    const run = await main(
      { ...client, 'client-secret': 'not-the-secret-0000', ...writeBack(refreshToken) },
      env(),
    );
    expect(run.exitCode).toBe(1);
    expect(errorLine(run)).toMatch(
      /HTTP 500: Client authentication failed.*client-id.*client-secret/,
    );
    expect(gh.writes.map((w) => w.value)).toEqual([refreshToken]);
    const still = await main({ ...client, operation: 'refresh', 'refresh-token': refreshToken });
    expect(still.exitCode).toBe(0);
  });
});

describe('snapshot', () => {
  let cwd: string;
  beforeEach(() => {
    cwd = mkdtempSync(join(tmpdir(), 'pixelfed-snapshot-'));
  });
  afterEach(() => rmSync(cwd, { recursive: true, force: true }));

  async function snapshot(inputs: Record<string, string>, token: string): Promise<ActionRun> {
    const run = await runAction(
      'snapshot',
      { instance: server.url, 'access-token': token, path: 'photos.json', ...inputs },
      { cwd },
    );
    expect(findLeaks(run, [token])).toEqual([]);
    return run;
  }
  const saved = () =>
    JSON.parse(readFileSync(join(cwd, 'photos.json'), 'utf8')) as {
      id: string;
      visibility: string;
    }[];

  it('detected; 40 a page, no Link, through short pages; public only; then nothing new is one request', async () => {
    const { accessToken } = server.issueToken({ scopes: ['read'] });
    const since = server.requests.length;
    const run = await snapshot({ count: '1000' }, accessToken);
    expect(run.exitCode).toBe(0);
    const expected = server.listed().filter((post) => post.scope === 'public');
    expect(saved().map((item) => item.id)).toEqual(expected.map((post) => post.id));
    expect(run.outputs.count).toBe(String(expected.length));
    const pages = requestsTo(`/api/v1/accounts/${server.alice.id}/statuses`, since);
    // The walk as Pixelfed pages it: 40 rows of the query a page, the posts it cannot load
    // dropped after the query, the next page below the lowest post shown, until an empty page.
    const rows = server.posts
      .filter(
        (post) =>
          post.inReplyToId === null &&
          post.reblogOfId === null &&
          ['photo', 'photo:album', 'video', 'share', 'reply'].includes(post.type) &&
          post.scope !== 'direct',
      )
      .reverse();
    let cursor: bigint | undefined;
    let requests = 0;
    for (;;) {
      requests++;
      const page = rows.filter((post) => cursor === undefined || BigInt(post.id) < cursor);
      const shown = page.slice(0, 40).filter((post) => !post.unloadable);
      const last = shown[shown.length - 1];
      if (!last) break;
      cursor = BigInt(last.id);
    }
    expect(pages).toHaveLength(requests);
    expect(pages.some((page) => page.query.has('max_id'))).toBe(true);
    for (const page of pages) {
      expect([...page.query.keys()].sort()).toEqual(
        page.query.has('max_id') ? ['limit', 'max_id'] : ['limit'],
      );
      expect(page.query.get('limit')).toBe('40');
    }

    const before = server.requests.length;
    const again = await snapshot({ count: '1000' }, accessToken);
    expect(again.exitCode).toBe(0);
    expect(again.outputs.changed).toBe('false');
    expect(server.requests.length - before).toBe(1);

    server.addPosts(12);
    const more = await snapshot({ count: '1000' }, accessToken);
    expect(more.outputs.changed).toBe('true');
    const now = server.listed().filter((post) => post.scope === 'public');
    expect(saved().map((item) => item.id)).toEqual(now.map((post) => post.id));
  });

  it('an account by name goes through Pixelfed’s own username lookup; an unknown name is an error', async () => {
    const { accessToken } = server.issueToken({ scopes: ['read'], user: 'bob' });
    const since = server.requests.length;
    const run = await snapshot(
      { account: '@alice', count: '5', 'only-media': 'true' },
      accessToken,
    );
    expect(run.exitCode).toBe(0);
    expect(requestsTo('/api/v1.1/accounts/username/alice', since)).toHaveLength(1);
    expect(requestsTo('/api/v1/accounts/lookup', since)).toEqual([]);
    expect(saved().map((item) => item.id)).toEqual(
      server
        .listed({ onlyMedia: true })
        .filter((post) => post.scope === 'public')
        .slice(0, 5)
        .map((post) => post.id),
    );

    const missing = await snapshot({ account: 'nobody', mode: 'full' }, accessToken);
    expect(missing.exitCode).toBe(1);
    expect(errorLine(missing)).toMatch(/no account named nobody/);
  });
});

describe('CLI login (bundle)', () => {
  it('detects Pixelfed, registers with the loopback redirect, and prints a refresh token that works', async () => {
    const cli = startCli(['login', server.url]);
    const url = new URL(await cli.waitForUrl());
    expect(cli.stderr).toMatch(/Detected pixelfed \(mastodon\)/);
    expect(url.searchParams.get('redirect_uri')).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/callback$/);
    expect(url.searchParams.get('scope')).toBe('read');
    expect((await answerAuthorize(url.href)).status).toBe(200);
    const exit = await cli.exited;
    expect(exit.code).toBe(0);
    const values = Object.fromEntries(
      [...exit.stdout.matchAll(/^([A-Z_]+)=(\S+)$/gm)].map((m) => [m[1], m[2]]),
    );
    expect(Object.keys(values)).toEqual([
      'FEDI_TOKEN',
      'FEDI_REFRESH_TOKEN',
      'FEDI_CLIENT_ID',
      'FEDI_CLIENT_SECRET',
    ]);
    expect(exit.stderr).toMatch(/Logged in as @alice/);
    expect(exit.stderr).not.toContain(values.FEDI_REFRESH_TOKEN);
    const refreshed = await main({
      operation: 'refresh',
      'client-id': values.FEDI_CLIENT_ID ?? '',
      'client-secret': values.FEDI_CLIENT_SECRET ?? '',
      'refresh-token': values.FEDI_REFRESH_TOKEN ?? '',
    });
    expect(refreshed.exitCode).toBe(0);
    expect(refreshed.outputs.scope).toBe('read');
  });

  it('--client-id without --port: league ignores a loopback port, so the listener is used on any port', async () => {
    const client = app(['http://127.0.0.1/callback']);
    const before = requestsTo('/api/v1/apps').length;
    const cli = startCli(['login', server.url, '--client-id', client['client-id']], {
      env: { FEDI_TOKEN_CLIENT_SECRET: client['client-secret'] },
    });
    const url = new URL(await cli.waitForUrl());
    expect(cli.stderr).toContain('Pixelfed accepts a loopback redirect on any port');
    expect(url.searchParams.get('redirect_uri')).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/callback$/);
    expect((await answerAuthorize(url.href)).text).toMatch(/close this tab/);
    const exit = await cli.exited;
    expect(exit.code).toBe(0);
    expect(exit.stderr).not.toMatch(/copy-paste/);
    expect(exit.stdout).toMatch(/^FEDI_TOKEN=/m);
    expect(exit.stdout).toMatch(/^FEDI_REFRESH_TOKEN=/m);
    expect(requestsTo('/api/v1/apps')).toHaveLength(before);
  });
});

describe('the loopback server answers as Pixelfed’s source does', () => {
  const json = { accept: 'application/json' };

  it('renders OAuth errors as 500 for JSON clients, league’s own JSON for others', async () => {
    const client = server.registerApp();
    const body = new URLSearchParams({
      grant_type: 'refresh_token',
      refresh_token: 'def50200not-a-token',
      client_id: client.clientId,
      client_secret: client.clientSecret,
    });
    const forJson = await fetch(`${server.url}/oauth/token`, {
      method: 'POST',
      body,
      headers: json,
    });
    expect(forJson.status).toBe(500);
    expect(await forJson.json()).toEqual({ error: 'The refresh token is invalid.' });
    const plain = await fetch(`${server.url}/oauth/token`, { method: 'POST', body });
    expect(plain.status).toBe(401);
    expect(await plain.json()).toMatchObject({ error: 'invalid_request' });
    const revoke = await fetch(`${server.url}/oauth/revoke`, { method: 'POST', headers: json });
    expect(revoke.status).toBe(404);
  });

  it('validates account-statuses parameters, caps limit at 40, and reads min_id as the newest above it', async () => {
    const { accessToken } = server.issueToken({ scopes: ['read'] });
    const list = (query: string) =>
      fetch(`${server.url}/api/v1/accounts/${server.alice.id}/statuses?${query}`, {
        headers: { ...json, authorization: `Bearer ${accessToken}` },
      });
    expect((await list('limit=0')).status).toBe(422);
    expect((await list('max_id=abc')).status).toBe(422);
    const page = (await (await list('limit=100')).json()) as { id: string }[];
    expect(page.length).toBeLessThanOrEqual(40);
    expect((await list('limit=100')).headers.get('link')).toBeNull();
    const oldest = server.posts[0]?.id ?? '';
    const above = (await (await list(`min_id=${oldest}&limit=5`)).json()) as { id: string }[];
    expect(above.map((item) => item.id)).toEqual(page.slice(0, 5).map((item) => item.id));
    const anonymous = await fetch(`${server.url}/api/v1/accounts/verify_credentials`, {
      headers: json,
    });
    expect(anonymous.status).toBe(500);
    expect(await anonymous.json()).toEqual({ error: 'Unauthenticated.' });
  });
});
