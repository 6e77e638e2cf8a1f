/**
 * The snapshot walk against protocol-faithful loopback servers of each family: what reaches the
 * file, how many requests it takes, incremental merging, and that failures leave the file alone.
 */
import { afterAll, afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InputError, NetworkError, ServerError } from '../src/errors.ts';
import { Http } from '../src/http.ts';
import { parseSnapshotInputs, readAccount } from '../src/snapshot/config.ts';
import { factsOf, rejectReason } from '../src/snapshot/filter.ts';
import { runSnapshot, type SnapshotResult } from '../src/snapshot/run.ts';
import { readItems } from '../src/snapshot/store.ts';
import { TimelineServer, type Flavour, type Post } from './servers/timeline.ts';

const RANK: Record<string, number> = { public: 0, unlisted: 1, private: 2, direct: 3, list: 3 };
const LEVELS = ['public', 'unlisted', 'private', 'direct'];

interface Options {
  count: number;
  visibility?: string;
  excludeReplies?: boolean;
  excludeReblogs?: boolean;
  onlyMedia?: boolean;
}

/** What the file must hold, computed from the server's posts independently of the client. */
function expectedIds(server: TimelineServer, options: Options): string[] {
  const level = LEVELS.indexOf(options.visibility ?? 'public');
  return server.posts
    .filter(
      (post: Post) =>
        (RANK[post.visibility] ?? 9) <= level &&
        !(options.excludeReplies && post.reply === 'other') &&
        !(options.excludeReblogs && post.reblog) &&
        !(options.onlyMedia && !post.media),
    )
    .reverse()
    .slice(0, options.count)
    .map((post) => post.id);
}

let dir: string;
const servers: TimelineServer[] = [];
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'snapshot-walk-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));
afterAll(async () => {
  await Promise.all(servers.map((server) => server.close()));
});

async function start(flavour: Flavour, posts?: number): Promise<TimelineServer> {
  const server = await TimelineServer.start({ flavour, posts });
  servers.push(server);
  return server;
}

async function snapshot(
  server: TimelineServer,
  inputs: Record<string, string>,
  http = new Http({ timeoutMs: 5000, maxAttempts: 2, baseDelayMs: 1 }),
): Promise<SnapshotResult> {
  const values: Record<string, string> = {
    instance: server.url,
    'access-token': server.token,
    path: join(dir, 'out', 'statuses.json'),
    ...inputs,
  };
  const config = parseSnapshotInputs({ get: (name) => values[name] ?? '', mask: () => {} });
  return runSnapshot(config, { mask: () => {}, log: () => {}, http });
}

function fileIds(path = join(dir, 'out', 'statuses.json')): string[] {
  const items = JSON.parse(readFileSync(path, 'utf8')) as { id: unknown }[];
  for (const item of items) expect(typeof item.id).toBe('string');
  return items.map((item) => item.id as string);
}

