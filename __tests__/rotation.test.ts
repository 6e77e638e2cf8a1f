/**
 * Refresh-token rotation written back to a repository secret, run as the runner runs the action,
 * against oidc-provider (rotating refresh tokens) and a loopback GitHub secrets API that decrypts
 * what it receives. Every run's log is checked for leaks.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from '@jest/globals';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import sodium from 'libsodium-wrappers';
import { sealForKey } from '../src/github/sealed-box.ts';
import { ROOT, findLeaks, runAction, type ActionRun } from './harness/action.ts';
import { startGitHub, type GitHubServer } from './servers/github.ts';
import {
  OOB,
  startMastodonServer,
  type MastodonServer,
  type RegisteredApp,
} from './servers/mastodon.ts';
import { REDIRECT_URI, startOidc, type OidcServer } from './servers/oidc.ts';

const SECRET = 'FEDI_REFRESH_TOKEN';
const GH_TOKEN = `github_pat_${'A1b2C3d4'.repeat(6)}`;
const READ_ONLY_TOKEN = `ghs_${'Z9y8X7w6'.repeat(5)}`;

let oidc: OidcServer;
let gh: GitHubServer;
const secrets: string[] = [GH_TOKEN, READ_ONLY_TOKEN];

beforeAll(async () => {
  oidc = await startOidc();
  secrets.push(oidc.basic.secret, oidc.post.secret);
});
afterAll(async () => {
  await oidc.close();
});
beforeEach(async () => {
  await gh?.close();
  gh = await startGitHub({ token: GH_TOKEN, readOnlyTokens: [READ_ONLY_TOKEN] });
});
afterAll(async () => {
  await gh.close();
});

/** The main step with the loopback GitHub API; its tokens join the secrets every later log is scanned for. */
async function runWithGitHub(
  inputs: Record<string, string>,
  env: Record<string, string> = { GITHUB_API_URL: gh.url, GITHUB_REPOSITORY: gh.repository },
): Promise<ActionRun> {
  const result = await runAction('main', { 'max-attempts': '2', ...inputs }, { env });
  for (const name of ['access-token', 'refresh-token']) {
    const value = result.outputs[name];
    if (value) secrets.push(value);
  }
  expect(findLeaks(result, secrets)).toEqual([]);
  return result;
}

function run(
  inputs: Record<string, string>,
  server = oidc,
  env?: Record<string, string>,
): Promise<ActionRun> {
  return runWithGitHub(
    {
      platform: 'oauth2',
      instance: server.issuer,
      'client-id': server.basic.id,
      'client-secret': server.basic.secret,
      ...inputs,
    },
    env,
  );
}

/** A refresh token from a real authorization. */
async function freshRefreshToken(server = oidc): Promise<string> {
  const { code, verifier } = await server.authorize({ client: server.basic });
  secrets.push(code, verifier);
  const result = await run(
    { operation: 'exchange', code, 'code-verifier': verifier, 'redirect-uri': REDIRECT_URI },
    server,
  );
  expect(result.exitCode).toBe(0);
  const token = result.outputs['refresh-token'] ?? '';
  expect(token).not.toBe('');
  return token;
}

function writeBack(refreshToken: string, githubToken = GH_TOKEN): Record<string, string> {
  return {
    operation: 'refresh',
    'refresh-token': refreshToken,
    'secret-name': SECRET,
    'github-token': githubToken,
  };
}

const tokenRequests = (since: number): string[] =>
  oidc.requests.slice(since).filter((r) => r === 'POST /token');

