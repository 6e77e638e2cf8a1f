/**
 * What the Windows review of the code changed, tested on this machine: the rename that replaces
 * the snapshot is retried while Windows reports the file busy; a snapshot checked out with CRLF
 * line ends (Git's core.autocrlf on Windows runners) counts as unchanged when only the line ends
 * differ; a `path` ending in either separator is refused as a folder; the tests' Node 24 is found
 * as a binary, not npm's shell shim; GITHUB_* files written with CRLF (os.EOL there) parse.
 */
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from '@jest/globals';
import { accessSync, constants, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { rename } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseSnapshotInputs } from '../src/snapshot/config.ts';
import { replaceFile } from '../src/snapshot/replace-file.ts';
import { hashFile } from '../src/snapshot/store.ts';
import { node24Path, parseFileCommand, runAction } from './harness/action.ts';
import { TimelineServer } from './servers/timeline.ts';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'fedi-token-windows-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const errno = (code: string): NodeJS.ErrnoException =>
  Object.assign(new Error(`${code}: rename failed`), { code });

/** A rename that fails with `codes` in turn, then renames for real; counts its calls. */
function flakyRename(codes: string[]) {
  const calls = { count: 0 };
  const fn = async (from: string, to: string) => {
    const code = codes[calls.count++];
    if (code) throw errno(code);
    await rename(from, to);
  };
  return { fn, calls };
}

describe('replaceFile', () => {
  const delaysMs = [1, 2, 4];

  it.each(['EPERM', 'EACCES', 'EBUSY'])(
    'on Windows, tries again while the target is held (%s), then replaces it',
    async (code) => {
      const from = join(dir, 'new.tmp');
      const to = join(dir, 'statuses.json');
      writeFileSync(from, 'new');
      writeFileSync(to, 'old');
      const rename = flakyRename([code, code]);
      await replaceFile(from, to, { rename: rename.fn, platform: 'win32', delaysMs });
      expect(rename.calls.count).toBe(3);
      expect(readFileSync(to, 'utf8')).toBe('new');
    },
  );

  it('on Windows, gives up after the last pause with the last error', async () => {
    const rename = flakyRename(['EBUSY', 'EBUSY', 'EBUSY', 'EPERM']);
    await expect(
      replaceFile('a', 'b', { rename: rename.fn, platform: 'win32', delaysMs }),
    ).rejects.toMatchObject({ code: 'EPERM' });
    expect(rename.calls.count).toBe(delaysMs.length + 1);
  });

  it('on Windows, reports any other error at once', async () => {
    const rename = flakyRename(['ENOENT']);
    await expect(
      replaceFile('a', 'b', { rename: rename.fn, platform: 'win32', delaysMs }),
    ).rejects.toMatchObject({ code: 'ENOENT' });
    expect(rename.calls.count).toBe(1);
  });

  it.each(['linux', 'darwin'] as const)('on %s, EPERM is permanent: no second try', async (os) => {
    const rename = flakyRename(['EPERM']);
    await expect(
      replaceFile('a', 'b', { rename: rename.fn, platform: os, delaysMs }),
    ).rejects.toMatchObject({ code: 'EPERM' });
    expect(rename.calls.count).toBe(1);
  });
});

describe('hashFile', () => {
  const hashOf = async (content: string | Buffer) => {
    const file = join(dir, `f${Math.random()}`);
    writeFileSync(file, content);
    return hashFile(file);
  };

  it('reads CRLF line ends as LF, and nothing else', async () => {
    const lf = await hashOf('[\n{"id":"1"},\n{"id":"2"}\n]\n');
    expect(await hashOf('[\r\n{"id":"1"},\r\n{"id":"2"}\r\n]\r\n')).toBe(lf);
    // A CR alone, or an extra one, is a different file.
    expect(await hashOf('[\r{"id":"1"},\n{"id":"2"}\n]\n')).not.toBe(lf);
    expect(await hashOf('[\r\r\n{"id":"1"},\n{"id":"2"}\n]\n')).not.toBe(lf);
    expect(await hashOf('[\n{"id":"1"},\n{"id":"2"}\n]\n\r')).not.toBe(lf);
  });

  it('joins a CRLF split between two read chunks', async () => {
    // The read stream hands over 64 KiB chunks: put the CR last in the first one.
    const chunk = 64 * 1024;
    const head = 'x'.repeat(chunk - 1);
    const lf = await hashOf(`${head}\nend\n`);
    expect(await hashOf(`${head}\r\nend\r\n`)).toBe(lf);
    expect(await hashOf(`${head}\rend\n`)).not.toBe(lf);
    expect(await hashOf(`${head}\r`)).toBe(await hashOf(Buffer.from(`${head}\r`)));
    expect(await hashOf(`${head}\r`)).not.toBe(await hashOf(head));
  });
});