describe.each(['mastodon', 'gotosocial', 'pleroma', 'misskey'] as const)('%s', (flavour) => {
  it('writes exactly `count` public items, newest first, with the server’s ids', async () => {
    const server = await start(flavour);
    const result = await snapshot(server, { count: '500', mode: 'full' });
    const ids = fileIds();
    expect(ids).toEqual(expectedIds(server, { count: 500 }));
    expect(result).toMatchObject({ count: 500, newCount: 500, changed: true, newestId: ids[0] });
    if (flavour === 'gotosocial') {
      // Asked server-side with only_public; the client check still ran on every item.
      expect(server.requests.some((r) => r.query.only_public === 'true')).toBe(true);
    } else {
      expect(result.filtered.visibility).toBeGreaterThan(0);
    }
    const text = readFileSync(join(dir, 'out', 'statuses.json'), 'utf8');
    for (const hidden of ['"private"', '"direct"', '"followers"', '"specified"', '"list"']) {
      expect(text).not.toContain(`"visibility":${hidden}`);
    }
  });

  it('drops replies to others but keeps self-replies; drops boosts; keeps media only', async () => {
    const server = await start(flavour);
    const options = {
      count: 300,
      excludeReplies: true,
      excludeReblogs: true,
      visibility: 'unlisted',
    };
    await snapshot(server, {
      count: '300',
      mode: 'full',
      'exclude-replies': 'true',
      'exclude-reblogs': 'true',
      visibility: 'unlisted',
    });
    const ids = fileIds();
    expect(ids).toEqual(expectedIds(server, options));
    const byId = new Map(server.posts.map((post) => [post.id, post]));
    expect(ids.some((id) => byId.get(id)?.reply === 'self')).toBe(true);
    // A thread reply that mentions someone is still the user's own thread (GoToSocial's own
    // exclude_replies would drop it).
    expect(ids.some((id) => byId.get(id)?.reply === 'self' && byId.get(id)?.mention)).toBe(true);
    expect(ids.some((id) => byId.get(id)?.reply === 'other')).toBe(false);

    rmSync(join(dir, 'out'), { recursive: true });
    await snapshot(server, { count: '100', mode: 'full', 'only-media': 'true' });
    expect(fileIds()).toEqual(expectedIds(server, { count: 100, onlyMedia: true }));
  });

  it('incremental: nothing new is one request and leaves the file untouched', async () => {
    const server = await start(flavour);
    await snapshot(server, { count: '200' });
    const path = join(dir, 'out', 'statuses.json');
    const before = readFileSync(path);
    const mtime = statSync(path).mtimeMs;
    // The default platform (auto): the file tells the family, so no detection requests.
    const listed = server.requests.length;
    const again = await snapshot(server, { count: '200' });
    expect(again).toMatchObject({ changed: false, newCount: 0, requests: 1, count: 200 });
    expect(server.requests.length - listed).toBe(1);
    expect(server.requests.some((r) => r.path.includes('nodeinfo'))).toBe(true); // first run only
    expect(server.requests.slice(listed).some((r) => r.path.includes('nodeinfo'))).toBe(false);
    const explicit = flavour === 'misskey' ? 'misskey' : 'mastodon';
    const named = await snapshot(server, { count: '200', platform: explicit });
    expect(named).toMatchObject({ changed: false, newCount: 0, requests: 1, count: 200 });
    expect(readFileSync(path).equals(before)).toBe(true);
    expect(statSync(path).mtimeMs).toBe(mtime);

    server.addPosts(60);
    const merged = await snapshot(server, { count: '200' });
    const expected = expectedIds(server, { count: 200 });
    expect(fileIds()).toEqual(expected);
    const fresh = expected.filter((id) => !before.toString().includes(`"${id}"`)).length;
    expect(merged).toMatchObject({ changed: true, newCount: fresh, count: 200 });
  });

  it('full twice: the second run reports no change and leaves the bytes', async () => {
    const server = await start(flavour, 400);
    await snapshot(server, { count: '150', mode: 'full' });
    const path = join(dir, 'out', 'statuses.json');
    const before = readFileSync(path);
    const mtime = statSync(path).mtimeMs;
    const again = await snapshot(server, { count: '150', mode: 'full' });
    expect(again).toMatchObject({ changed: false, newCount: 0, count: 150 });
    expect(readFileSync(path).equals(before)).toBe(true);
    expect(statSync(path).mtimeMs).toBe(mtime);
    expect(readdirSync(join(dir, 'out'))).toEqual(['statuses.json']);
  });

  it('a failure on page 3 leaves the previous file byte-identical', async () => {
    const server = await start(flavour);
    await snapshot(server, { count: '100', mode: 'full' });
    const path = join(dir, 'out', 'statuses.json');
    const before = readFileSync(path);
    server.addPosts(5);
    server.fault = { at: server.listingRequests + 3, kind: '500' };
    await expect(snapshot(server, { count: '1000', mode: 'full' })).rejects.toThrow(ServerError);
    server.fault = { at: server.listingRequests + 3, kind: 'reset' };
    await expect(snapshot(server, { count: '1000', mode: 'full' })).rejects.toThrow(NetworkError);
    server.fault = undefined;
    expect(readFileSync(path).equals(before)).toBe(true);
    expect(readdirSync(join(dir, 'out'))).toEqual(['statuses.json']);
  });
});

