/**
 * The snapshot action run as the runner runs it: `node dist/snapshot/index.js` with INPUT_*
 * variables, against the loopback timeline server; every log is checked for the token.
 */
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from '@jest/globals';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { parseSnapshotInputs } from '../src/snapshot/config.ts';
import {
  findLeaks,
  NODE24,
  ROOT,
  runAction,
  type ActionRun,
  type RunOptions,
} from './harness/action.ts';
import { TimelineServer, type Post } from './servers/timeline.ts';

let mastodon: TimelineServer;
let misskey: TimelineServer;
let cwd: string;

beforeAll(async () => {
  [mastodon, misskey] = await Promise.all([
    TimelineServer.start({ flavour: 'mastodon' }),
    TimelineServer.start({ flavour: 'misskey' }),
  ]);
});
afterAll(async () => {
  await Promise.all([mastodon.close(), misskey.close()]);
});
beforeEach(() => {
  cwd = mkdtempSync(join(tmpdir(), 'snapshot-action-'));
});
afterEach(() => rmSync(cwd, { recursive: true, force: true }));

async function snapshot(
  server: TimelineServer,
  inputs: Record<string, string>,
  options: Omit<RunOptions, 'cwd'> = {},
): Promise<ActionRun> {
  const run = await runAction(
    'snapshot',
    { instance: server.url, 'access-token': server.token, path: 'site/statuses.json', ...inputs },
    { cwd, ...options },
  );
  expect(findLeaks(run, [server.token])).toEqual([]);
  return run;
}

function file(): Buffer {
  return readFileSync(join(cwd, 'site', 'statuses.json'));
}

/** The job summary's table, fact → value. */
function summary(run: ActionRun): Record<string, string> {
  const rows: Record<string, string> = {};
  for (const [, fact, value] of run.summary.matchAll(/<tr><td>(.*?)<\/td><td>(.*?)<\/td><\/tr>/g)) {
    rows[fact ?? ''] = value ?? '';
  }
  return rows;
}

type Reason = 'not visible enough' | 'replies to others' | 'duplicates or already saved';

/**
 * What a walk down `served` (what the server answers, newest first) must report when it keeps
 * posts that `reject` lets through, until it has `count` or meets one of `known`.
 */
function expectedWalk(
  served: Post[],
  count: number,
  reject: (post: Post) => Reason | undefined,
  known = new Set<string>(),
) {
  const kept: Post[] = [];
  const filtered = new Map<Reason, number>();
  let fetched = 0;
  for (const post of served) {
    fetched++;
    const reason = known.has(post.id) ? 'duplicates or already saved' : reject(post);
    if (reason) filtered.set(reason, (filtered.get(reason) ?? 0) + 1);
    if (known.has(post.id)) break;
    if (!reason) kept.push(post);
    if (kept.length === count) break;
  }
  const order: Reason[] = [
    'not visible enough',
    'replies to others',
    'duplicates or already saved',
  ];
  const text = order
    .filter((reason) => filtered.has(reason))
    .map((reason) => `${filtered.get(reason)} ${reason}`)
    .join(', ');
  return { kept, fetched, filtered: text || 'none' };
}

