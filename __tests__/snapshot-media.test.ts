/**
 * The media mirror as the runner runs it: `node dist/snapshot/index.js` with `media-path`, against
 * the loopback timeline of each server family, its media on a separate origin (servers/media.ts).
 * Every test checks the two promises that matter to a site built from the files: each `local`
 * path names a whole file with the server's bytes, and the folder holds nothing else of the
 * mirror's.
 */
import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { spawn } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { findLeaks, NODE24, ROOT, runAction, type ActionRun } from './harness/action.ts';
import { MediaLibrary, MediaServer } from './servers/media.ts';
import { startConnectProxy, startTlsFront } from './servers/tls.ts';
import { TimelineServer, type Flavour, type Post } from './servers/timeline.ts';

type Json = Record<string, unknown>;
const MANIFEST = '.fedi-token-media.json';

interface Rig {
  flavour: Flavour;
  cdn: MediaServer;
  library: MediaLibrary;
  timeline: TimelineServer;
}

let cwd: string;
const rigs: Rig[] = [];

async function rig(flavour: Flavour, posts = 150): Promise<Rig> {
  const cdn = await MediaServer.start();
  const library = new MediaLibrary(cdn);
  const timeline = await TimelineServer.start({ flavour, posts, media: library });
  const made = { flavour, cdn, library, timeline };
  rigs.push(made);
  return made;
}

beforeEach(() => {
  cwd = mkdtempSync(join(tmpdir(), 'snapshot-media-'));
});
afterEach(async () => {
  await Promise.all(rigs.splice(0).flatMap((r) => [r.timeline.close(), r.cdn.close()]));
  rmSync(cwd, { recursive: true, force: true });
});

async function snapshot(
  r: Rig,
  inputs: Record<string, string> = {},
  env: Record<string, string> = {},
): Promise<ActionRun> {
  const run = await runAction(
    'snapshot',
    {
      instance: r.timeline.url,
      'access-token': r.timeline.token,
      path: 'site/statuses.json',
      'media-path': 'site/media',
      count: '30',
      ...inputs,
    },
    { cwd, env },
  );
  expect(findLeaks(run, [r.timeline.token])).toEqual([]);
  return run;
}

function items(path = 'site/statuses.json'): Json[] {
  return JSON.parse(readFileSync(join(cwd, path), 'utf8')) as Json[];
}

/** Every attachment object of the file, boosts' and renotes' included. */
function attachments(list: Json[]): Json[] {
  return list.flatMap((item) => {
    const own = (item.media_attachments ?? item.files ?? []) as Json[];
    const inner = (item.reblog ?? item.renote) as Json | null | undefined;
    return [...own, ...((inner?.media_attachments ?? inner?.files ?? []) as Json[])];
  });
}

function originalUrl(a: Json): string {
  return a.url as string;
}

function previewUrl(a: Json): string | null {
  return (a.preview_url ?? a.thumbnailUrl ?? null) as string | null;
}

/** The mirror's files in the media folder (the record left out). */
function mirrored(): string[] {
  const folder = join(cwd, 'site', 'media');
  return existsSync(folder)
    ? readdirSync(folder)
        .filter((name) => name !== MANIFEST)
        .sort()
    : [];
}

/** The bytes the media server holds today for an attachment URL. */
function served(r: Rig, url: string): Buffer {
  const stored = r.library.at(url);
  const file = stored && r.cdn.file(stored.path);
  if (!file) throw new Error(`no media stored for ${url}`);
  return file.body;
}

/**
 * The JSON's promise: every `local` path names a whole file with the server's bytes, and the
 * folder holds exactly the files named. Returns the local paths, original and preview.
 */
function checkMirror(r: Rig, list = items()): { original: string[]; preview: string[] } {
  const named = { original: [] as string[], preview: [] as string[] };
  for (const a of attachments(list)) {
    const local = a.local as { original?: string; preview?: string } | undefined;
    if (!local) continue;
    expect(Object.keys(local).every((key) => key === 'original' || key === 'preview')).toBe(true);
    for (const variant of ['original', 'preview'] as const) {
      const path = local[variant];
      if (!path) continue;
      expect(path).toMatch(/^media\/[0-9a-f]{32}\.[a-z0-9]+$/);
      const url = variant === 'original' ? originalUrl(a) : (previewUrl(a) as string);
      expect(readFileSync(join(cwd, 'site', path)).equals(served(r, url))).toBe(true);
      named[variant].push(path);
    }
  }
  const referenced = new Set([...named.original, ...named.preview].map((p) => p.slice(6)));
  expect(mirrored()).toEqual([...referenced].sort());
  return named;
}

