/**
 * platform: auto. Detection against the loopback servers, in process (counting requests) and as
 * the runner runs the bundle.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { UnsupportedError } from '../src/errors.ts';
import { Http } from '../src/http.ts';
import { detectPlatform } from '../src/providers/detect.ts';
import { findLeaks, runAction } from './harness/action.ts';
import { startAnyWeb } from './servers/anyweb.ts';
import { startMastodonServer } from './servers/mastodon.ts';
import { startMisskey, type MisskeyServer } from './servers/misskey.ts';

const closers: (() => Promise<void>)[] = [];
let misskey: MisskeyServer;

beforeAll(async () => {
  misskey = await startMisskey({ version: '2025.4.0' });
  closers.push(misskey.close);
});
afterAll(async () => {
  await Promise.all(closers.map((close) => close()));
});

function http(): Http {
  return new Http({ timeoutMs: 5000, maxAttempts: 1 });
}

async function startedMisskey(options: Parameters<typeof startMisskey>[0]) {
  const server = await startMisskey(options);
  closers.push(server.close);
  return server;
}

/** A Misskey fork under a name of its own, which names Misskey as its upstream in nodeinfo. */
async function startedFork(software: { name: string; version: string }) {
  const fork = await startedMisskey({});
  fork.faults.inject({
    kind: 'status',
    status: 200,
    path: '/nodeinfo/2.1',
    body: { version: '2.1', software, metadata: { upstream: { name: 'Misskey' } } },
  });
  return fork;
}