describe('write-back', () => {
  it('writes the current value back, refreshes, then stores the rotated token', async () => {
    const old = await freshRefreshToken();
    const result = await run(writeBack(old));
    expect(result.exitCode).toBe(0);
    const rotated = result.outputs['refresh-token'] ?? '';
    expect(rotated).not.toBe(old);
    expect(result.masks).toEqual(expect.arrayContaining([rotated, GH_TOKEN]));
    // Decrypted by the server with its private key: the sealed box round trip is real.
    expect(gh.writes.map(({ value, status }) => ({ value, status }))).toEqual([
      { value: old, status: 201 },
      { value: rotated, status: 204 },
    ]);
    expect(gh.secrets.get(SECRET)).toBe(rotated);
    expect(result.stdout).toMatch(/Stored the rotated refresh token in secret FEDI_REFRESH_TOKEN/);

    // The rotated token is the one that works now; the replayed old one is refused.
    const replay = await run({ operation: 'refresh', 'refresh-token': old });
    expect(replay.exitCode).toBe(1);
    expect(replay.stdout).toMatch(/\(invalid_grant\).*already rotated; authorize again/);
    // oidc-provider treats a replayed refresh token as theft and revokes the whole grant: the
    // stored token dies too. This is why the docs ask for a concurrency group.
    const stored = await run({ operation: 'refresh', 'refresh-token': rotated });
    expect(stored.exitCode).toBe(1);
    expect(stored.stdout).toMatch(/\(invalid_grant\)/);
  });

  it('leaves the secret as it is when the server does not rotate', async () => {
    const steady = await startOidc({ rotate: false });
    secrets.push(steady.basic.secret, steady.post.secret);
    try {
      const token = await freshRefreshToken(steady);
      const result = await run(writeBack(token), steady);
      expect(result.exitCode).toBe(0);
      expect(result.outputs['refresh-token']).toBe(token);
      expect(gh.writes.map((w) => w.value)).toEqual([token]);
      expect(result.stdout).toMatch(/did not change/);
    } finally {
      await steady.close();
    }
  });

  it('uses GITHUB_API_URL with a path, as GitHub Enterprise Server has it', async () => {
    const ghes = await startGitHub({ token: GH_TOKEN, basePath: '/api/v3' });
    try {
      const old = await freshRefreshToken();
      const result = await run(writeBack(old), oidc, {
        GITHUB_API_URL: `${ghes.url}/api/v3`,
        GITHUB_REPOSITORY: ghes.repository,
      });
      const rotated = result.outputs['refresh-token'] ?? '';
      expect(result.exitCode).toBe(0);
      expect(ghes.secrets.get(SECRET)).toBe(rotated);
      const secretPath = '/api/v3/repos/octo/fedi-site/actions/secrets';
      expect(ghes.requests).toEqual([
        `GET ${secretPath}/public-key`,
        `PUT ${secretPath}/${SECRET}`,
        `GET ${secretPath}/public-key`,
        `PUT ${secretPath}/${SECRET}`,
      ]);
    } finally {
      await ghes.close();
    }
  });

  it('retries the final write through transient failures', async () => {
    const old = await freshRefreshToken();
    gh.failWritesAfter(1, 503, 2);
    const result = await run(writeBack(old));
    expect(result.exitCode).toBe(0);
    expect(gh.secrets.get(SECRET)).toBe(result.outputs['refresh-token']);
    expect(gh.requests.filter((r) => r.startsWith('PUT'))).toHaveLength(4);
  });
});