function warnings(run: ActionRun): string[] {
  return run.stdout.split('\n').filter((line) => line.startsWith('::warning::'));
}

function summaryRows(run: ActionRun): Record<string, string> {
  const rows: Record<string, string> = {};
  for (const [, fact, value] of run.summary.matchAll(/<tr><td>(.*?)<\/td><td>(.*?)<\/td><\/tr>/g)) {
    rows[fact ?? ''] = value ?? '';
  }
  return rows;
}

/** The posts a run keeps: the newest `count` public ones (no other filter set). */
function kept(r: Rig, count = 30): Post[] {
  return [...r.timeline.posts]
    .reverse()
    .filter((post) => post.visibility === 'public')
    .slice(0, count);
}

function without(item: Json): Json {
  const copy = structuredClone(item);
  for (const a of attachments([copy])) delete a.local;
  return copy;
}

function diskBytes(): number {
  return mirrored().reduce((sum, name) => sum + statSync(join(cwd, 'site', 'media', name)).size, 0);
}

describe('media mirror (runner protocol)', () => {
  it('Mastodon: mirrors from a separate origin with no credential, leaves server fields as they were, and costs nothing when nothing is new', async () => {
    const r = await rig('mastodon');
    const first = await snapshot(r, { 'media-size': 'both' });
    expect(first.exitCode).toBe(0);
    const list = items();
    const named = checkMirror(r, list);
    // Everything the mirror keeps is inside media-path: nothing else beside the JSON.
    expect(readdirSync(join(cwd, 'site')).sort()).toEqual(['media', 'statuses.json']);
    const all = attachments(list);
    expect(all).toHaveLength(
      kept(r)
        .filter((post) => post.media)
        .flatMap((post) => r.library.attachments(post, 'mastodon')).length,
    );
    // Every picture and video has its original and its preview; a sound has no preview.
    for (const a of all) {
      const local = a.local as Json;
      expect(Object.keys(local)).toEqual(a.preview_url ? ['original', 'preview'] : ['original']);
    }
    expect(new Set(all.map((a) => a.type))).toEqual(new Set(['image', 'gifv', 'audio']));
    const files = mirrored();
    expect(first.outputs).toMatchObject({
      'media-count': String(files.length),
      'media-new': String(files.length),
      'media-bytes': String(diskBytes()),
      'media-failed': '0',
      changed: 'true',
    });
    expect(named.original.length + named.preview.length).toBe(files.length);
    // One request per file, each with nothing that could identify the user.
    expect(r.cdn.requests).toHaveLength(files.length);
    for (const request of r.cdn.requests) {
      expect(request.headers.authorization).toBeUndefined();
      expect(request.headers.cookie).toBeUndefined();
      expect(request.headers['user-agent']).toMatch(/^fedi-token\//);
    }

    // The server's fields are what a snapshot without media writes. A media option given without
    // media-path is named in a warning; the ones left at their defaults are not.
    const plain = await snapshot(r, {
      path: 'plain.json',
      'media-path': '',
      'media-types': 'image',
    });
    expect(plain.exitCode).toBe(0);
    expect(plain.stdout.split('\n').filter((line) => line.startsWith('::warning::'))).toEqual([
      "::warning::Input 'media-types' has no effect without 'media-path'; it was ignored",
    ]);
    expect(list.map(without)).toEqual(items('plain.json'));

    // The job summary: the new posts' previews (none behind a content warning), then the counts.
    const previews = kept(r)
      .filter((post) => post.media && !r.library.contentWarning(post))
      .flatMap((post) => r.library.attachments(post, 'mastodon'))
      .flatMap((a) => (a.preview ? [a.preview.url] : []))
      .slice(0, 12);
    expect([...first.summary.matchAll(/<img src="([^"]+)"/g)].map((m) => m[1])).toEqual(previews);
    expect(first.summary.indexOf('<img')).toBeLessThan(first.summary.indexOf('<table'));
    expect(summaryRows(first)).toMatchObject({
      'Media new': expect.stringMatching(new RegExp(`^${files.length} \\(`)),
      'Media failed': '0',
      'Media removed': '0',
      'Media requests': String(files.length),
    });

    // Nothing new: one listing request, no media request, the file untouched.
    const before = readFileSync(join(cwd, 'site', 'statuses.json'));
    const second = await snapshot(r, { 'media-size': 'both' });
    expect(second.exitCode).toBe(0);
    expect(r.cdn.requests).toHaveLength(files.length);
    expect(second.outputs).toMatchObject({
      changed: 'false',
      'media-new': '0',
      'media-count': String(files.length),
    });
    expect(readFileSync(join(cwd, 'site', 'statuses.json')).equals(before)).toBe(true);
    expect(second.summary).not.toContain('<img');

    // New posts: only their files are fetched; the posts that fell off the end take theirs along.
    const old = new Set(kept(r).map((post) => post.id));
    r.timeline.addPosts(25);
    const fresh = kept(r).filter((post) => !old.has(post.id));
    const wanted = fresh
      .filter((post) => post.media)
      .flatMap((post) => r.library.attachments(post, 'mastodon'))
      .flatMap((a) => [a.original.path, ...(a.preview ? [a.preview.path] : [])]);
    expect(wanted.length).toBeGreaterThan(0);
    const seen = r.cdn.requests.length;
    const third = await snapshot(r, { 'media-size': 'both' });
    expect(third.exitCode).toBe(0);
    expect(
      r.cdn.requests
        .slice(seen)
        .map((request) => request.path)
        .sort(),
    ).toEqual(wanted.sort());
    checkMirror(r);
    expect(Number(third.outputs['media-new'])).toBe(wanted.length);
    expect(Number(summaryRows(third)['Media removed'])).toBeGreaterThan(0);
  });

  it("GoToSocial: its fileserver's redirect to a presigned bucket URL is followed, and neither gets the token", async () => {
    const r = await rig('gotosocial');
    const run = await snapshot(r, { 'media-size': 'both' });
    expect(run.exitCode).toBe(0);
    const named = checkMirror(r);
    expect(named.original.length).toBeGreaterThan(4);
    const fileserver = r.timeline.requests.filter((request) =>
      request.path.startsWith('/fileserver/'),
    );
    expect(fileserver).toHaveLength(mirrored().length);
    expect(fileserver.every((request) => !request.authorized)).toBe(true);
    expect(r.cdn.requests).toHaveLength(mirrored().length);
    expect(r.cdn.requests.every((request) => request.headers.authorization === undefined)).toBe(
      true,
    );
    // The JSON keeps the fileserver URLs; the presigned ones were never written anywhere.
    expect(attachments(items()).every((a) => String(a.url).startsWith(r.timeline.url))).toBe(true);
    expect(summaryRows(run)['Media requests']).toBe(String(2 * mirrored().length));
  });

  it('Pleroma: preview_url is the original, so a picture has one file for both; a video or a sound gets no picture preview', async () => {
    const r = await rig('pleroma');
    const run = await snapshot(r, { 'media-size': 'both' });
    expect(run.exitCode).toBe(0);
    checkMirror(r);
    const all = attachments(items());
    for (const a of all) {
      const local = a.local as { original: string; preview?: string };
      if (a.type === 'image') expect(local.preview).toBe(local.original);
      else expect(local).toEqual({ original: expect.any(String) });
    }
    expect(mirrored()).toHaveLength(new Set(all.map((a) => a.url)).size);
    expect(r.cdn.requests).toHaveLength(mirrored().length);
  });

  it("Misskey: a drive file's md5 and size are checked, except on a webpublic rendition; a mismatch leaves no local copy until the bytes are right", async () => {
    const r = await rig('misskey');
    // Load the library's files: a plain run lists the notes.
    await snapshot(r, { path: 'plain.json', 'media-path': '', count: '60' });
    const notes = items('plain.json');
    const files = attachments(notes);
    const webpublic = files.filter((f) => String(f.url).includes('/webpublic-'));
    expect(webpublic.length).toBeGreaterThan(0);
    const pictures = files.filter((f) => f.type === 'image/png' && !webpublic.includes(f));
    const [sameSize, otherSize] = pictures;
    if (!sameSize || !otherSize) throw new Error('the timeline has too few pictures');
    const swap = (f: Json, body: Buffer) => {
      const stored = r.library.at(String(f.url));
      if (!stored) throw new Error('unknown file');
      r.cdn.put(stored.path, { body, type: 'image/png' });
      return stored;
    };
    const a = swap(sameSize, Buffer.from(served(r, String(sameSize.url)).map((byte) => byte ^ 1)));
    const b = swap(otherSize, Buffer.concat([served(r, String(otherSize.url)), Buffer.from('x')]));

    const run = await snapshot(r, { count: '60' });
    expect(run.exitCode).toBe(0);
    const broken = new Set([sameSize.id, otherSize.id]);
    const mirroredFiles = attachments(items());
    expect(mirroredFiles.filter((f) => !f.local).map((f) => f.id)).toEqual(
      mirroredFiles.filter((f) => broken.has(f.id)).map((f) => f.id),
    );
    // The webpublic ones were kept although their bytes are not the stated upload's.
    expect(
      mirroredFiles.filter((f) => String(f.url).includes('/webpublic-')).every((f) => f.local),
    ).toBe(true);
    const warned = warnings(run).join('\n');
    expect(warnings(run)).toHaveLength(2);
    expect(warned).toContain("the file's MD5 is not the drive file's");
    expect(warned).toContain(
      `the file is ${Number(otherSize.size) + 1} bytes, but the drive file says ${otherSize.size}`,
    );
    expect(run.outputs['media-failed']).toBe('2');
    checkMirror(r);
    // The server-given name never became a path.
    expect(existsSync(join(cwd, 'escape.png'))).toBe(false);
    expect(existsSync(join(cwd, 'site', 'escape.png'))).toBe(false);

    // Fixed on the server: the next run fetches exactly those two.
    r.cdn.put(a.path, a.file);
    r.cdn.put(b.path, b.file);
    const seen = r.cdn.requests.length;
    const next = await snapshot(r, { count: '60' });
    expect(next.outputs).toMatchObject({ 'media-new': '2', 'media-failed': '0', changed: 'true' });
    expect(
      r.cdn.requests
        .slice(seen)
        .map((request) => request.path)
        .sort(),
    ).toEqual([a.path, b.path].sort());
    expect(attachments(items()).every((f) => f.local)).toBe(true);
    checkMirror(r);
  });

  it('a 404, a file over the cap and a wrong content type leave those attachments without a local copy, warn, and are tried again on the next run', async () => {
    const r = await rig('mastodon');
    const pictures = kept(r)
      .filter((post) => post.media)
      .flatMap((post) => r.library.attachments(post, 'mastodon'))
      .filter((a) => a.kind === 'image');
    const [gone, big, html] = pictures;
    if (!gone || !big || !html) throw new Error('too few pictures');
    r.cdn.delete(gone.original.path);
    r.cdn.fault(big.original.path, {
      kind: 'oversized',
      bytes: 16 * 1024 * 1024,
      contentLength: false,
    });
    r.cdn.fault(html.original.path, { kind: 'type', type: 'text/html' });

    const run = await snapshot(r, { 'media-max-bytes': '64k' });
    expect(run.exitCode).toBe(0);
    const lines = warnings(run);
    expect(lines).toHaveLength(3);
    expect(lines.join('\n')).toContain(`${gone.original.path} answered HTTP 404`);
    expect(lines.join('\n')).toContain('larger than the 64 KiB cap (media-max-bytes)');
    expect(lines.join('\n')).toContain('the content type is "text/html"');
    expect(
      lines.every((line) => /It has no local copy; the next run tries again$/.test(line)),
    ).toBe(true);
    const failedIds = new Set([gone.id, big.id, html.id]);
    for (const a of attachments(items())) {
      expect(a.local === undefined).toBe(failedIds.has(String(a.id)));
    }
    expect(run.outputs['media-failed']).toBe('3');
    // Failures for good are not retried within the run.
    for (const path of [gone.original.path, big.original.path, html.original.path]) {
      expect(r.cdn.served(path)).toHaveLength(1);
    }
    const cut = r.cdn.served(big.original.path)[0];
    expect(cut?.abandoned).toBe(true);
    expect(cut?.sent).toBeLessThan(8 * 1024 * 1024);
    checkMirror(r);

    r.cdn.clearFaults();
    r.cdn.put(gone.original.path, gone.original.file);
    const next = await snapshot(r, { 'media-max-bytes': '64k' });
    expect(next.outputs).toMatchObject({ 'media-new': '3', 'media-failed': '0' });
    expect(warnings(next)).toEqual([]);
    expect(attachments(items()).every((a) => a.local)).toBe(true);
    checkMirror(r);
  });

  it('downloads four files at a time, never more', async () => {
    const r = await rig('mastodon');
    r.cdn.latencyMs = 100;
    const run = await snapshot(r, { 'media-size': 'both', count: '60' });
    expect(run.exitCode).toBe(0);
    expect(r.cdn.requests.length).toBeGreaterThan(12);
    expect(r.cdn.maxInFlight).toBe(4);
    checkMirror(r);
  });

  it('a 503 with Retry-After and a reset mid-body are retried within the run', async () => {
    const r = await rig('mastodon');
    const [first, second] = kept(r)
      .filter((post) => post.media)
      .flatMap((post) => r.library.attachments(post, 'mastodon'));
    if (!first || !second) throw new Error('too few attachments');
    r.cdn.fault(first.original.path, { kind: 'status', status: 503, retryAfter: '0' }, 1);
    r.cdn.fault(second.original.path, { kind: 'reset' }, 1);
    const run = await snapshot(r);
    expect(run.exitCode).toBe(0);
    expect(warnings(run)).toEqual([]);
    expect(r.cdn.served(first.original.path)).toHaveLength(2);
    expect(r.cdn.served(second.original.path)).toHaveLength(2);
    expect(attachments(items()).every((a) => a.local)).toBe(true);
    checkMirror(r);
  });

  it('https: media through the proxy, a redirect to another https origin followed, one to plain http refused', async () => {
    const cdn = await MediaServer.start({ publicUrl: 'https://cdn.example' });
    const other = await MediaServer.start({ publicUrl: 'https://media2.example' });
    const library = new MediaLibrary(cdn);
    const timeline = await TimelineServer.start({
      flavour: 'mastodon',
      posts: 150,
      media: library,
    });
    const front = await startTlsFront({
      'social.example': timeline.url,
      'cdn.example': cdn.url,
      'media2.example': other.url,
    });
    const proxy = await startConnectProxy(front);
    try {
      const r: Rig = { flavour: 'mastodon', cdn, library, timeline };
      const [moved, downgraded] = kept(r)
        .filter((post) => post.media)
        .flatMap((post) => library.attachments(post, 'mastodon'));
      if (!moved || !downgraded) throw new Error('too few attachments');
      other.put('/elsewhere.png', moved.original.file);
      cdn.fault(moved.original.path, {
        kind: 'redirect',
        location: 'https://media2.example/elsewhere.png',
      });
      cdn.fault(downgraded.original.path, {
        kind: 'redirect',
        location: `${cdn.url}${downgraded.original.path}`,
      });
      const run = await runAction(
        'snapshot',
        {
          instance: 'https://social.example',
          'access-token': timeline.token,
          platform: 'mastodon',
          path: 'site/statuses.json',
          'media-path': 'site/media',
          count: '30',
        },
        { cwd, env: { https_proxy: proxy.url, NODE_EXTRA_CA_CERTS: front.certPath } },
      );
      expect(run.exitCode).toBe(0);
      expect(warnings(run)).toEqual([
        `::warning::Media of post ${kept(r).find((post) => library.attachments(post, 'mastodon').includes(downgraded))?.id}: https://cdn.example GET ${downgraded.original.path}: refused a redirect from https to http. It has no local copy; the next run tries again`,
      ]);
      const all = attachments(items());
      expect(all.filter((a) => !a.local).map((a) => a.id)).toEqual([downgraded.id]);
      const local = all.find((a) => a.id === moved.id)?.local as { original: string };
      expect(readFileSync(join(cwd, 'site', local.original)).equals(moved.original.file.body)).toBe(
        true,
      );
      expect(new Set(proxy.connects)).toEqual(
        new Set(['social.example:443', 'cdn.example:443', 'media2.example:443']),
      );
      // Nothing reached the plain-http address, and no media host saw a credential.
      expect(cdn.requests.every((request) => request.headers.host === 'cdn.example')).toBe(true);
      expect(other.requests).toHaveLength(1);
      for (const request of [...cdn.requests, ...other.requests]) {
        expect(request.headers.authorization).toBeUndefined();
      }
    } finally {
      await Promise.all([
        proxy.close(),
        front.close(),
        timeline.close(),
        cdn.close(),
        other.close(),
      ]);
    }
  });

  it.each(['SIGKILL', 'SIGTERM'] as const)(
    '%s mid-download: the JSON points only at whole files, and the next run finishes without fetching them again',
    async (signal) => {
      const r = await rig('mastodon');
      expect((await snapshot(r)).exitCode).toBe(0);
      const old = new Set(kept(r).map((post) => post.id));
      r.timeline.addPosts(30);
      const fresh = kept(r)
        .filter((post) => !old.has(post.id) && post.media)
        .flatMap((post) => r.library.attachments(post, 'mastodon'));
      const stalled = fresh[fresh.length - 1];
      if (!stalled || fresh.length < 3) throw new Error('too few new attachments');
      r.cdn.fault(stalled.original.path, { kind: 'stall' });
      const whole = () => mirrored().filter((name) => !name.endsWith('.tmp'));
      const before = whole().length;
      const child = spawn(NODE24, [join(ROOT, 'dist', 'snapshot', 'index.js')], {
        cwd,
        env: {
          PATH: process.env.PATH ?? '',
          INPUT_INSTANCE: r.timeline.url,
          'INPUT_ACCESS-TOKEN': r.timeline.token,
          INPUT_COUNT: '30',
          INPUT_PATH: 'site/statuses.json',
          'INPUT_MEDIA-PATH': 'site/media',
        },
        stdio: 'ignore',
      });
      const exited = new Promise<NodeJS.Signals | null>((done) =>
        child.on('exit', (_code, killedBy) => done(killedBy)),
      );
      try {
        // Wait (polling, no timing asserted) until every new file but the stalled one is whole.
        const done = () =>
          r.cdn.served(stalled.original.path).length > 0 &&
          whole().length === before + fresh.length - 1;
        for (let waited = 0; !done(); waited++) {
          if (waited > 1500) throw new Error('the downloads never finished');
          await new Promise((resolve) => setTimeout(resolve, 10));
        }
        child.kill(signal);
        expect(await exited).toBe(signal);
      } finally {
        child.kill('SIGKILL');
      }
      // The JSON is whole and names only whole files (the walk's JSON, without the new media).
      const list = items();
      expect(list.map((item) => item.id)).toEqual(kept(r).map((post) => post.id));
      const referenced = new Set<string>();
      for (const a of attachments(list)) {
        const path = (a.local as { original?: string } | undefined)?.original;
        if (!path) continue;
        referenced.add(path.slice(6));
        expect(readFileSync(join(cwd, 'site', path)).equals(served(r, originalUrl(a)))).toBe(true);
      }
      const temps = mirrored().filter((name) => name.endsWith('.tmp'));
      if (signal === 'SIGTERM') expect(temps).toEqual([]);
      else expect(temps.length).toBeGreaterThan(0);
      // Nothing is removed before the JSON is final: the old files are all still there.
      expect(whole().length).toBe(before + fresh.length - 1);
      expect([...referenced].every((name) => whole().includes(name))).toBe(true);

      r.cdn.clearFaults();
      const seen = r.cdn.requests.length;
      const next = await snapshot(r);
      expect(next.exitCode).toBe(0);
      checkMirror(r);
      expect(attachments(items()).every((a) => a.local)).toBe(true);
      // The files that were whole before the kill were not fetched again.
      const refetched = r.cdn.requests.slice(seen).map((request) => request.path);
      expect(refetched).toEqual([stalled.original.path]);
    },
  );

  it('the folder mirrors the JSON exactly: removed posts, a narrower media-size or media-types take their files along; files the action did not write stay', async () => {
    const r = await rig('mastodon');
    mkdirSync(join(cwd, 'site', 'media'), { recursive: true });
    const foreign = { 'notes.txt': 'mine', '0123456789abcdef0123456789abcdef.png': 'also mine' };
    for (const [name, text] of Object.entries(foreign)) {
      writeFileSync(join(cwd, 'site', 'media', name), text);
    }
    const keepForeign = (names: string[]) => names.filter((name) => !(name in foreign));
    const check = () => {
      for (const [name, text] of Object.entries(foreign)) {
        expect(readFileSync(join(cwd, 'site', 'media', name), 'utf8')).toBe(text);
      }
    };
    const mirrorOnly = () => {
      const list = items();
      const named = new Set(
        attachments(list).flatMap((a) => Object.values((a.local ?? {}) as Record<string, string>)),
      );
      expect(keepForeign(mirrored())).toEqual([...named].map((path) => path.slice(6)).sort());
    };

    expect((await snapshot(r, { 'media-size': 'both' })).exitCode).toBe(0);
    mirrorOnly();
    check();

    // The user deletes a post: a full run drops it and its files.
    const victim = kept(r).find(
      (post) => post.media && r.library.attachments(post, 'mastodon').length === 2,
    );
    if (!victim) throw new Error('no post with two pictures');
    const before = mirrored().length;
    r.timeline.removePost(victim.id);
    const full = await snapshot(r, { 'media-size': 'both', mode: 'full' });
    expect(full.exitCode).toBe(0);
    mirrorOnly();
    check();
    const gone = r.library.attachments(victim, 'mastodon');
    expect(items().some((item) => item.id === victim.id)).toBe(false);
    // The post that took its place brought files of its own (or none): count what is left.
    expect(summaryRows(full)['Media removed']).toBe(String(2 * gone.length));
    expect(mirrored().length - Number(full.outputs['media-new'])).toBe(before - 2 * gone.length);

    // Originals only: every preview goes, and `local` loses its preview.
    const narrower = await snapshot(r, { 'media-size': 'original' });
    expect(narrower.exitCode).toBe(0);
    expect(narrower.outputs).toMatchObject({ 'media-new': '0', changed: 'true' });
    expect(
      attachments(items()).every((a) => Object.keys(a.local as Json).join() === 'original'),
    ).toBe(true);
    mirrorOnly();
    check();

    // Pictures only: the sounds and videos go, and their attachments lose `local`.
    const pictures = await snapshot(r, { 'media-types': 'image' });
    expect(pictures.exitCode).toBe(0);
    for (const a of attachments(items())) expect(a.local !== undefined).toBe(a.type === 'image');
    mirrorOnly();
    check();
    expect(keepForeign(mirrored())).toHaveLength(Number(pictures.outputs['media-count']));
  });

  it('a media folder belongs to one snapshot: a second one fails before any request', async () => {
    const r = await rig('mastodon');
    expect((await snapshot(r)).exitCode).toBe(0);
    const requests = r.timeline.requests.length;
    const run = await snapshot(r, { path: 'other/statuses.json' });
    expect(run.exitCode).toBe(1);
    expect(run.stdout).toContain(
      `::error::Input 'media-path': ${join(cwd, 'site', 'media')} holds the media of "../statuses.json", not of this snapshot; give each snapshot its own 'media-path'`,
    );
    expect(r.timeline.requests.length).toBe(requests);
    expect(existsSync(join(cwd, 'other'))).toBe(false);
  });

  it.each([
    [
      'media-size',
      'huge',
      /Input 'media-size': got "huge"; allowed values: original, preview, both/,
    ],
    [
      'media-types',
      'image, pdf',
      /Input 'media-types': got "pdf"; allowed values: image, gifv, video, audio \(a list\)/,
    ],
    [
      'media-max-bytes',
      '10 TB',
      /Input 'media-max-bytes': got "10 TB"; expected a size from 1 byte to 2 GiB/,
    ],
    ['media-max-bytes', '4G', /Input 'media-max-bytes': got "4G"/],
    ['media-path', 'site/statuses.json', /Input 'media-path': is the snapshot file itself/],
  ])('%s %j fails before any request', async (input, value, message) => {
    const r = await rig('mastodon', 20);
    const run = await snapshot(r, { [input]: value });
    expect(run.exitCode).toBe(1);
    expect(run.stdout).toMatch(message);
    expect(r.timeline.requests).toEqual([]);
  });
});