describe('detectPlatform', () => {
  it('reads Misskey and its forks from nodeinfo in two requests', async () => {
    const client = http();
    await expect(detectPlatform(client, new URL(misskey.url))).resolves.toEqual({
      platform: 'misskey',
      software: { name: 'misskey', version: '2025.4.0' },
    });
    expect(client.requestCount).toBe(2);

    const sharkey = await startedMisskey({ software: 'Sharkey', version: '2025.2.3' });
    await expect(detectPlatform(http(), new URL(sharkey.url))).resolves.toEqual({
      platform: 'misskey',
      software: { name: 'sharkey', version: '2025.2.3' },
    });
  });

  it('recognises Misskey without nodeinfo by its UNKNOWN_API_ENDPOINT answer', async () => {
    const bare = await startedMisskey({ software: null });
    const client = http();
    await expect(detectPlatform(client, new URL(bare.url))).resolves.toEqual({
      platform: 'misskey',
      software: { name: 'misskey' },
    });
    expect(client.requestCount).toBe(2);
    expect(bare.hits).toEqual(['GET /.well-known/nodeinfo', 'GET /api/v1/instance']);
  });

  it.each([
    ['mastodon', undefined, 'mastodon', { name: 'mastodon', version: '4.4.0' }],
    ['pleroma', undefined, 'mastodon', { name: 'pleroma', version: '2.7.0' }],
    [
      'sharkey',
      // Sharkey's mastodon/endpoints/instance.ts (develop 3d13024828) writes this exact form.
      '3.0.0 (compatible; Sharkey 2025.5.2-dev; like Akkoma)',
      'misskey',
      { name: 'sharkey', version: '2025.5.2-dev' },
    ],
  ] as const)(
    'without nodeinfo, reads /api/v1/instance (%s)',
    async (flavour, versionOverride, platform, software) => {
      const server = await startMastodonServer({
        flavour: flavour === 'sharkey' ? 'mastodon' : flavour,
      });
      closers.push(server.close);
      server.inject({ kind: 'status', status: 404, path: '/.well-known/nodeinfo' });
      if (versionOverride) {
        // Sharkey also serves a Mastodon-compatible instance document.
        server.inject({
          kind: 'status',
          status: 200,
          path: '/api/v1/instance',
          body: { uri: 'sharkey.example', version: versionOverride },
        });
      }
      const client = http();
      await expect(detectPlatform(client, new URL(server.url))).resolves.toEqual({
        platform,
        software,
      });
      expect(client.requestCount).toBe(2);
    },
  );

  it('names software it does not know', async () => {
    const other = await startedMisskey({ software: 'wordpress' });
    await expect(detectPlatform(http(), new URL(other.url))).rejects.toThrow(
      /runs 'wordpress', which fedi-token does not recognise\. Set 'platform'/,
    );
  });

  it('lists what it tried when nothing matches', async () => {
    const anyweb = await startAnyWeb();
    closers.push(anyweb.close);
    const client = http();
    const error = await detectPlatform(client, new URL(anyweb.url)).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(UnsupportedError);
    expect((error as Error).message).toBe(
      `Could not tell which server ${anyweb.url} runs; tried /.well-known/nodeinfo (HTTP 405), ` +
        '/api/v1/instance (HTTP 405, not a Mastodon or Misskey API). ' +
        "Set 'platform' to mastodon, misskey, anyweb or oauth2",
    );
    expect(client.requestCount).toBe(2);
  });

  it('stops after two requests when the nodeinfo document is broken', async () => {
    const broken = await startedMisskey({});
    broken.faults.inject({ kind: 'html', status: 500, path: '/nodeinfo/2.1' });
    const client = http();
    await expect(detectPlatform(client, new URL(broken.url))).rejects.toThrow(
      /tried \/\.well-known\/nodeinfo and \/nodeinfo\/2\.1 \(HTTP 500\)/,
    );
    expect(client.requestCount).toBe(2);
  });

  it('sends each detection request once, even to a client that retries', async () => {
    const retrying = () => new Http({ timeoutMs: 5000, maxAttempts: 3, sleep: async () => {} });
    const busy = await startedMisskey({});
    busy.faults.inject({ kind: 'status', status: 503, path: '/.well-known/nodeinfo', times: 5 });
    const client = retrying();
    await expect(detectPlatform(client, new URL(busy.url))).resolves.toEqual({
      platform: 'misskey',
      software: { name: 'misskey' },
    });
    expect(busy.hits).toEqual(['GET /.well-known/nodeinfo', 'GET /api/v1/instance']);
    expect(client.requestCount).toBe(2);

    const down = await startedMisskey({});
    for (const path of ['/.well-known/nodeinfo', '/api/v1/instance']) {
      down.faults.inject({ kind: 'status', status: 503, path, times: 5, retryAfter: 1 });
    }
    const second = retrying();
    await expect(detectPlatform(second, new URL(down.url))).rejects.toThrow(
      `Could not tell which server ${down.url} runs; tried /.well-known/nodeinfo (HTTP 503), ` +
        "/api/v1/instance (HTTP 503). Set 'platform'",
    );
    expect(second.requestCount).toBe(2);

    const brokenDocument = await startedMisskey({});
    brokenDocument.faults.inject({ kind: 'status', status: 502, path: '/nodeinfo/2.1', times: 5 });
    const third = retrying();
    await expect(detectPlatform(third, new URL(brokenDocument.url))).rejects.toThrow(
      /tried \/\.well-known\/nodeinfo and \/nodeinfo\/2\.1 \(HTTP 502\)/,
    );
    expect(third.requestCount).toBe(2);
  });

  it('falls back to /api/v1/instance when the nodeinfo index has no 2.x link', async () => {
    const onlyOld = {
      links: [{ rel: 'http://nodeinfo.diaspora.software/ns/schema/1.0', href: '/nodeinfo/1.0' }],
    };
    const bare = await startedMisskey({});
    bare.faults.inject({
      kind: 'status',
      status: 200,
      path: '/.well-known/nodeinfo',
      body: onlyOld,
    });
    await expect(detectPlatform(http(), new URL(bare.url))).resolves.toEqual({
      platform: 'misskey',
      software: { name: 'misskey' },
    });
    expect(bare.hits).toEqual(['GET /.well-known/nodeinfo', 'GET /api/v1/instance']);

    const anyweb = await startAnyWeb();
    closers.push(anyweb.close);
    anyweb.faults.inject({
      kind: 'status',
      status: 200,
      path: '/.well-known/nodeinfo',
      body: onlyOld,
    });
    const client = http();
    await expect(detectPlatform(client, new URL(anyweb.url))).rejects.toThrow(
      'tried /.well-known/nodeinfo (no nodeinfo 2.x link), ' +
        '/api/v1/instance (HTTP 405, not a Mastodon or Misskey API)',
    );
    expect(client.requestCount).toBe(2);
  });

  it('takes the platform from metadata.upstream.name when the software name is unknown', async () => {
    const fork = await startedFork({ name: 'Kitsune', version: '1.2.0' });
    await expect(detectPlatform(http(), new URL(fork.url))).resolves.toEqual({
      platform: 'misskey',
      software: { name: 'kitsune', version: '1.2.0' },
    });
  });

  it('knows the AnyWeb API by its address without a request', async () => {
    const client = http();
    await expect(detectPlatform(client, new URL('https://api.anyweb.cc'))).resolves.toEqual({
      platform: 'anyweb',
      software: { name: 'anyweb' },
    });
    expect(client.requestCount).toBe(0);
  });
});