describe('request counts', () => {
  it('Mastodon: two nodeinfo requests, ⌈count / 40⌉ pages and one account lookup', async () => {
    const server = await start('mastodon');
    const result = await snapshot(server, {
      count: '1000',
      mode: 'full',
      platform: 'mastodon',
      visibility: 'direct',
    });
    expect(result.requests).toBe(2 + 25 + 1);
    expect(server.requests.filter((r) => r.path.includes('nodeinfo'))).toHaveLength(2);
    expect(server.requests.every((r) => !('limit' in r.query) || r.query.limit === '40')).toBe(
      true,
    );
    expect(fileIds()).toEqual(expectedIds(server, { count: 1000, visibility: 'direct' }));
  });

  it('Misskey: ⌈count / 100⌉ pages plus one, never a limit above 100', async () => {
    const server = await start('misskey');
    const result = await snapshot(server, {
      count: '1000',
      mode: 'full',
      platform: 'misskey',
      visibility: 'direct',
    });
    expect(result.requests).toBe(10 + 1);
    expect(fileIds()).toEqual(expectedIds(server, { count: 1000, visibility: 'direct' }));
  });

  it('Misskey: media with replies asks without withFiles (both together are refused)', async () => {
    const server = await start('misskey');
    await snapshot(server, { count: '50', mode: 'full', 'only-media': 'true' });
    const notes = server.requests.filter((r) => r.path === '/api/users/notes');
    expect(notes.every((r) => !(r.body?.withReplies === true && r.body?.withFiles === true))).toBe(
      true,
    );
    expect(fileIds()).toEqual(expectedIds(server, { count: 50, onlyMedia: true }));
  });

  it('GoToSocial: follows the cursor, not the Link host, through short pages', async () => {
    const server = await start('gotosocial');
    const result = await snapshot(server, { count: '1100', mode: 'full', visibility: 'unlisted' });
    expect(fileIds()).toEqual(expectedIds(server, { count: 1100, visibility: 'unlisted' }));
    const lists = server.requests.filter((r) => r.path.endsWith('/statuses'));
    expect(lists.every((r) => r.authorized)).toBe(true);
    expect(result.requests).toBe(server.requests.length);
  });

  it('stops at the end of a timeline shorter than count', async () => {
    const server = await start('mastodon', 100);
    const result = await snapshot(server, { count: '1000', mode: 'full', platform: 'mastodon' });
    expect(fileIds()).toEqual(expectedIds(server, { count: 1000 }));
    expect(result.requests).toBeLessThanOrEqual(2 + 1 + 3);
  });

  it('GoToSocial with platform: mastodon: nodeinfo names it, so a full walk costs what auto does', async () => {
    const server = await start('gotosocial', 2400);
    const count = { count: '1000', mode: 'full' };
    const auto = await snapshot(server, { ...count, path: pathIn('auto') });
    server.requests.length = 0;
    const explicit = await snapshot(server, {
      ...count,
      platform: 'mastodon',
      path: pathIn('explicit'),
    });
    expect(explicit.requests).toBe(auto.requests);
    expect(explicit.software?.name).toBe('gotosocial');
    expect(server.requests.filter((r) => r.path.includes('nodeinfo'))).toHaveLength(2);
    const lists = server.requests.filter((r) => r.path.endsWith('/statuses'));
    expect(lists.every((r) => r.query.limit === '100' && r.query.only_public === 'true')).toBe(
      true,
    );
    expect(readFileSync(pathIn('explicit')).equals(readFileSync(pathIn('auto')))).toBe(true);

    // The same walk with the server unknown (nodeinfo refused) takes about twice the requests.
    server.nodeinfo = false;
    server.requests.length = 0;
    const unknown = await snapshot(server, {
      ...count,
      platform: 'mastodon',
      path: pathIn('unknown'),
    });
    expect(unknown.software).toBeUndefined();
    expect(
      server.requests
        .filter((r) => r.path.endsWith('/statuses'))
        .every((r) => r.query.limit === '40'),
    ).toBe(true);
    expect(unknown.requests).toBeGreaterThan(1.8 * explicit.requests);
    expect(readFileSync(pathIn('unknown')).equals(readFileSync(pathIn('auto')))).toBe(true);
  });

  it('platform: mastodon with nodeinfo refused: the walk goes on as for a server not known', async () => {
    const server = await start('pleroma', 300);
    server.nodeinfo = false;
    const log: string[] = [];
    const values: Record<string, string> = {
      instance: server.url,
      'access-token': server.token,
      platform: 'mastodon',
      mode: 'full',
      count: '100',
      path: pathIn('refused'),
    };
    const config = parseSnapshotInputs({ get: (name) => values[name] ?? '', mask: () => {} });
    const http = new Http({ timeoutMs: 5000, maxAttempts: 3, baseDelayMs: 1 });
    const result = await runSnapshot(config, { mask: () => {}, log: (m) => log.push(m), http });
    expect(fileIds(pathIn('refused'))).toEqual(expectedIds(server, { count: 100 }));
    // nodeinfo and /api/v1/instance, each once (detection never retries), then the walk.
    expect(server.requests.slice(0, 2).map((r) => r.path)).toEqual([
      '/.well-known/nodeinfo',
      '/api/v1/instance',
    ]);
    expect(result.requests).toBe(server.requests.length);
    expect(log.join('\n')).toMatch(
      /Could not tell which Mastodon-API server .* runs \(it does not say\)/,
    );
  });
});