describe('write-back with platform: mastodon on Pleroma', () => {
  let pleroma: MastodonServer;
  afterAll(async () => {
    await pleroma?.close();
  });

  function runOn(app: RegisteredApp, inputs: Record<string, string>): Promise<ActionRun> {
    return runWithGitHub({
      platform: 'mastodon',
      instance: pleroma.url,
      'client-id': app.clientId,
      'client-secret': app.clientSecret,
      ...inputs,
    });
  }

  /** A user authorization exchanged through the action: its access and refresh tokens. */
  async function authorize(rotate: boolean) {
    await pleroma?.close();
    pleroma = await startMastodonServer({ flavour: 'pleroma', rotateRefreshTokens: rotate });
    const app = pleroma.registerApp({ scopes: ['read'] });
    secrets.push(app.clientSecret);
    const code = pleroma.issueCode({ clientId: app.clientId, redirectUri: OOB });
    secrets.push(code);
    const got = await runOn(app, { operation: 'exchange', code });
    expect(got.exitCode).toBe(0);
    const access = got.outputs['access-token'] ?? '';
    const refresh = got.outputs['refresh-token'] ?? '';
    expect(refresh).toMatch(/^\S{20,}$/);
    return { app, access, refresh };
  }

  it('stores the rotated refresh token; the old access and refresh tokens stop working', async () => {
    const { app, access, refresh } = await authorize(true);
    const result = await runOn(app, writeBack(refresh));
    expect(result.exitCode).toBe(0);
    const rotated = result.outputs['refresh-token'] ?? '';
    expect(rotated).toMatch(/^\S{20,}$/);
    expect(rotated).not.toBe(refresh);
    expect(result.outputs['access-token']).not.toBe(access);
    expect(result.masks).toContain(rotated);
    // The shared refresh grant's rotation handling, then the write-back's.
    expect(result.stdout).toMatch(/The server rotated the refresh token/);
    expect(result.stdout).toMatch(/Stored the rotated refresh token in secret FEDI_REFRESH_TOKEN/);
    expect(gh.writes.map(({ value, status }) => ({ value, status }))).toEqual([
      { value: refresh, status: 201 },
      { value: rotated, status: 204 },
    ]);
    expect(pleroma.isRevoked(access)).toBe(true);

    const replay = await runOn(app, { operation: 'refresh', 'refresh-token': refresh });
    expect(replay.exitCode).toBe(1);
    expect(replay.stdout).toMatch(/POST \/oauth\/token answered HTTP 400: Invalid credentials/);
    const stored = await runOn(app, { operation: 'refresh', 'refresh-token': rotated });
    expect(stored.exitCode).toBe(0);
  });

  it('leaves the secret alone when Pleroma keeps the refresh token (its default)', async () => {
    const { app, access, refresh } = await authorize(false);
    const result = await runOn(app, writeBack(refresh));
    expect(result.exitCode).toBe(0);
    expect(result.outputs['refresh-token']).toBe(refresh);
    expect(result.outputs['access-token']).not.toBe(access);
    expect(pleroma.isRevoked(access)).toBe(true);
    expect(gh.writes.map((w) => w.value)).toEqual([refresh]);
    expect(result.stdout).toMatch(/did not change/);
    const again = await runOn(app, { operation: 'refresh', 'refresh-token': refresh });
    expect(again.exitCode).toBe(0);
  });
});

