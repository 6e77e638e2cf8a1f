/**
 * scripts/release.mjs, the two release steps that are more than one command: the tag must be
 * the package's version, and the major tag follows each release (not a prerelease), pushed to a
 * real (local, bare) origin.
 */
import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseFileCommand, ROOT, spawnLogged } from './harness/action.ts';

const SCRIPT = join(ROOT, 'scripts', 'release.mjs');
const VERSION = (
  JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }
).version;

/** No GITHUB_SHA from a CI run that runs these tests: the tag names the commit here. */
const env = () => ({ PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? tmpdir() });
const release = (args: string[], cwd = ROOT, extra: Record<string, string> = {}) =>
  spawnLogged(process.execPath, [SCRIPT, ...args], {
    env: { ...env(), ...extra },
    cwd,
    timeoutMs: 30_000,
  });

describe('tags', () => {
  it.each(['1.2.3', 'v1.2', 'v1', 'release-1.2.3'])('%s is refused', async (tag) => {
    for (const command of ['check', 'move-major-tag']) {
      const run = await release([command, tag]);
      expect(run.exitCode).toBe(1);
      expect(run.stderr).toMatch(`::error::Release tag '${tag}' is not v<major>.<minor>.<patch>`);
    }
  });
});

describe('check', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'fedi-token-release-check-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  /** A copy of the package: package.json and the bundled CLI, its version given. */
  const pkg = (version: string, cliVersion = version) => {
    mkdirSync(join(dir, 'dist', 'cli'), { recursive: true });
    writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'fedi-token', version }));
    writeFileSync(
      join(dir, 'dist', 'cli', 'index.js'),
      `console.log(${JSON.stringify(cliVersion)});\n`,
    );
  };
  const check = async (tag: string, extra: Record<string, string> = {}) => {
    const output = join(dir, 'output');
    writeFileSync(output, '');
    const run = await release(['check', tag], dir, { GITHUB_OUTPUT: output, ...extra });
    return { ...run, outputs: parseFileCommand(readFileSync(output, 'utf8')) };
  };

  it('passes the tag of this package, whose bundle says the same version', async () => {
    const run = await release(['check', `v${VERSION}`]);
    expect(run.exitCode).toBe(0);
    expect(run.stdout).toMatch(`Releasing fedi-token ${VERSION} (tag v${VERSION}) to npm's`);
  });

  it('sends a release to latest and a prerelease to next', async () => {
    pkg('1.2.3');
    expect((await check('v1.2.3')).outputs).toEqual({ 'dist-tag': 'latest' });
    pkg('2.0.0-rc.1');
    expect((await check('v2.0.0-rc.1')).outputs).toEqual({ 'dist-tag': 'next' });
  });

  it('sends a release with the pre-release box ticked to next', async () => {
    pkg('1.3.0');
    expect((await check('v1.3.0', { PRERELEASE: 'true' })).outputs).toEqual({ 'dist-tag': 'next' });
    expect((await check('v1.3.0', { PRERELEASE: 'false' })).outputs).toEqual({
      'dist-tag': 'latest',
    });
  });

  it("sends a release older than npm's latest to latest-<major>, never to latest", async () => {
    pkg('1.9.1');
    expect((await check('v1.9.1', { NPM_LATEST: '2.0.0' })).outputs).toEqual({
      'dist-tag': 'latest-1',
    });
    expect((await check('v1.9.1', { NPM_LATEST: '1.10.0' })).outputs).toEqual({
      'dist-tag': 'latest-1',
    });
    // The first publish (npm knows no version) and a newer release go to latest.
    for (const latest of ['', '1.9.0', '0.9.9']) {
      expect((await check('v1.9.1', { NPM_LATEST: latest })).outputs).toEqual({
        'dist-tag': 'latest',
      });
    }
  });

  it('fails another version, saying what to change', async () => {
    pkg('1.2.3');
    const run = await check('v1.3.0');
    expect(run.exitCode).toBe(1);
    expect(run.stderr).toMatch(
      `::error::Release tag v1.3.0 does not match package.json's version 1.2.3: set "version" to 1.3.0`,
    );
    expect(run.outputs).toEqual({});
  });

  it('fails a bundle that says another version (src/version.ts not bumped)', async () => {
    pkg('1.3.0', '1.2.3');
    const run = await check('v1.3.0');
    expect(run.exitCode).toBe(1);
    expect(run.stderr).toMatch(
      '::error::The bundled CLI says 1.2.3, package.json 1.3.0: update src/version.ts',
    );
  });
});