describe('incremental and accounts', () => {
  it('keeps only the newest `count` when more than that is new', async () => {
    const server = await start('pleroma', 200);
    await snapshot(server, { count: '50' });
    server.addPosts(300);
    const result = await snapshot(server, { count: '50' });
    expect(fileIds()).toEqual(expectedIds(server, { count: 50 }));
    expect(result).toMatchObject({ count: 50, newCount: 50, changed: true });
    // No detection (the file holds Mastodon-API statuses), so Pleroma's visibility filter is not
    // asked for: every post comes back, is filtered here, and pages hold 40.
    const served = [...server.posts].reverse();
    const fetched = served.findIndex((post) => post.id === fileIds()[49]) + 1;
    expect(result).toMatchObject({ fetched, requests: Math.ceil(fetched / 40) });
  });

  it('a narrower filter removes matching items already in the file', async () => {
    const server = await start('mastodon', 200);
    await snapshot(server, { count: '100', visibility: 'unlisted', platform: 'mastodon' });
    const result = await snapshot(server, { count: '100', platform: 'mastodon' });
    expect(result).toMatchObject({ changed: true, newCount: 0, requests: 1 });
    const kept = new Set(expectedIds(server, { count: 1000 }));
    expect(fileIds().every((id) => kept.has(id))).toBe(true);
  });

  it('a 503 with Retry-After on page 2 is retried and the walk completes', async () => {
    const server = await start('gotosocial');
    server.fault = { at: 2, kind: '503', times: 1 };
    await snapshot(server, { count: '300', mode: 'full' });
    expect(fileIds()).toEqual(expectedIds(server, { count: 300 }));
  });

  it('finds accounts by @user@host, by name and by a Misskey id given bare', async () => {
    const mastodon = await start('mastodon', 60);
    const host = new URL(mastodon.url).host;
    const byName = await snapshot(mastodon, { account: `@alice@${host}`, 'access-token': '' });
    expect(byName.accountId).toBe(mastodon.accountId);
    const misskey = await start('misskey', 60);
    const byId = await snapshot(misskey, { account: misskey.accountId, mode: 'full' });
    expect(byId.accountId).toBe(misskey.accountId);
    const shows = misskey.requests.filter((r) => r.path === '/api/users/show');
    expect(shows.map((r) => Object.keys(r.body ?? {}).sort())).toEqual([
      ['host', 'username'],
      ['userId'],
    ]);
  });

  it('a Pleroma flake id given bare: no name matches, so it is tried as an id', async () => {
    const pleroma = await start('pleroma', 60);
    expect(readAccount(pleroma.accountId)).toEqual({ kind: 'name', username: pleroma.accountId });
    const result = await snapshot(pleroma, { account: pleroma.accountId, mode: 'full' });
    expect(result.accountId).toBe(pleroma.accountId);
    const lookups = pleroma.requests.filter((r) => !r.path.endsWith('/statuses'));
    expect(lookups.map((r) => [r.path, r.query.acct])).toEqual([
      ['/.well-known/nodeinfo', undefined],
      ['/nodeinfo/2.0', undefined],
      ['/api/v1/accounts/lookup', pleroma.accountId],
      [`/api/v1/accounts/${pleroma.accountId}`, undefined],
    ]);
    expect(fileIds()).toEqual(expectedIds(pleroma, { count: 200 }));
    // A name that is neither fails with the name lookup's 404.
    await expect(snapshot(pleroma, { account: 'nobody', mode: 'full' })).rejects.toThrow(
      /GET \/api\/v1\/accounts\/lookup answered HTTP 404/,
    );
  });
});