describe('nothing is refreshed when the secret cannot be written', () => {
  it('names the permission when the token may not write secrets (403)', async () => {
    const old = await freshRefreshToken();
    const before = oidc.requests.length;
    const result = await run(writeBack(old, READ_ONLY_TOKEN));
    expect(result.exitCode).toBe(1);
    expect(tokenRequests(before)).toEqual([]);
    expect(result.stdout).toMatch(
      /Nothing was refreshed: secret FEDI_REFRESH_TOKEN of octo\/fedi-site/,
    );
    expect(result.stdout).toMatch(/HTTP 403: Resource not accessible by integration/);
    expect(result.stdout).toMatch(
      /'Secrets: Read and write'.*'repo' scope.*GITHUB_TOKEN cannot write secrets/,
    );
    expect(gh.secrets.size).toBe(0);
    // The refresh token was not spent.
    expect((await run({ operation: 'refresh', 'refresh-token': old })).exitCode).toBe(0);
  });

  it('explains a missing public key or repository (404)', async () => {
    const old = await freshRefreshToken();
    gh.inject({
      method: 'GET',
      path: '/repos/octo/fedi-site/actions/secrets/public-key',
      kind: 'status',
      status: 404,
      body: { message: 'Not Found' },
    });
    const before = oidc.requests.length;
    const result = await run(writeBack(old));
    expect(result.exitCode).toBe(1);
    expect(tokenRequests(before)).toEqual([]);
    expect(result.stdout).toMatch(
      /HTTP 404.*octo\/fedi-site was not found, or the token cannot see it/,
    );
  });

  it.each([
    ['without a key', { key_id: '568250167242549743' }, /Nothing was refreshed.*malformed key/],
    [
      'with a key of the wrong size',
      { key_id: '568250167242549743', key: Buffer.alloc(16, 7).toString('base64') },
      /Nothing was refreshed.*public key is 16 bytes, not 32/,
    ],
  ])('refuses a public key answer %s, before refreshing', async (_case, body, message) => {
    const old = await freshRefreshToken();
    gh.inject({
      method: 'GET',
      path: '/repos/octo/fedi-site/actions/secrets/public-key',
      kind: 'status',
      status: 200,
      body,
    });
    const before = oidc.requests.length;
    const result = await run(writeBack(old));
    expect(result.exitCode).toBe(1);
    expect(tokenRequests(before)).toEqual([]);
    expect(gh.secrets.size).toBe(0);
    expect(result.stdout.split('\n').find((l) => l.startsWith('::error::'))).toMatch(message);
    expect(result.log).not.toMatch(/\n\s+at .*\(/);
  });

  it('says so when the github-token is rejected (401)', async () => {
    const old = await freshRefreshToken();
    const wrong = `ghp_${'q'.repeat(36)}`;
    secrets.push(wrong);
    const result = await run(writeBack(old, wrong));
    expect(result.exitCode).toBe(1);
    expect(result.stdout).toMatch(
      /HTTP 401: Bad credentials\. The 'github-token' is invalid or expired/,
    );
  });
});

describe('failures after the proof', () => {
  it('keeps the old token usable when the token endpoint is down during the refresh', async () => {
    const old = await freshRefreshToken();
    oidc.down.add('/token');
    const before = oidc.requests.length;
    let result: ActionRun;
    try {
      result = await run(writeBack(old));
    } finally {
      oidc.down.delete('/token');
    }
    expect(result.exitCode).toBe(1);
    expect(result.stdout).toMatch(/POST \/token answered HTTP 503: an HTML page, not JSON/);
    // A bare 503 may come from behind the server that spent the token: sent once, with
    // max-attempts 2.
    expect(tokenRequests(before)).toEqual(['POST /token']);
    expect(gh.secrets.get(SECRET)).toBe(old);
    const later = await run(writeBack(old));
    expect(later.exitCode).toBe(0);
    expect(gh.secrets.get(SECRET)).toBe(later.outputs['refresh-token']);
  });

  it('fails with instructions but outputs the rotated token, masked, when the last write fails', async () => {
    const old = await freshRefreshToken();
    gh.failWritesAfter(1, 500);
    const result = await run(writeBack(old));
    expect(result.exitCode).toBe(1);
    // The proof, then the final write sent five times (the write-back's minimum attempts, above
    // max-attempts 2): a 500 from GitHub is repeated, the PUT being idempotent.
    expect(gh.requests.filter((r) => r.startsWith('PUT'))).toHaveLength(6);
    const rotated = result.outputs['refresh-token'] ?? '';
    expect(rotated).not.toBe('');
    expect(rotated).not.toBe(old);
    expect(result.masks).toContain(rotated);
    expect(gh.secrets.get(SECRET)).toBe(old);
    expect(result.stdout).toMatch(
      /rotated the refresh token, but writing it to secret FEDI_REFRESH_TOKEN of octo\/fedi-site failed: .*HTTP 500/,
    );
    expect(result.stdout).toMatch(
      /output 'refresh-token' \(masked\).*gh secret set FEDI_REFRESH_TOKEN/,
    );
    // What the instructions promise: the output is the token that works.
    const next = await run({ operation: 'refresh', 'refresh-token': rotated });
    expect(next.exitCode).toBe(0);
  });
});

describe('configuration', () => {
  it('fails before any request without GITHUB_REPOSITORY', async () => {
    const old = 'r'.repeat(43);
    const before = oidc.requests.length;
    const result = await run(writeBack(old), oidc, { GITHUB_API_URL: gh.url });
    expect(result.exitCode).toBe(1);
    expect(result.stdout).toMatch(/Input 'secret-name': needs GITHUB_REPOSITORY/);
    expect(oidc.requests.length).toBe(before);
    expect(gh.requests).toEqual([]);
    expect(findLeaks(result, [...secrets, old])).toEqual([]);
  });
});

describe('refused before any secret write', () => {
  let mastodon: MastodonServer;
  beforeAll(async () => {
    mastodon = await startMastodonServer({ flavour: 'mastodon' });
  });
  afterAll(async () => {
    await mastodon.close();
  });

  function refreshOnMastodon(env: Record<string, string>): Promise<ActionRun> {
    const app = mastodon.registerApp();
    secrets.push(app.clientSecret);
    return runAction(
      'main',
      {
        instance: mastodon.url,
        'client-id': app.clientId,
        'client-secret': app.clientSecret,
        ...writeBack('m'.repeat(43)),
      },
      { env },
    );
  }

  it('refuses refresh on detected Mastodon software without writing the secret', async () => {
    mastodon.requests.length = 0;
    const result = await refreshOnMastodon({
      GITHUB_API_URL: gh.url,
      GITHUB_REPOSITORY: gh.repository,
    });
    expect(result.exitCode).toBe(1);
    expect(result.stdout).toMatch(/::error::mastodon issues no refresh tokens/);
    expect(gh.requests.filter((r) => r.startsWith('PUT'))).toEqual([]);
    expect(gh.requests).toEqual([]);
    expect(mastodon.requests.map((r) => r.path)).not.toContain('/oauth/token');
    expect(findLeaks(result, [...secrets, 'm'.repeat(43)])).toEqual([]);
  });

  it('checks GITHUB_REPOSITORY before detection', async () => {
    mastodon.requests.length = 0;
    const result = await refreshOnMastodon({ GITHUB_API_URL: gh.url });
    expect(result.exitCode).toBe(1);
    expect(result.stdout).toMatch(/Input 'secret-name': needs GITHUB_REPOSITORY/);
    expect(mastodon.requests).toEqual([]);
    expect(gh.requests).toEqual([]);
  });
});

describe('sealed box', () => {
  it('opens with the private key and refuses a key of the wrong size', async () => {
    await sodium.ready;
    const keys = sodium.crypto_box_keypair();
    const sealed = await sealForKey(Buffer.from(keys.publicKey).toString('base64'), 'héllo ✓');
    const opened = sodium.crypto_box_seal_open(
      Buffer.from(sealed, 'base64'),
      keys.publicKey,
      keys.privateKey,
    );
    expect(sodium.to_string(opened)).toBe('héllo ✓');
    await expect(sealForKey(Buffer.alloc(31).toString('base64'), 'x')).rejects.toThrow(
      /31 bytes, not 32/,
    );
  });

  it('is a separate chunk of the bundle, so runs without secret-name do not load it', () => {
    const dir = join(ROOT, 'dist', 'main');
    const chunks = readdirSync(dir).filter((name) => /^\d+\.index\.js$/.test(name));
    const main = readFileSync(join(dir, 'index.js'), 'utf8');
    const sodiumChunk = chunks.find((name) =>
      readFileSync(join(dir, name), 'utf8').includes('crypto_box_seal_open'),
    );
    expect(sodiumChunk).toBeDefined();
    expect(main).not.toContain('crypto_box_seal_open');
    expect(statSync(join(dir, 'index.js')).size).toBeLessThanOrEqual(250 * 1024);
  });
});