describe('the snapshot action on a file checked out with CRLF', () => {
  let server: TimelineServer;
  beforeAll(async () => {
    server = await TimelineServer.start({ flavour: 'mastodon', posts: 300 });
  });
  afterAll(() => server.close());

  const snapshot = (mode: string) =>
    runAction(
      'snapshot',
      {
        instance: server.url,
        'access-token': server.token,
        path: 'site/statuses.json',
        count: '50',
        mode,
      },
      { cwd: dir },
    );
  const file = () => join(dir, 'site', 'statuses.json');

  it('full: the same statuses leave the CRLF file untouched and changed false', async () => {
    const first = await snapshot('full');
    expect(first.outputs.changed).toBe('true');
    const crlf = readFileSync(file(), 'utf8').replace(/\n/g, '\r\n');
    writeFileSync(file(), crlf);

    const again = await snapshot('full');
    expect(again.exitCode).toBe(0);
    expect(again.outputs.changed).toBe('false');
    expect(readFileSync(file(), 'utf8')).toBe(crlf);
  });

  it('incremental: new statuses are merged above the CRLF file, written with LF', async () => {
    await snapshot('full');
    const before = JSON.parse(readFileSync(file(), 'utf8')) as { id: string }[];
    writeFileSync(file(), readFileSync(file(), 'utf8').replace(/\n/g, '\r\n'));
    server.addPosts(10);

    const merged = await snapshot('incremental');
    expect(merged.exitCode).toBe(0);
    expect(merged.outputs.changed).toBe('true');
    const text = readFileSync(file(), 'utf8');
    expect(text).not.toContain('\r');
    const after = JSON.parse(text) as { id: string }[];
    expect(Number(merged.outputs['new-count'])).toBeGreaterThan(0);
    expect(after.slice(Number(merged.outputs['new-count'])).map((s) => s.id)).toEqual(
      before.slice(0, after.length - Number(merged.outputs['new-count'])).map((s) => s.id),
    );
  });
});

describe('snapshot path', () => {
  const parse = (path: string) =>
    parseSnapshotInputs({
      get: (name) =>
        ({ instance: 'https://social.example', 'access-token': 'token', path })[name] ?? '',
      mask: () => undefined,
    });

  it.each(['site/', 'site\\', 'C:\\site\\'])('%s names a folder: refused', (path) => {
    expect(() => parse(path)).toThrow(/path.*must name a file/);
  });

  it.each(['site/statuses.json', 'site\\statuses.json', 'C:\\a\\_temp/e2e/statuses.json'])(
    '%s names a file: taken as written',
    (path) => {
      expect(parse(path).path).toBe(path);
    },
  );
});

describe('the runner-protocol harness', () => {
  it('starts the node@24 binary: node/bin/node.exe on Windows, where .bin/node is a shim', () => {
    expect(node24Path('win32')).toMatch(/[\\/]node_modules[\\/]node[\\/]bin[\\/]node\.exe$/);
    expect(node24Path('linux')).toMatch(/[\\/]node_modules[\\/]\.bin[\\/]node$/);
    expect(() => accessSync(node24Path(), constants.X_OK)).not.toThrow();
  });

  it('reads GITHUB_OUTPUT as @actions/core writes it on Windows (os.EOL is CRLF)', () => {
    const delimiter = 'ghadelimiter_0f6a';
    const text = [`token<<${delimiter}`, 'abc', delimiter, 'valid=true', ''].join('\r\n');
    expect(parseFileCommand(text)).toEqual({ token: 'abc', valid: 'true' });
  });
});