describe('errors', () => {
  it('GoToSocial without a token: 401 with what to do', async () => {
    const server = await start('gotosocial', 50);
    await expect(
      snapshot(server, { 'access-token': '', account: '@alice', mode: 'full' }),
    ).rejects.toThrow(/GoToSocial lists statuses only for a token/);
  });

  it('a page whose ids are not strings is refused, not written', async () => {
    const server = await start('mastodon', 50);
    server.fault = { at: 1, kind: 'numeric-ids' };
    await expect(snapshot(server, { mode: 'full' })).rejects.toThrow(
      /statuses answered HTTP 200: unexpected answer: item 0 has no string id/,
    );
    expect(readdirSync(join(dir, 'out'))).toEqual([]);
  });

  it('a nested id sent as a number is refused, naming where, never rounded', async () => {
    const server = await start('mastodon', 50);
    server.fault = { at: 1, kind: 'numeric-nested-ids' };
    await expect(snapshot(server, { mode: 'full' })).rejects.toThrow(
      /statuses answered HTTP 200: unexpected answer: item 0 has a number for account\.id; ids must be strings$/,
    );
    server.fault = { at: server.listingRequests + 1, kind: 'huge-number' };
    await expect(snapshot(server, { mode: 'full' })).rejects.toThrow(
      /statuses answered HTTP 200: unexpected answer: item 0 has a number too large to keep exactly at big$/,
    );
    expect(readdirSync(join(dir, 'out'))).toEqual([]);
    // Small numbers elsewhere are kept as sent (Pleroma's conversation_id is one).
    const pleroma = await start('pleroma', 30);
    await snapshot(pleroma, { mode: 'full' });
    const items = JSON.parse(readFileSync(join(dir, 'out', 'statuses.json'), 'utf8')) as {
      id: string;
      pleroma: { conversation_id: unknown };
    }[];
    const byId = new Map(pleroma.posts.map((post) => [post.id, post.index]));
    expect(items.length).toBeGreaterThan(0);
    for (const item of items) expect(item.pleroma.conversation_id).toBe(byId.get(item.id));
  });

  it('a corrupt file is an error unless mode is full', async () => {
    const server = await start('mastodon', 50);
    const path = join(dir, 'statuses.json');
    writeFileSync(path, '[{"id":"1"},');
    await expect(snapshot(server, { path })).rejects.toThrow(InputError);
    expect(server.requests).toEqual([]);
    expect(readFileSync(path, 'utf8')).toBe('[{"id":"1"},');
    await snapshot(server, { path, mode: 'full' });
    expect(fileIds(path)).toEqual(expectedIds(server, { count: 200 }));
  });

  it('bad inputs fail before any request, naming the allowed values', async () => {
    const server = await start('mastodon', 10);
    await expect(snapshot(server, { visibility: 'friends' })).rejects.toThrow(
      /'visibility'.*public, unlisted, private, direct/,
    );
    await expect(snapshot(server, { count: '0' })).rejects.toThrow(/'count'/);
    await expect(snapshot(server, { 'access-token': '' })).rejects.toThrow(/'access-token'/);
    expect(server.requests).toEqual([]);
  });

  it('reads files line by line, and other layouts of a JSON array whole', async () => {
    const path = join(dir, 'items.json');
    const read = async () => {
      const ids: string[] = [];
      for await (const item of readItems(path)) ids.push(item.id as string);
      return ids;
    };
    const items = [{ id: '3', a: [1, { b: 'x,' }] }, { id: '2' }, { id: '1' }];
    writeFileSync(path, `[\n${items.map((item) => JSON.stringify(item)).join(',\n')}\n]\n`);
    expect(await read()).toEqual(['3', '2', '1']);
    writeFileSync(path, JSON.stringify(items, null, 2)); // the old Worker's layout
    expect(await read()).toEqual(['3', '2', '1']);
    writeFileSync(path, JSON.stringify(items));
    expect(await read()).toEqual(['3', '2', '1']);
    writeFileSync(path, '[]');
    expect(await read()).toEqual([]);
    for (const bad of [
      '[\n{"id":"3"}\n{"id":"2"}\n]',
      '[\n{"id":"3"},\n]',
      '[\n{"id":"3"}',
      '',
      '[\n{"id":3}\n]',
    ]) {
      writeFileSync(path, bad);
      await expect(read()).rejects.toThrow(InputError);
    }
    rmSync(path);
    expect(await read()).toEqual([]);
  });

  it('incremental runs extend a file in another layout', async () => {
    const server = await start('mastodon', 300);
    const path = join(dir, 'statuses.json');
    await snapshot(server, { path, count: '100', mode: 'full' });
    writeFileSync(path, JSON.stringify(JSON.parse(readFileSync(path, 'utf8')), null, 2));
    server.addPosts(20);
    const result = await snapshot(server, { path, count: '100', platform: 'mastodon' });
    expect(result.changed).toBe(true);
    expect(fileIds(path)).toEqual(expectedIds(server, { count: 100 }));
  });

  it("takes Misskey's visibility names as the Mastodon levels they match", async () => {
    const server = await start('misskey', 300);
    const pairs = [
      ['home', 'unlisted'],
      ['followers', 'private'],
      ['specified', 'direct'],
    ] as const;
    for (const [misskey, mastodon] of pairs) {
      const config = (visibility: string) =>
        parseSnapshotInputs({
          get: (name) => ({ instance: server.url, account: 'alice', visibility })[name] ?? '',
          mask: () => {},
        });
      expect(config(misskey).visibility).toBe(mastodon);
      expect(config(misskey.toUpperCase()).visibility).toBe(mastodon);
      await snapshot(server, { visibility: misskey, count: '150', path: pathIn(misskey) });
      await snapshot(server, { visibility: mastodon, count: '150', path: pathIn(mastodon) });
      const ids = fileIds(pathIn(misskey));
      expect(ids).toEqual(expectedIds(server, { count: 150, visibility: mastodon }));
      expect(readFileSync(pathIn(misskey)).equals(readFileSync(pathIn(mastodon)))).toBe(true);
    }
  });

  it('an item whose visibility names no level is left out, even a prototype name', () => {
    const options = {
      accountId: 'a',
      visibility: 'direct',
      excludeReplies: false,
      excludeReblogs: false,
      onlyMedia: false,
    } as const;
    for (const visibility of ['constructor', 'toString', 'secret', undefined]) {
      const mastodon = factsOf('mastodon', { id: '1', visibility, account: { id: 'a' } });
      const misskey = factsOf('misskey', { id: '1', visibility, userId: 'a' });
      expect(rejectReason(mastodon, options)).toBe('visibility');
      expect(rejectReason(misskey, options)).toBe('visibility');
    }
    expect(rejectReason(factsOf('misskey', { id: '1', visibility: 'specified' }), options)).toBe(
      undefined,
    );
  });

  it('reads account forms', () => {
    expect(readAccount('')).toEqual({ kind: 'self' });
    expect(readAccount('@alice@Social.Example')).toEqual({
      kind: 'name',
      username: 'alice',
      host: 'social.example',
    });
    expect(readAccount('alice')).toEqual({ kind: 'name', username: 'alice' });
    expect(readAccount('109876543210987654')).toEqual({ kind: 'id', id: '109876543210987654' });
    expect(readAccount('01HZX3M1V6Q8Y2N4K5R7T9W0AB')).toMatchObject({ kind: 'id' });
    expect(() => readAccount('a b')).toThrow(/'account'/);
  });
});

/** A file of its own under the test's folder, for runs whose results are compared. */
function pathIn(name: string): string {
  return join(dir, name, 'statuses.json');
}

