/**
 * Snapshots where Mastodon's source decides what a walk sees (issue 10's audit): a reply whose
 * parent was deleted, a suspended account, and the paging throttle a long walk runs into. Full
 * and incremental walks must agree about the same posts; a walk that cannot be right leaves the
 * file alone.
 */
import { afterAll, afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Http } from '../src/http.ts';
import { parseSnapshotInputs } from '../src/snapshot/config.ts';
import { runSnapshot } from '../src/snapshot/run.ts';
import { findLeaks, runAction } from './harness/action.ts';
import { TimelineServer, type Post } from './servers/timeline.ts';

let dir: string;
const servers: TimelineServer[] = [];
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'snapshot-mastodon-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));
afterAll(async () => {
  await Promise.all(servers.map((server) => server.close()));
});

async function start(posts: number): Promise<TimelineServer> {
  const server = await TimelineServer.start({ flavour: 'mastodon', posts });
  servers.push(server);
  return server;
}

function snapshot(server: TimelineServer, file: string, inputs: Record<string, string>) {
  const values: Record<string, string> = {
    instance: server.url,
    'access-token': server.token,
    path: join(dir, file),
    ...inputs,
  };
  const config = parseSnapshotInputs({ get: (name) => values[name] ?? '', mask: () => {} });
  const http = new Http({ timeoutMs: 5000, maxAttempts: 2, baseDelayMs: 1 });
  return runSnapshot(config, { mask: () => {}, log: () => {}, http });
}

const ids = (file: string): string[] =>
  (JSON.parse(readFileSync(join(dir, file), 'utf8')) as { id: string }[]).map((item) => item.id);

/** The newest reply to another account among the newest `within` posts. */
function newestReplyToOther(server: TimelineServer, within: number): Post {
  const post = server.posts
    .slice(-within)
    .reverse()
    .find((p) => p.reply === 'other' && p.visibility === 'public');
  if (!post) throw new Error('no public reply to another account');
  return post;
}

describe('a reply whose parent was deleted (in_reply_to_id null, in_reply_to_account_id kept)', () => {
  it('is a reply to full and incremental walks alike', async () => {
    const server = await start(300);
    const orphan = newestReplyToOther(server, 60);
    server.orphan(orphan.id);
    // Saved while replies were kept: the file holds it.
    await snapshot(server, 'incremental.json', { count: '100', mode: 'full' });
    expect(ids('incremental.json')).toContain(orphan.id);

    // New posts arrive, one of them another orphaned reply.
    server.addPosts(40);
    const fresh = newestReplyToOther(server, 40);
    server.orphan(fresh.id);

    const options = { count: '100', 'exclude-replies': 'true' };
    // The incremental run reads the family from the file and asks the server for no filter.
    await snapshot(server, 'incremental.json', { ...options, mode: 'incremental' });
    // The full run detects Mastodon and asks the server to exclude replies.
    await snapshot(server, 'full.json', { ...options, mode: 'full' });
    const listings = server.requests.filter((r) => r.path.endsWith('/statuses'));
    expect(listings.some((r) => r.query.exclude_replies === 'true')).toBe(true);
    expect(listings.some((r) => r.query.exclude_replies === undefined)).toBe(true);

    expect(ids('incremental.json')).toEqual(ids('full.json'));
    expect(ids('full.json')).not.toContain(orphan.id);
    expect(ids('full.json')).not.toContain(fresh.id);
  });
});

describe('a suspended account', () => {
  it('fails before any listing, by name or as the token’s owner; by id after one empty page; and leaves the file alone', async () => {
    const server = await start(80);
    await snapshot(server, 'statuses.json', { count: '50', mode: 'full' });
    const before = readFileSync(join(dir, 'statuses.json'));
    server.suspended = true;
    server.requests.length = 0;
    await expect(
      snapshot(server, 'statuses.json', { count: '50', mode: 'full', account: '@alice' }),
    ).rejects.toThrow(
      /GET \/api\/v1\/accounts\/lookup answered HTTP 200: @alice is suspended on this server\. Mastodon lists no statuses/,
    );
    await expect(
      snapshot(server, 'statuses.json', { count: '50', mode: 'full', platform: 'mastodon' }),
    ).rejects.toThrow(/verify_credentials answered HTTP 403: Your login is currently disabled/);
    expect(server.requests.filter((r) => r.path.endsWith('/statuses'))).toEqual([]);
    // An id needs no lookup, so the empty list comes first and the account itself tells why.
    await expect(
      snapshot(server, 'statuses.json', { count: '50', mode: 'full', account: server.accountId }),
    ).rejects.toThrow(
      new RegExp(
        `GET /api/v1/accounts/${server.accountId} answered HTTP 200: the account is suspended on this server`,
      ),
    );
    // An incremental run reads an empty answer as nothing new (one request) and keeps the file.
    const incremental = await snapshot(server, 'statuses.json', {
      count: '50',
      account: server.accountId,
    });
    expect([incremental.requests, incremental.changed]).toEqual([1, false]);
    expect(readFileSync(join(dir, 'statuses.json')).equals(before)).toBe(true);
  });
});

describe('Mastodon’s paging throttle', () => {
  it('a long walk waits for the next window instead of failing, and says so', async () => {
    const server = await start(400);
    // 300 per 15 minutes in production; here 3 per 2 s, so a walk of 10 pages meets it.
    server.pagingLimit = { limit: 3, periodSeconds: 2 };
    const path = join(dir, 'statuses.json');
    const run = await runAction(
      'snapshot',
      {
        instance: server.url,
        'access-token': server.token,
        path,
        count: '400',
        visibility: 'direct',
        mode: 'full',
      },
      { timeoutMs: 60_000 },
    );
    expect(findLeaks(run, [server.token])).toEqual([]);
    expect(run.exitCode).toBe(0);
    expect(run.outputs.count).toBe('400');
    expect(ids('statuses.json')).toEqual(
      server.posts
        .map((post) => post.id)
        .reverse()
        .slice(0, 400),
    );
    const throttled = server.requests.filter((r) => r.path.endsWith('/statuses')).length - 10;
    expect(throttled).toBeGreaterThan(0);
    expect(run.stdout).toMatch(
      /GET \/api\/v1\/accounts\/\d+\/statuses answered HTTP 429; waiting \d+ s, as it asks/,
    );
  }, 90_000);
});
