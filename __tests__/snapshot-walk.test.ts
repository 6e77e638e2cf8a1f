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
    expect(ids.some((id) => byId.get(id)?.reply === 'other')).toBe(false);

    rmSync(join(dir, 'out'), { recursive: true });
    await snapshot(server, { count: '100', mode: 'full', 'only-media': 'true' });
    expect(fileIds()).toEqual(expectedIds(server, { count: 100, onlyMedia: true }));
  });

  it('incremental: nothing new is one request and leaves the file untouched', async () => {
    const server = await start(flavour);
    const platform = flavour === 'misskey' ? 'misskey' : 'auto';
    await snapshot(server, { count: '200', platform });
    const path = join(dir, 'out', 'statuses.json');
    const before = readFileSync(path);
    const mtime = statSync(path).mtimeMs;
    const explicit = flavour === 'misskey' ? 'misskey' : 'mastodon';
    const again = await snapshot(server, { count: '200', platform: explicit });
    expect(again).toMatchObject({ changed: false, newCount: 0, requests: 1, count: 200 });
    expect(readFileSync(path).equals(before)).toBe(true);
    expect(statSync(path).mtimeMs).toBe(mtime);

    server.addPosts(60);
    const merged = await snapshot(server, { count: '200', platform });
    const expected = expectedIds(server, { count: 200 });
    expect(fileIds()).toEqual(expected);
    const fresh = expected.filter((id) => !before.toString().includes(`"${id}"`)).length;
    expect(merged).toMatchObject({ changed: true, newCount: fresh, count: 200 });
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
  it('Mastodon: ⌈count / 40⌉ pages plus one account lookup', async () => {
    const server = await start('mastodon');
    const result = await snapshot(server, {
      count: '1000',
      mode: 'full',
      platform: 'mastodon',
      visibility: 'direct',
    });
    expect(result.requests).toBe(25 + 1);
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
    expect(result.requests).toBeLessThanOrEqual(1 + 3);
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