describe('snapshot action (runner protocol)', () => {
  it('Mastodon: snapshots, then an incremental run with nothing new makes one request', async () => {
    const first = await snapshot(mastodon, { count: '300', platform: 'mastodon' });
    expect(first.exitCode).toBe(0);
    const items = JSON.parse(file().toString()) as { id: string; visibility: string }[];
    expect(items).toHaveLength(300);
    expect(items.every((item) => item.visibility === 'public')).toBe(true);
    expect(first.outputs).toEqual({
      path: 'site/statuses.json',
      count: '300',
      'new-count': '300',
      'newest-id': items[0]?.id,
      changed: 'true',
    });
    expect(first.masks).toContain(mastodon.token);
    // A walk from the top reads nodeinfo first (two requests), even with `platform: mastodon`.
    // Mastodon has no only_public: every visibility comes back and is filtered here.
    const served = [...mastodon.posts].reverse();
    const visible = (post: Post) =>
      post.visibility === 'public' ? undefined : 'not visible enough';
    const walk = expectedWalk(served, 300, visible);
    expect(items.map((item) => item.id)).toEqual(walk.kept.map((post) => post.id));
    expect(summary(first)).toMatchObject({
      Mode: 'incremental',
      Fetched: String(walk.fetched),
      New: '300',
      'Filtered out': walk.filtered,
      'In the file': '300',
      Changed: 'yes',
      Requests: String(2 + 1 + Math.ceil(walk.fetched / 40)),
      Newest: walk.kept[0]?.createdAt,
      Oldest: walk.kept[299]?.createdAt,
    });

    const before = file();
    const listed = mastodon.requests.length;
    const second = await snapshot(mastodon, { count: '300', platform: 'mastodon' });
    expect(second.exitCode).toBe(0);
    expect(second.outputs).toMatchObject({ changed: 'false', 'new-count': '0', count: '300' });
    expect(mastodon.requests.length - listed).toBe(1);
    expect(file().equals(before)).toBe(true);
    const again = expectedWalk(served, 300, visible, new Set(items.map((item) => item.id)));
    expect(summary(second)).toMatchObject({
      Fetched: String(again.fetched),
      New: '0',
      'Filtered out': again.filtered,
      'In the file': '300',
      Changed: 'no',
      Requests: '1',
      Newest: walk.kept[0]?.createdAt,
      Oldest: walk.kept[299]?.createdAt,
    });

    // The README's workflow sets no platform: the file tells the family, so still one request.
    const auto = mastodon.requests.length;
    const third = await snapshot(mastodon, { count: '300' });
    expect(third.exitCode).toBe(0);
    expect(third.outputs).toMatchObject({ changed: 'false', 'new-count': '0', count: '300' });
    expect(mastodon.requests.slice(auto).map((r) => r.path)).toEqual([
      `/api/v1/accounts/${mastodon.accountId}/statuses`,
    ]);
    expect(summary(third)).toMatchObject({ Requests: '1', Changed: 'no' });
    expect(file().equals(before)).toBe(true);
  });

  it('Pleroma through the bundle: detected, threads kept, the summary exact', async () => {
    const pleroma = await TimelineServer.start({ flavour: 'pleroma', posts: 600 });
    try {
      const inputs = { count: '150', 'exclude-replies': 'true' };
      const run = await snapshot(pleroma, inputs);
      expect(run.exitCode).toBe(0);
      // Asked with exclude_visibilities[], Pleroma leaves out all but public and `list` posts;
      // `list` posts and replies to others are filtered here.
      const served = [...pleroma.posts].reverse().filter((post) => {
        return post.visibility === 'public' || post.visibility === 'list';
      });
      const reject = (post: Post): Reason | undefined =>
        post.visibility !== 'public'
          ? 'not visible enough'
          : post.reply === 'other'
            ? 'replies to others'
            : undefined;
      const walk = expectedWalk(served, 150, reject);
      const ids = (JSON.parse(file().toString()) as { id: string }[]).map((item) => item.id);
      expect(ids).toEqual(walk.kept.map((post) => post.id));
      expect(walk.kept.some((post) => post.reply === 'self')).toBe(true);
      expect(walk.filtered).toMatch(/^\d+ not visible enough, \d+ replies to others$/);
      expect(summary(run)).toEqual({
        File: 'site/statuses.json',
        Server: 'pleroma 1.0.0',
        'Account id': pleroma.accountId,
        Mode: 'incremental',
        Fetched: String(walk.fetched),
        New: '150',
        'Filtered out': walk.filtered,
        'In the file': '150',
        Changed: 'yes',
        // nodeinfo (2), verify_credentials, the pages
        Requests: String(3 + Math.ceil(walk.fetched / 40)),
        Newest: walk.kept[0]?.createdAt,
        Oldest: walk.kept[149]?.createdAt,
      });
      const lists = pleroma.requests.filter((r) => r.path.endsWith('/statuses'));
      expect(lists.every((r) => !('exclude_replies' in r.query))).toBe(true);

      pleroma.addPosts(30);
      const known = new Set(ids);
      const next = await snapshot(pleroma, inputs);
      // The file says Mastodon API, so no detection: without knowing it is Pleroma, the walk
      // asks for every visibility and filters here.
      const servedNow = [...pleroma.posts].reverse();
      const fresh = expectedWalk(servedNow, 150, reject, known);
      expect(next.outputs).toMatchObject({
        changed: 'true',
        'new-count': String(fresh.kept.length),
        count: '150',
      });
      expect(summary(next)).toMatchObject({
        Fetched: String(fresh.fetched),
        New: String(fresh.kept.length),
        'Filtered out': fresh.filtered,
        Server: 'mastodon',
        Requests: String(Math.ceil(fresh.fetched / 40)),
        Newest: fresh.kept[0]?.createdAt,
        Oldest: walk.kept[149 - fresh.kept.length]?.createdAt,
      });
    } finally {
      await pleroma.close();
    }
  });

  it('a 500 on page 3 fails the step and leaves the file byte-identical', async () => {
    await snapshot(mastodon, { count: '100', platform: 'mastodon', mode: 'full' });
    const before = file();
    mastodon.fault = { at: mastodon.listingRequests + 3, kind: '500' };
    const run = await snapshot(mastodon, { count: '1000', platform: 'mastodon', mode: 'full' });
    mastodon.fault = undefined;
    expect(run.exitCode).toBe(1);
    expect(run.maskedLog).toMatch(
      /::error::.*GET \/api\/v1\/accounts\/\d+\/statuses answered HTTP 500/,
    );
    expect(run.outputs).toEqual({});
    expect(file().equals(before)).toBe(true);
    expect(readdirSync(join(cwd, 'site'))).toEqual(['statuses.json']);
  });

  it.each(['SIGTERM', 'SIGINT'] as const)(
    '%s mid-walk removes the temporary file and leaves the old one',
    async (signal) => {
      await snapshot(mastodon, { count: '50', platform: 'mastodon', mode: 'full' });
      const before = file();
      mastodon.fault = { at: mastodon.listingRequests + 2, kind: 'stall' };
      const child = spawn(NODE24, [join(ROOT, 'dist', 'snapshot', 'index.js')], {
        cwd,
        env: {
          PATH: process.env.PATH ?? '',
          INPUT_INSTANCE: mastodon.url,
          'INPUT_ACCESS-TOKEN': mastodon.token,
          INPUT_PLATFORM: 'mastodon',
          INPUT_COUNT: '1000',
          INPUT_MODE: 'full',
          INPUT_PATH: 'site/statuses.json',
        },
        stdio: 'ignore',
      });
      const exited = new Promise<NodeJS.Signals | null>((done) =>
        child.on('exit', (_code, killedBy) => done(killedBy)),
      );
      try {
        // Wait (polling, no timing asserted) until the walk hangs on page 2 with its temp file.
        const temp = () => readdirSync(join(cwd, 'site')).some((name) => name.endsWith('.tmp'));
        for (let waited = 0; mastodon.listingRequests < mastodon.fault.at || !temp(); waited++) {
          if (waited > 1000) throw new Error('the walk never reached page 2');
          await new Promise((resolve) => setTimeout(resolve, 10));
        }
        child.kill(signal);
        expect(await exited).toBe(signal);
      } finally {
        mastodon.fault = undefined;
        child.kill('SIGKILL');
      }
      expect(readdirSync(join(cwd, 'site'))).toEqual(['statuses.json']);
      expect(file().equals(before)).toBe(true);
    },
  );

  it('a corrupt file fails the step with what to do', async () => {
    const bad = '{"not":"an array"}';
    await snapshot(mastodon, { count: '10', platform: 'mastodon' });
    writeFileSync(join(cwd, 'site', 'statuses.json'), bad);
    const run = await snapshot(mastodon, { count: '10', platform: 'mastodon' });
    expect(run.exitCode).toBe(1);
    expect(run.maskedLog).toMatch(/is not a JSON array.*mode: full/);
    expect(file().toString()).toBe(bad);
  });

  it('bad input fails before any request, naming the allowed values', async () => {
    const listed = mastodon.requests.length;
    const run = await snapshot(mastodon, { visibility: 'friends' });
    expect(run.exitCode).toBe(1);
    expect(run.maskedLog).toMatch(/Input 'visibility'.*public, unlisted, private, direct/);
    expect(mastodon.requests.length).toBe(listed);
  });

  it('Misskey with platform auto: detects, resolves @user, writes notes', async () => {
    const run = await snapshot(misskey, {
      account: '@alice',
      count: '250',
      'exclude-replies': 'true',
    });
    expect(run.exitCode).toBe(0);
    const notes = JSON.parse(file().toString()) as { userId: string; visibility: string }[];
    expect(notes).toHaveLength(250);
    expect(
      notes.every((note) => note.visibility === 'public' && note.userId === misskey.accountId),
    ).toBe(true);
    expect(run.outputs.count).toBe('250');
    expect(run.summary).toContain('misskey');
  });

  it("Misskey's visibility names through the bundle: followers keeps what private keeps", async () => {
    const run = await snapshot(misskey, { count: '200', visibility: 'followers', mode: 'full' });
    expect(run.exitCode).toBe(0);
    const notes = JSON.parse(file().toString()) as { id: string; visibility: string }[];
    const expected = [...misskey.posts]
      .reverse()
      .filter((post) => ['public', 'unlisted', 'private'].includes(post.visibility))
      .slice(0, 200);
    expect(notes.map((note) => note.id)).toEqual(expected.map((post) => post.id));
    // The server's own names are kept in the file: the input's name only chose the level.
    expect(new Set(notes.map((note) => note.visibility))).toEqual(
      new Set(['public', 'home', 'followers']),
    );
  });

  it('a wrong token fails with the server and status, and stays masked', async () => {
    const wrong = 'wrong-token-value-123456';
    const run = await runAction(
      'snapshot',
      { instance: mastodon.url, 'access-token': wrong, platform: 'mastodon', path: 'x.json' },
      { cwd },
    );
    expect(run.exitCode).toBe(1);
    expect(run.maskedLog).toMatch(/verify_credentials answered HTTP 401/);
    expect(findLeaks(run, [wrong])).toEqual([]);
  });

  it('GoToSocial through the bundle: detected, short pages, Link host ignored', async () => {
    const gts = await TimelineServer.start({ flavour: 'gotosocial' });
    try {
      const run = await snapshot(gts, { count: '400', visibility: 'unlisted' });
      expect(run.exitCode).toBe(0);
      expect(run.outputs).toMatchObject({ count: '400', changed: 'true' });
      expect(run.summary).toContain('gotosocial');
      const items = JSON.parse(file().toString()) as { id: string; visibility: string }[];
      const expected = [...gts.posts]
        .reverse()
        .filter((post) => post.visibility === 'public' || post.visibility === 'unlisted')
        .slice(0, 400);
      expect(items.map((item) => item.id)).toEqual(expected.map((post) => post.id));
      expect(items.map((item) => item.visibility)).toEqual(expected.map((post) => post.visibility));
      expect(new Set(items.map((item) => item.visibility))).toEqual(
        new Set(['public', 'unlisted']),
      );
      // The Link URLs name a host that does not resolve: every page came from the server called.
      const lists = gts.requests.filter((r) => r.path.endsWith('/statuses'));
      expect(lists.length).toBeGreaterThan(4);
      expect(run.outputs['newest-id']).toBe(expected[0]?.id);
    } finally {
      await gts.close();
    }
  });

  it('memory stays flat: 20 000 statuses with a 24 MiB heap, full then merged', async () => {
    // 20 000 of these statuses held as objects take about 44 MiB of heap, so a walk that kept
    // them (or the old file) in memory would die here; a streaming one needs less than 16 MiB.
    // GoToSocial pages hold 100; the loopback leaves out direct messages after its query.
    const big = await TimelineServer.start({ flavour: 'gotosocial', posts: 21_500 });
    const small = { env: { NODE_OPTIONS: '--max-old-space-size=24' }, timeoutMs: 60_000 };
    try {
      const inputs = { count: '20000', visibility: 'direct' };
      const full = await snapshot(big, { ...inputs, mode: 'full' }, small);
      expect(full.exitCode).toBe(0);
      expect(full.outputs).toMatchObject({ count: '20000', changed: 'true' });
      const shown = (posts: Post[]) => posts.filter((post) => post.visibility !== 'direct');
      const ids = () => (JSON.parse(file().toString()) as { id: string }[]).map((item) => item.id);
      const newest = () =>
        shown([...big.posts].reverse())
          .slice(0, 20_000)
          .map((post) => post.id);
      expect(ids()).toEqual(newest());

      const added = shown(big.addPosts(300));
      const merged = await snapshot(big, inputs, small);
      expect(merged.exitCode).toBe(0);
      expect(merged.outputs).toMatchObject({
        count: '20000',
        'new-count': String(added.length),
        changed: 'true',
      });
      expect(ids()).toEqual(newest());
    } finally {
      await big.close();
    }
  });
});

describe('snapshot/action.yml', () => {
  const file = join(ROOT, 'snapshot', 'action.yml');
  const text = readFileSync(file, 'utf8');

  it('runs the bundle through a path relative to its own folder', () => {
    const main = /^\s+main:\s*(\S+)\s*$/m.exec(text)?.[1] ?? '';
    expect(main).toBe('../dist/snapshot/index.js');
    expect(existsSync(resolve(dirname(file), main))).toBe(true);
    expect(text).toMatch(/using: node24/);
  });

  it('declares exactly the inputs the action reads', () => {
    const section = text.slice(text.indexOf('\ninputs:'), text.indexOf('\noutputs:'));
    const declared = [...section.matchAll(/^ {2}([a-z-]+):$/gm)].map((m) => m[1]).sort();
    const read = new Set<string>();
    parseSnapshotInputs({
      get: (name) => {
        read.add(name);
        return name === 'instance' ? 'https://social.example' : name === 'access-token' ? 't' : '';
      },
      mask: () => {},
    });
    expect(declared).toEqual([...read].sort());
  });
});
