/**
 * Snapshots of Misskey and Sharkey notes against the loopback timeline server's users/notes model
 * (servers/misskey-notes.ts: the Redis fanout lists, the database query and each fork's filters,
 * from the servers' source). Full and incremental walks must write the same notes whichever path
 * answers, and nothing the server's own bugs skip may go missing.
 */
import { afterAll, afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ServerError } from '../src/errors.ts';
import { Http } from '../src/http.ts';
import { parseSnapshotInputs } from '../src/snapshot/config.ts';
import { runSnapshot, type SnapshotResult } from '../src/snapshot/run.ts';
import { findLeaks, runAction } from './harness/action.ts';
import { startMisskey } from './servers/misskey.ts';
import type { UserNotesOptions } from './servers/misskey-notes.ts';
import { isCwQuote, TimelineServer, type Post } from './servers/timeline.ts';

const RANK: Record<string, number> = { public: 0, unlisted: 1, private: 2, direct: 3, list: 3 };
const LEVELS = ['public', 'unlisted', 'private', 'direct'];

interface Options {
  count: number;
  visibility?: string;
  excludeReplies?: boolean;
  excludeReblogs?: boolean;
  onlyMedia?: boolean;
}

/** The notes a file must hold, from the server's posts: CW-only quotes are the user's own. */
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
  dir = mkdtempSync(join(tmpdir(), 'misskey-snapshot-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));
afterAll(async () => {
  await Promise.all(servers.map((server) => server.close()));
});

async function start(posts: number, misskey: UserNotesOptions = {}): Promise<TimelineServer> {
  const server = await TimelineServer.start({ flavour: 'misskey', posts, misskey });
  servers.push(server);
  return server;
}

function snapshot(
  server: { url: string; token: string },
  inputs: Record<string, string>,
): Promise<SnapshotResult> {
  const values: Record<string, string> = {
    instance: server.url,
    'access-token': server.token,
    platform: 'misskey',
    path: join(dir, 'full', 'notes.json'),
    ...inputs,
  };
  const config = parseSnapshotInputs({ get: (name) => values[name] ?? '', mask: () => {} });
  const http = new Http({ timeoutMs: 5000, maxAttempts: 3, baseDelayMs: 1 });
  return runSnapshot(config, { mask: () => {}, log: () => {}, http });
}

function fileIds(path: string): string[] {
  return (JSON.parse(readFileSync(path, 'utf8')) as { id: string }[]).map((item) => item.id);
}

/** users/notes asked directly, paging with untilId from `first` (none: from the top). */
async function walkUntilIdOnly(
  server: TimelineServer,
  body: Record<string, unknown>,
  first?: string,
) {
  const ids: string[] = [];
  let untilId: string | undefined = first;
  for (;;) {
    const response = await fetch(`${server.url}/api/users/notes`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${server.token}` },
      body: JSON.stringify({ userId: server.accountId, limit: 100, ...body, untilId }),
    });
    const page = (await response.json()) as { id: string }[];
    if (page.length === 0) return ids;
    ids.push(...page.map((note) => note.id));
    untilId = page.at(-1)?.id;
  }
}

describe('the loopback users/notes itself', () => {
  it('Misskey: merging Redis lists of different depths skips notes (issue #13488)', async () => {
    const server = await start(400, { cacheMax: 30 });
    // Replies to others are 1 in 7 here, so their list of 30 reaches further back than the
    // list of 30 other notes: below the latter's end, only replies come back until the
    // replies run out and the database takes over.
    const seen = new Set(await walkUntilIdOnly(server, { withReplies: true }));
    const skipped = server.posts.filter((post) => !seen.has(post.id));
    expect(skipped.length).toBeGreaterThan(50);
    expect(skipped.every((post) => post.reply !== 'other')).toBe(true);
    // sinceId below every id sends the request to the database, which skips nothing.
    const bounded = await walkUntilIdOnly(
      server,
      { withReplies: true, sinceId: '0' },
      'z'.repeat(32),
    );
    expect(bounded).toEqual(server.posts.map((post) => post.id).reverse());
  });

  it('Misskey: the database path ignores withReplies: false and drops CW-only quotes as renotes', async () => {
    const server = await start(400, { fanout: false });
    const ids = await walkUntilIdOnly(server, { withReplies: false, withRenotes: false });
    const byId = new Map(server.posts.map((post) => [post.id, post]));
    const kept = ids.map((id) => byId.get(id) as Post);
    expect(kept.some((post) => post.reply === 'other')).toBe(true);
    expect(kept.some((post) => post.reblog)).toBe(false);
    // A quote with files is kept; one with only a CW is not.
    expect(kept.some((post) => isCwQuote(post) && !post.media)).toBe(false);
    expect(kept.some((post) => isCwQuote(post) && post.media)).toBe(true);
    // The Redis path keeps CW-only quotes: isQuote counts the CW.
    const fanout = await start(400, { cacheMax: 1000 });
    const fromRedis = await walkUntilIdOnly(fanout, { withRenotes: false });
    const cwOnly = (id: string) => {
      const post = fanout.posts.find((p) => p.id === id) as Post;
      return isCwQuote(post) && !post.media;
    };
    expect(fromRedis.some(cwOnly)).toBe(true);
  });

  it('refuses withReplies with withFiles and a limit of 101, as ajv and users/notes do', async () => {
    const server = await start(10);
    const ask = async (body: Record<string, unknown>) => {
      const response = await fetch(`${server.url}/api/users/notes`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ userId: server.accountId, ...body }),
      });
      return { status: response.status, body: (await response.json()) as unknown };
    };
    expect(await ask({ withReplies: true, withFiles: true })).toMatchObject({
      status: 400,
      body: { error: { code: 'BOTH_WITH_REPLIES_AND_WITH_FILES', kind: 'client' } },
    });
    expect(await ask({ limit: 101 })).toMatchObject({
      status: 400,
      body: { error: { code: 'INVALID_PARAM', info: { reason: 'must be <= 100' } } },
    });
    // No user lookup in users/notes: an unknown user has no notes.
    expect(await ask({ userId: 'nobody0' })).toEqual({ status: 200, body: [] });
  });
});

describe.each([
  ['Misskey, fanout with short lists', { cacheMax: 30 }],
  ['Misskey, fanout off', { fanout: false }],
  ['Sharkey, fanout', { fork: 'sharkey', cacheMax: 30 }],
] as const)('%s', (_name, misskey) => {
  it.each([
    ['every note', {}],
    ['no replies, no renotes', { excludeReplies: true, excludeReblogs: true }],
    ['media only, no replies', { onlyMedia: true, excludeReplies: true }],
  ] as const)('%s: full and incremental write the same notes', async (_label, filters) => {
    const server = await start(500, misskey);
    const inputs: Record<string, string> = { count: '250', visibility: 'unlisted' };
    if ('excludeReplies' in filters) inputs['exclude-replies'] = 'true';
    if ('excludeReblogs' in filters) inputs['exclude-reblogs'] = 'true';
    if ('onlyMedia' in filters) inputs['only-media'] = 'true';
    const expected = () => expectedIds(server, { count: 250, visibility: 'unlisted', ...filters });
    const incremental = join(dir, 'incremental', 'notes.json');

    await snapshot(server, { ...inputs, path: incremental });
    for (const added of [7, 60, 130]) {
      server.addPosts(added);
      await snapshot(server, { ...inputs, path: incremental });
      await snapshot(server, { ...inputs, mode: 'full' });
      expect(fileIds(join(dir, 'full', 'notes.json'))).toEqual(expected());
      expect(fileIds(incremental)).toEqual(expected());
    }
    const kept = new Set(expected());
    // CW-only quotes are the user's own posts: kept with exclude-reblogs too.
    expect(server.posts.some((post) => isCwQuote(post) && kept.has(post.id))).toBe(true);
  });
});

describe('the bundle, as the runner runs it', () => {
  it('writes every note where Misskey would skip some, and reports the count', async () => {
    const server = await start(600, { cacheMax: 30 });
    const run = await runAction(
      'snapshot',
      {
        instance: server.url,
        'access-token': server.token,
        path: 'notes.json',
        count: '400',
        visibility: 'direct',
      },
      { cwd: dir },
    );
    expect(run.exitCode).toBe(0);
    expect(findLeaks(run, [server.token])).toEqual([]);
    const expected = expectedIds(server, { count: 400, visibility: 'direct' });
    expect(fileIds(join(dir, 'notes.json'))).toEqual(expected);
    expect(run.outputs).toMatchObject({ count: '400', 'newest-id': expected[0] });
  });
});

describe('Sharkey', () => {
  it("waits out users/notes' rate limit (20 at once, then 4 a second) and finishes the walk", async () => {
    const server = await start(2600, { fork: 'sharkey' });
    server.sharkeyClock = 'paced';
    const result = await snapshot(server, { count: '2300', mode: 'full', visibility: 'direct' });
    expect(fileIds(join(dir, 'full', 'notes.json'))).toEqual(
      expectedIds(server, { count: 2300, visibility: 'direct' }),
    );
    // 23 pages: the 21st meets the full bucket (429, Retry-After: 1), is sent again after the
    // second it was told to wait, and the walk goes on.
    const answers = server.sharkeyAnswers;
    expect(answers.slice(0, 20).every((answer) => !answer.blocked)).toBe(true);
    expect(answers[20]?.blocked).toBe(true);
    answers.forEach((answer, index) => {
      const next = answers[index + 1];
      if (answer.blocked && next) expect(next.at - answer.at).toBeGreaterThanOrEqual(1000);
    });
    expect(answers.filter((answer) => !answer.blocked)).toHaveLength(23);
    expect(result.requests).toBe(answers.length + 1);
  });
});

describe('accounts', () => {
  it('a name with "_" that no user has fails with NO_SUCH_USER, not tried as an id', async () => {
    const server = await start(10);
    const failure = snapshot(server, { account: 'no_such_user', mode: 'full' });
    await expect(failure).rejects.toThrow(
      /POST \/api\/users\/show answered HTTP 404 \(NO_SUCH_USER\)/,
    );
    const shows = server.requests.filter((r) => r.path === '/api/users/show');
    expect(shows).toHaveLength(1);
    // A bare value that can be an id is still tried as one.
    await snapshot(server, { account: server.accountId, mode: 'full' });
    expect(server.requests.filter((r) => r.path === '/api/users/show')).toHaveLength(3);
  });

  it('the token owner needs read:account; without it the error says to set account', async () => {
    const misskey = await startMisskey();
    try {
      const token = misskey.issueToken('writer', ['write:notes']);
      const failure = snapshot({ url: misskey.url, token }, { mode: 'full' });
      await expect(failure).rejects.toThrow(ServerError);
      await expect(snapshot({ url: misskey.url, token }, { mode: 'full' })).rejects.toThrow(
        /POST \/api\/i answered HTTP 403 \(PERMISSION_DENIED\).*set 'account' to @user/,
      );
    } finally {
      await misskey.close();
    }
  });
});