describe('move-major-tag', () => {
  let dir: string;
  let work: string;
  let origin: string;
  const git = (cwd: string, ...args: string[]) =>
    execFileSync('git', args, {
      cwd,
      encoding: 'utf8',
      env: { ...env(), GIT_CONFIG_NOSYSTEM: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    }).trim();
  const commitAndTag = (tag: string) => {
    writeFileSync(join(work, 'file.txt'), tag);
    git(work, 'add', 'file.txt');
    git(work, '-c', 'user.name=t', '-c', 'user.email=t@example.invalid', 'commit', '-qm', tag);
    git(work, 'tag', tag);
    git(work, 'push', '-q', 'origin', 'HEAD:refs/heads/main', `refs/tags/${tag}`);
    return git(work, 'rev-parse', 'HEAD');
  };
  const remoteTag = (name: string) =>
    git(origin, 'rev-parse', '--verify', '--quiet', `refs/tags/${name}^{commit}`);

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'fedi-token-release-'));
    origin = join(dir, 'origin.git');
    work = join(dir, 'work');
    git(dir, 'init', '-q', '--bare', origin);
    git(dir, 'clone', '-q', origin, work);
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('points v1 at each release in turn (build metadata too), and leaves it at a prerelease', async () => {
    const first = commitAndTag('v1.0.0');
    const moved = await release(['move-major-tag', 'v1.0.0'], work);
    expect(moved.exitCode).toBe(0);
    expect(moved.stdout).toMatch(`v1 now points at ${first} (v1.0.0).`);
    expect(remoteTag('v1')).toBe(first);

    const second = commitAndTag('v1.1.0');
    expect((await release(['move-major-tag', 'v1.1.0'], work)).exitCode).toBe(0);
    expect(remoteTag('v1')).toBe(second);

    const build = commitAndTag('v1.2.0+build.7');
    expect((await release(['move-major-tag', 'v1.2.0+build.7'], work)).exitCode).toBe(0);
    expect(remoteTag('v1')).toBe(build);

    commitAndTag('v2.0.0-rc.1');
    const pre = await release(['move-major-tag', 'v2.0.0-rc.1'], work);
    expect(pre.exitCode).toBe(0);
    expect(pre.stdout).toMatch('v2.0.0-rc.1 is a prerelease: the major tag stays where it is.');
    expect(() => remoteTag('v2')).toThrow();
    expect(remoteTag('v1')).toBe(build);
  });

  it('leaves v1 at the newest release: not moved back by a fix to an older line, nor by a ticked pre-release box', async () => {
    commitAndTag('v1.0.0');
    commitAndTag('v1.10.0');
    const newest = git(work, 'rev-parse', 'HEAD');
    expect((await release(['move-major-tag', 'v1.10.0'], work)).exitCode).toBe(0);
    expect(remoteTag('v1')).toBe(newest);

    commitAndTag('v1.9.1');
    const backport = await release(['move-major-tag', 'v1.9.1'], work);
    expect(backport.exitCode).toBe(0);
    expect(backport.stdout).toMatch('v1.9.1 is older than v1.10.0: v1 stays where it is.');
    expect(remoteTag('v1')).toBe(newest);

    commitAndTag('v1.11.0');
    const ticked = await release(['move-major-tag', 'v1.11.0'], work, { PRERELEASE: 'true' });
    expect(ticked.exitCode).toBe(0);
    expect(ticked.stdout).toMatch('v1.11.0 is a prerelease: the major tag stays where it is.');
    expect(remoteTag('v1')).toBe(newest);
  });

  it('says what to do when origin refuses the tag', async () => {
    commitAndTag('v1.0.0');
    // A hook stands in for GitHub's refusal of a tag move that brings changed workflows.
    writeFileSync(join(origin, 'hooks', 'pre-receive'), '#!/bin/sh\necho refused >&2\nexit 1\n', {
      mode: 0o755,
    });
    const refused = await release(['move-major-tag', 'v1.0.0'], work);
    expect(refused.exitCode).toBe(1);
    expect(refused.stderr).toMatch(/::error::Could not push v1 .*RELEASE_TAG_TOKEN/);
    expect(() => remoteTag('v1')).toThrow();
  });
});