describe('incremental runs walk down from the top', () => {
  it('10 000 new posts with count 200: ⌈200 / 40⌉ requests, the newest 200 kept', async () => {
    const server = await start('mastodon', 100);
    const inputs = { count: '200', platform: 'mastodon', visibility: 'direct' };
    await snapshot(server, inputs);
    server.addPosts(10_000);
    const listed = server.listingRequests;
    const result = await snapshot(server, inputs);
    expect(result.requests).toBe(5);
    expect(server.listingRequests - listed).toBe(5);
    expect(fileIds()).toEqual(expectedIds(server, { count: 200, visibility: 'direct' }));
    expect(result).toMatchObject({ count: 200, newCount: 200, changed: true, fetched: 200 });
  });

  it('Misskey: 1 000 new notes with count 250 take ⌈250 / 100⌉ requests', async () => {
    const server = await start('misskey', 300);
    const inputs = { count: '250', platform: 'misskey', visibility: 'direct' };
    await snapshot(server, inputs);
    server.addPosts(1000);
    const result = await snapshot(server, inputs);
    expect(result.requests).toBe(3);
    expect(fileIds()).toEqual(expectedIds(server, { count: 250, visibility: 'direct' }));
    expect(result).toMatchObject({ count: 250, newCount: 250 });
  });

  it('fewer new posts than count: stops at the first post already in the file', async () => {
    const server = await start('mastodon', 300);
    const inputs = { count: '100', platform: 'mastodon', visibility: 'direct' };
    await snapshot(server, inputs);
    server.addPosts(45);
    const result = await snapshot(server, inputs);
    // 45 new and the known one below them: 46 items, two pages of 40.
    expect(result).toMatchObject({ requests: 2, fetched: 46, newCount: 45, count: 100 });
    expect(result.filtered.duplicate).toBe(1);
    expect(fileIds()).toEqual(expectedIds(server, { count: 100, visibility: 'direct' }));
  });

  it('the newest saved posts deleted on the server: stops below the new ones', async () => {
    const server = await start('mastodon', 300);
    const inputs = { count: '100', platform: 'mastodon' };
    await snapshot(server, inputs);
    const before = fileIds();
    for (const id of before.slice(0, 3)) server.removePost(id);
    const added = server.addPosts(4);
    const result = await snapshot(server, inputs);
    // The new posts are looked at, then the first older one ends the walk (it may be a post the
    // file holds, or a private one it never did).
    expect(result).toMatchObject({ requests: 1, fetched: added.length + 1 });
    expect(result.filtered.duplicate).toBe(1);
    const fresh = added
      .filter((post) => post.visibility === 'public')
      .reverse()
      .map((post) => post.id);
    // Deleted posts stay in the file, as before: the snapshot is an archive.
    expect(fileIds()).toEqual([...fresh, ...before].slice(0, 100));
    expect(result.newCount).toBe(fresh.length);
  });

  it('every saved post deleted on the server: one request, not the whole timeline', async () => {
    const server = await start('mastodon', 600);
    const inputs = { count: '100', platform: 'mastodon' };
    await snapshot(server, inputs);
    const saved = fileIds();
    const before = readFileSync(pathIn('out'));
    for (const id of saved) server.removePost(id);
    const listed = server.listingRequests;
    const result = await snapshot(server, inputs);
    // The first post listed is older than the file's newest: the walk ends there.
    expect(result).toMatchObject({ requests: 1, fetched: 1, newCount: 0, changed: false });
    expect(server.listingRequests - listed).toBe(1);
    expect(readFileSync(pathIn('out')).equals(before)).toBe(true);

    const added = server.addPosts(50);
    const next = await snapshot(server, inputs);
    // 50 new posts and the first older one: 51 items, two pages of 40.
    expect(next).toMatchObject({ requests: 2, fetched: 51 });
    const fresh = added
      .filter((post) => post.visibility === 'public')
      .reverse()
      .map((post) => post.id);
    expect(fileIds()).toEqual([...fresh, ...saved].slice(0, 100));
  });

  it('a file of another account: a clear error, the file unchanged', async () => {
    const server = await start('mastodon', 200);
    await snapshot(server, { count: '50', platform: 'mastodon' });
    const before = readFileSync(pathIn('out'));
    server.requests.length = 0;
    const replace = /; set 'mode: full' to replace the file, or choose another 'path'/;
    const byName = snapshot(server, { count: '50', platform: 'mastodon', account: '@bob' });
    await expect(byName).rejects.toThrow(InputError);
    await expect(byName).rejects.toThrow(
      new RegExp(
        `^Input 'account': names account other-account, but \\S+statuses.json holds the posts ` +
          `of account ${server.accountId}${replace.source}$`,
      ),
    );
    // Only the lookup that found bob: no listing, nothing merged.
    expect(server.requests.map((r) => r.path)).toEqual(['/api/v1/accounts/lookup']);
    server.requests.length = 0;
    const byId = snapshot(server, { count: '50', account: '109876543210987654' });
    await expect(byId).rejects.toThrow(/names account 109876543210987654, but/);
    const wrongApi = snapshot(server, { count: '50', platform: 'misskey' });
    await expect(wrongApi).rejects.toThrow(
      new RegExp(`^Input 'platform': is misskey, but \\S+ holds mastodon items${replace.source}$`),
    );
    expect(server.requests).toEqual([]);
    expect(readFileSync(pathIn('out')).equals(before)).toBe(true);
    expect(readdirSync(join(dir, 'out'))).toEqual(['statuses.json']);
  });

  it('a merge copies the saved posts byte for byte, never serialised again', async () => {
    const server = await start('mastodon', 300);
    const inputs = { count: '100', platform: 'mastodon' };
    await snapshot(server, inputs);
    const path = pathIn('out');
    const lines = readFileSync(path, 'utf8').split('\n');
    // A saved post edited by hand: spacing, key order, and a number JSON.parse would round.
    lines[5] = (lines[5] ?? '').replace(/^\{/, '{ "big" : 123456789012345678901 ,');
    writeFileSync(path, lines.join('\n'));
    const items = (text: string) =>
      text
        .split('\n')
        .slice(1, -2)
        .map((line) => line.replace(/,$/, ''));
    const old = items(readFileSync(path, 'utf8'));
    server.addPosts(10);
    const result = await snapshot(server, inputs);
    expect(result).toMatchObject({ changed: true, count: 100 });
    expect(result.newCount).toBeGreaterThan(0);
    const merged = items(readFileSync(path, 'utf8'));
    expect(merged).toHaveLength(100);
    expect(merged.slice(result.newCount)).toEqual(old.slice(0, 100 - result.newCount));
    expect(merged).toContain(old[4]);
    expect(old[4]).toContain('{ "big" : 123456789012345678901 ,"id":');
  });

  it('a failure mid-walk leaves the file byte-identical', async () => {
    const server = await start('gotosocial', 300);
    await snapshot(server, { count: '100' });
    const before = readFileSync(pathIn('out'));
    server.addPosts(400);
    server.fault = { at: server.listingRequests + 2, kind: '500' };
    await expect(snapshot(server, { count: '300' })).rejects.toThrow(ServerError);
    server.fault = undefined;
    expect(readFileSync(pathIn('out')).equals(before)).toBe(true);
    expect(readdirSync(join(dir, 'out'))).toEqual(['statuses.json']);
  });
});

describe.each(['mastodon', 'gotosocial', 'pleroma', 'misskey'] as const)(
  '%s: overlapping pages',
  (flavour) => {
    it('leave no duplicate ids and still exactly `count` items', async () => {
      const server = await start(flavour);
      server.repeat = 3;
      const full = await snapshot(server, { count: '300', mode: 'full' });
      let ids = fileIds();
      expect(new Set(ids).size).toBe(300);
      expect(ids).toEqual(expectedIds(server, { count: 300 }));
      expect(full.filtered.duplicate).toBeGreaterThan(0);

      server.addPosts(500);
      const merged = await snapshot(server, { count: '300' });
      ids = fileIds();
      expect(new Set(ids).size).toBe(300);
      expect(ids).toEqual(expectedIds(server, { count: 300 }));
      expect(merged.filtered.duplicate).toBeGreaterThan(1);
    });
  },
);

describe.each(['pleroma', 'gotosocial'] as const)('%s with platform: mastodon', (flavour) => {
  it('writes the same file as with detection, full and incremental', async () => {
    const server = await start(flavour, 900);
    const inputs = { count: '300', 'exclude-replies': 'true', visibility: 'unlisted' };
    const detected = { ...inputs, path: pathIn('detected') };
    const explicit = { ...inputs, path: pathIn('explicit'), platform: 'mastodon' };
    const expected = () =>
      expectedIds(server, { count: 300, excludeReplies: true, visibility: 'unlisted' });

    await snapshot(server, detected);
    await snapshot(server, explicit);
    expect(fileIds(pathIn('explicit'))).toEqual(expected());
    expect(readFileSync(pathIn('explicit')).equals(readFileSync(pathIn('detected')))).toBe(true);

    server.addPosts(250);
    await snapshot(server, detected);
    const result = await snapshot(server, explicit);
    expect(fileIds(pathIn('explicit'))).toEqual(expected());
    expect(readFileSync(pathIn('explicit')).equals(readFileSync(pathIn('detected')))).toBe(true);
    expect(result.changed).toBe(true);
  });
});

describe('query parameters sent', () => {
  const listings = (server: TimelineServer) =>
    server.requests.filter((r) => r.path.endsWith('/statuses'));

  it('Pleroma: exclude_visibilities[], never only_public or exclude_replies; limit 40', async () => {
    const server = await start('pleroma', 400);
    await snapshot(server, {
      count: '150',
      mode: 'full',
      'exclude-replies': 'true',
      'exclude-reblogs': 'true',
    });
    const sent = listings(server);
    expect(sent.length).toBeGreaterThan(1);
    for (const { query } of sent) {
      expect(query['exclude_visibilities[]']).toEqual(['unlisted', 'private', 'direct']);
      expect(query).toMatchObject({ limit: '40', exclude_reblogs: 'true' });
      expect(query).not.toHaveProperty('only_public');
      expect(query).not.toHaveProperty('exclude_replies');
    }
    expect(sent[0]?.query).not.toHaveProperty('max_id');
    expect(sent.slice(1).every((r) => typeof r.query.max_id === 'string')).toBe(true);

    server.requests.length = 0;
    await snapshot(server, { count: '10', mode: 'full', visibility: 'private' });
    expect(listings(server)[0]?.query['exclude_visibilities[]']).toEqual(['direct']);
    server.requests.length = 0;
    await snapshot(server, { count: '10', mode: 'full', visibility: 'direct' });
    expect(listings(server)[0]?.query).not.toHaveProperty('exclude_visibilities[]');
  });

  it('Mastodon: limit=40 and exclude_replies, nothing Mastodon does not know', async () => {
    const server = await start('mastodon', 300);
    await snapshot(server, { count: '100', mode: 'full', 'exclude-replies': 'true' });
    const sent = listings(server);
    expect(sent.length).toBeGreaterThan(1);
    for (const { query } of sent) {
      expect(query).toMatchObject({ limit: '40', exclude_replies: 'true' });
      expect(query).not.toHaveProperty('only_public');
      expect(query).not.toHaveProperty('exclude_visibilities[]');
    }
  });

  it('GoToSocial: limit=100 and only_public, never exclude_replies', async () => {
    const server = await start('gotosocial', 300);
    await snapshot(server, { count: '100', mode: 'full', 'exclude-replies': 'true' });
    const sent = listings(server);
    expect(sent.length).toBeGreaterThan(0);
    for (const { query } of sent) {
      expect(query).toMatchObject({ limit: '100', only_public: 'true' });
      expect(query).not.toHaveProperty('exclude_replies');
    }
  });

  it('platform: mastodon extending a file (server unknown): limit=40, every filter client-side', async () => {
    const server = await start('pleroma', 300);
    const inputs = { count: '100', platform: 'mastodon', 'exclude-replies': 'true' };
    await snapshot(server, { ...inputs, mode: 'full' });
    server.addPosts(200);
    server.requests.length = 0;
    await snapshot(server, inputs);
    expect(server.requests.some((r) => r.path.includes('nodeinfo'))).toBe(false);
    const sent = listings(server);
    expect(sent.length).toBeGreaterThan(1);
    for (const { query } of sent) {
      expect(query.limit).toBe('40');
      for (const name of ['exclude_replies', 'only_public', 'exclude_visibilities[]']) {
        expect(query).not.toHaveProperty(name);
      }
    }
  });

  it('GoToSocial ignoring only_public: nothing but public posts reaches the file', async () => {
    const server = await start('gotosocial', 600);
    server.fault = { at: 1, kind: 'ignore-only-public' };
    const result = await snapshot(server, { count: '300', mode: 'full' });
    // Asked for public posts only, the server sent private ones and DMs anyway (its flavour
    // leaves out direct messages after the query, so only private ones get through here).
    const lists = server.requests.filter((r) => r.path.endsWith('/statuses'));
    expect(lists.every((r) => r.query.only_public === 'true')).toBe(true);
    expect(result.filtered.visibility).toBeGreaterThan(0);
    const items = JSON.parse(readFileSync(join(dir, 'out', 'statuses.json'), 'utf8')) as {
      visibility: string;
    }[];
    expect(items.map((item) => item.visibility)).toEqual(new Array(300).fill('public'));
    expect(fileIds()).toEqual(expectedIds(server, { count: 300 }));
  });

  it('Misskey: limit ≤ 100, paged down with untilId, both bounds on every request', async () => {
    const server = await start('misskey', 400);
    await snapshot(server, { count: '300', mode: 'full', visibility: 'direct' });
    const bodies = server.requests
      .filter((r) => r.path === '/api/users/notes')
      .map((r) => r.body ?? {});
    expect(bodies).toHaveLength(3);
    const ids = fileIds();
    const ceiling = 'z'.repeat(32);
    expect(bodies.map((body) => body.untilId)).toEqual([ceiling, ids[99], ids[199]]);
    for (const body of bodies) {
      // sinceId below every id: the database answers, newest first (see misskey-snapshot.test).
      expect(body).toMatchObject({ limit: 100, sinceId: '0', withRenotes: true });
    }

    server.addPosts(20);
    server.requests.length = 0;
    await snapshot(server, { count: '300', visibility: 'direct' });
    const incremental = server.requests.filter((r) => r.path === '/api/users/notes');
    expect(incremental).toHaveLength(1);
    expect(incremental[0]?.body).toMatchObject({ sinceId: '0', untilId: ceiling });
  });
});