describe('platform input on the bundle', () => {
  it('auto detects Misskey and outputs platform and software', async () => {
    const token = misskey.issueToken('auto_user');
    const before = misskey.hits.length;
    const result = await runAction('main', {
      instance: misskey.url,
      operation: 'validate',
      'access-token': token,
    });
    expect(result.exitCode).toBe(0);
    expect(result.outputs.platform).toBe('misskey');
    expect(result.outputs.software).toBe('misskey 2025.4.0');
    expect(result.outputs.username).toBe('auto_user');
    expect(misskey.hits.slice(before)).toEqual([
      'GET /.well-known/nodeinfo',
      'GET /nodeinfo/2.1',
      'POST /api/i',
    ]);
    expect(findLeaks(result, [token])).toEqual([]);
  });

  it.each([
    ['a new line and ::stop-commands::', 'kitsune\n::stop-commands::pause\n'],
    ['##[stop-commands] inside the line', 'kitsune ##[stop-commands]pause'],
  ])(
    "a software name with %s cannot stop the runner's commands, so the token it issues is masked",
    async (_, name) => {
      const fork = await startedFork({ name, version: '1.0.0' });
      const session = randomUUID();
      const token = fork.approveMiAuth(session, { username: 'forked' });
      const result = await runAction('main', {
        instance: fork.url,
        operation: 'exchange',
        code: session,
      });
      expect(result.exitCode).toBe(0);
      expect(result.outputs.platform).toBe('misskey');
      expect(result.masks).toEqual(expect.arrayContaining([session, token]));
      expect(findLeaks(result, [session, token])).toEqual([]);
    },
  );

  it('detection costs two requests with max-attempts 3 while nodeinfo answers 503', async () => {
    const busy = await startedMisskey({});
    busy.faults.inject({ kind: 'status', status: 503, path: '/.well-known/nodeinfo', times: 5 });
    const token = busy.issueToken('busy_user');
    const result = await runAction('main', {
      instance: busy.url,
      operation: 'validate',
      'access-token': token,
      'max-attempts': '3',
    });
    expect(result.exitCode).toBe(0);
    expect(result.outputs.platform).toBe('misskey');
    expect(busy.hits).toEqual(['GET /.well-known/nodeinfo', 'GET /api/v1/instance', 'POST /api/i']);
    expect(findLeaks(result, [token])).toEqual([]);
  });

  it('sends no detection request when the platform is given', async () => {
    const token = misskey.issueToken('given_user');
    const before = misskey.hits.length;
    const result = await runAction('main', {
      instance: misskey.url,
      platform: 'misskey',
      operation: 'validate',
      'access-token': token,
    });
    expect(result.exitCode).toBe(0);
    expect(result.outputs.software).toBe('');
    expect(misskey.hits.slice(before)).toEqual(['POST /api/i']);
  });

  it('fails with what it tried when nothing matches, naming the platform input', async () => {
    const anyweb = await startAnyWeb();
    closers.push(anyweb.close);
    const token = 'some-access-token-0123456789';
    const result = await runAction('main', {
      instance: anyweb.url,
      operation: 'validate',
      'access-token': token,
    });
    expect(result.exitCode).toBe(1);
    expect(result.stdout).toContain(
      `::error::Could not tell which server ${anyweb.url} runs; tried /.well-known/nodeinfo (HTTP 405), ` +
        '/api/v1/instance (HTTP 405, not a Mastodon or Misskey API). ' +
        "Set 'platform' to mastodon, misskey, anyweb or oauth2",
    );
    expect(result.log).not.toMatch(/\n\s+at .*\(/);
    expect(findLeaks(result, [token])).toEqual([]);
  });

  it('fails inputs no detectable platform accepts before detecting, with each reason', async () => {
    const before = misskey.hits.length;
    const token = misskey.issueToken('kept_user');
    // Every operation input is there: Mastodon-API servers need the client to revoke, and
    // Misskey cannot revoke at all, so both candidates refuse for their own reason.
    const result = await runAction('main', {
      instance: misskey.url,
      operation: 'revoke',
      'access-token': token,
    });
    expect(result.exitCode).toBe(1);
    const error = result.stdout.split('\n').find((l) => l.startsWith('::error::'));
    expect(error).toBe(
      "::error::No platform that 'auto' can detect accepts these inputs. " +
        'Misskey does not let an app revoke its own token; revoke it in the Misskey web UI: ' +
        "Settings → API (access tokens) or Settings → Installed apps, then 'Delete'. " +
        "Input 'client-id': is required by Mastodon-API servers to revoke a token",
    );
    expect(misskey.hits.slice(before)).toEqual([]);
    expect(findLeaks(result, [token])).toEqual([]);
  });

  it('names each platform when the operation input is missing on one and the operation on another', async () => {
    const before = misskey.hits.length;
    const result = await runAction('main', { instance: misskey.url, operation: 'refresh' });
    expect(result.exitCode).toBe(1);
    expect(result.stdout).toContain(
      "::error::No platform that 'auto' can detect accepts these inputs. Misskey tokens do not expire",
    );
    expect(result.stdout).toContain(
      "Mastodon-API server: Input 'refresh-token': is required for operation 'refresh'",
    );
    expect(misskey.hits.slice(before)).toEqual([]);
  });

  it('gives the one reason when every platform refuses for the same one', async () => {
    const result = await runAction('main', { instance: misskey.url, operation: 'validate' });
    expect(result.exitCode).toBe(1);
    expect(result.stdout).toContain(
      "::error::Input 'access-token': is required for operation 'validate'\n",
    );
  });

  it('refuses revoke-on-exit on a Misskey server before the exchange', async () => {
    const session = randomUUID();
    misskey.approveMiAuth(session, { username: 'exit_user' });
    let before = misskey.hits.length;
    // With the client given, a Mastodon-API server would accept this: detection runs, and the
    // Misskey answer comes before the single-use check is spent.
    const detected = await runAction('main', {
      instance: misskey.url,
      operation: 'exchange',
      code: session,
      'client-id': 'some-client',
      'client-secret': 'some-client-secret-value',
      'revoke-on-exit': 'true',
    });
    expect(detected.exitCode).toBe(1);
    expect(detected.stdout).toContain(
      "::error::Input 'revoke-on-exit': Misskey does not let an app revoke its own token",
    );
    expect(misskey.hits.slice(before)).toEqual(['GET /.well-known/nodeinfo', 'GET /nodeinfo/2.1']);

    before = misskey.hits.length;
    // Without it, neither platform accepts the inputs, and nothing is sent.
    const upFront = await runAction('main', {
      instance: misskey.url,
      operation: 'exchange',
      code: session,
      'revoke-on-exit': 'true',
    });
    expect(upFront.exitCode).toBe(1);
    expect(upFront.stdout).toContain(
      "::error::No platform that 'auto' can detect accepts these inputs. " +
        "Input 'client-id': is required by Mastodon-API servers to revoke a token. " +
        "Input 'revoke-on-exit': Misskey does not let an app revoke its own token",
    );
    expect(misskey.hits.slice(before)).toEqual([]);
    expect(findLeaks(detected, [session, 'some-client-secret-value'])).toEqual([]);
    expect(findLeaks(upFront, [session])).toEqual([]);
  });

  it('detects first when some platform accepts the inputs, then applies its rules', async () => {
    const before = misskey.hits.length;
    // Mastodon-API servers accept these inputs, so detection runs; Misskey then names
    // client-credentials unsupported.
    const result = await runAction('main', {
      instance: misskey.url,
      operation: 'client-credentials',
      'client-id': 'some-client',
      'client-secret': 'some-client-secret-value',
    });
    expect(result.exitCode).toBe(1);
    expect(result.stdout).toMatch(/::error::.*Misskey/);
    expect(misskey.hits.slice(before)).toEqual(['GET /.well-known/nodeinfo', 'GET /nodeinfo/2.1']);
    expect(findLeaks(result, ['some-client-secret-value'])).toEqual([]);
  });
});
