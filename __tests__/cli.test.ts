/**
 * The CLI's manners and its paths without Chromium (the user's click is plain HTTP): arguments
 * checked before any request, --help/--version, exit codes, the timeout and Ctrl-C, the
 * pasted-code path's end of input, the app registration on the wire and when it is refused,
 * detection, an existing app on a fixed port, Pleroma's refresh token, Misskey's session check,
 * --gh with a stub gh, the browser command it runs, colour per stream (on a real
 * pseudo-terminal), Misskey's press-Enter path, and the loopback listener's own rules (in
 * process, so "closed" can be checked while the process is still alive).
 */
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from '@jest/globals';
import { execFileSync, spawn } from 'node:child_process';
import {
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  realpathSync,
  rmSync,
  statSync,
} from 'node:fs';
import { createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { Readable } from 'node:stream';
import { parseCommand } from '../src/cli/args.ts';
import { CliError, EXIT } from '../src/cli/exit.ts';
import { shellQuote } from '../src/cli/gh.ts';
import { login } from '../src/cli/login.ts';
import { startLoopback } from '../src/cli/loopback.ts';
import { colourEnabled, Terminal, type OutStream } from '../src/cli/output.ts';
import { codeFrom } from '../src/cli/paste.ts';
import { challengeOf, createPkce, sameState } from '../src/cli/pkce.ts';
import { printSecrets, type LoginOutcome } from '../src/cli/result.ts';
import { Http } from '../src/http.ts';
import { NODE24, ROOT } from './harness/action.ts';
import {
  answerAuthorize,
  browserStub,
  CLI,
  cliEnv,
  ghStub,
  startCli,
  startRecordingProxy,
} from './harness/cli.ts';
import { startMastodonServer, type MastodonServer } from './servers/mastodon.ts';
import { startMisskey, type MisskeyServer } from './servers/misskey.ts';

let server: MastodonServer;
beforeAll(async () => {
  server = await startMastodonServer({ flavour: 'mastodon' });
});
afterAll(async () => {
  await server.close();
});

describe('standard CLI manners (bundle)', () => {
  it('--version prints the package version', async () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };
    const exit = await startCli(['--version']).exited;
    expect(exit).toMatchObject({ code: 0, stdout: `${pkg.version}\n`, stderr: '' });
  });

  it('--help prints usage with the exit codes on stdout', async () => {
    for (const args of [['--help'], ['login', '--help'], ['help']]) {
      const exit = await startCli(args).exited;
      expect(exit.code).toBe(0);
      expect(exit.stdout).toMatch(/^Usage: fedi-token login <instance>/);
      expect(exit.stdout).toMatch(/Exit codes: 0 done/);
    }
  });

  it('the bundle starts with a shebang so npx can run it', () => {
    expect(readFileSync(join(ROOT, 'dist', 'cli', 'index.js'), 'utf8')).toMatch(
      /^#!\/usr\/bin\/env node\n/,
    );
  });

  it('the npm package holds the bundles, the action files, the README and the LICENSE, and installs nothing else', () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as Record<
      string,
      unknown
    >;
    // Everything the bundles need is inside them: npx fetches one package and runs it.
    expect(pkg.dependencies).toBeUndefined();
    const packed = execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], {
      cwd: ROOT,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    const [manifest] = JSON.parse(packed) as { files: { path: string }[] }[];
    const paths = (manifest?.files ?? []).map((file) => file.path);
    const bundles = readdirSync(join(ROOT, 'dist'), { recursive: true, withFileTypes: true })
      .filter((entry) => entry.isFile())
      .map((entry) => join(relative(ROOT, entry.parentPath), entry.name));
    expect(paths.sort()).toEqual(
      [
        'LICENSE',
        'README.md',
        'action.yml',
        'package.json',
        'snapshot/action.yml',
        ...bundles,
      ].sort(),
    );
  });

  it.each([
    [['login'], /Missing <instance>/],
    [['logn', 'https://a.example'], /Unknown command 'logn'/],
    [['login', 'SERVER', '--bogus'], /Unknown option '--bogus'/],
    [
      ['login', 'SERVER', '--platform', 'friendica'],
      /--platform: got "friendica"; allowed values: auto, mastodon, misskey, oauth2/,
    ],
    [
      ['login', 'SERVER', '--platform', 'anyweb'],
      /--platform anyweb: AnyWeb codes come from the dApp/,
    ],
    [
      ['login', 'http://social.example'],
      /<instance>: plain http:\/\/ is allowed only for loopback/,
    ],
    [['login', 'SERVER', '--timeout', '0'], /--timeout: got "0"; expected a number from 1 to 3600/],
    [
      ['login', 'SERVER', '--port', 'http'],
      /--port: got "http"; expected a whole number from 1 to 65535/,
    ],
    [['login', 'SERVER', '--repo', 'octo/site'], /--repo is used only with --gh/],
    [
      ['login', 'SERVER', '--gh', '--repo', 'not a repo'],
      /--repo: got "not a repo"; expected owner\/name/,
    ],
    [['login', 'SERVER', '--prefix', 'GITHUB_X'], /--prefix: got "GITHUB_X"/],
    [['login', 'SERVER', '--scope', 'read "x"'], /--scope: got "\\"x\\""/],
    [['login', 'SERVER', '--client-secret', 's3cret'], /--client-secret needs --client-id/],
    [['login', 'SERVER', '--platform', 'oauth2'], /--client-id is required with --platform oauth2/],
  ])('%j fails with exit code 2 before any request', async (args, message) => {
    const before = server.requests.length;
    const exit = await startCli(args.map((arg) => (arg === 'SERVER' ? server.url : arg))).exited;
    expect(exit.code).toBe(EXIT.usage);
    expect(exit.stderr).toMatch(message);
    expect(exit.stderr).not.toContain('s3cret');
    expect(server.requests.length).toBe(before);
  });

  it('--json reports a failure as JSON on stdout too', async () => {
    const exit = await startCli(['login', server.url, '--platform', 'x', '--json']).exited;
    expect(exit.code).toBe(2);
    expect(JSON.parse(exit.stdout)).toEqual({
      error: expect.stringMatching(/^--platform: got "x"/),
      exitCode: 2,
    });
  });
});

describe('waiting for the approval (bundle)', () => {
  // Whether the listener is closed is checked in process below, while the process still runs:
  // fetching the callback after the CLI exited would succeed in refusing either way.
  it('times out after --timeout with exit code 4, and exits on its own', async () => {
    const cli = startCli(['login', server.url, '--platform', 'mastodon', '--timeout', '1']);
    await cli.waitForUrl();
    const exit = await cli.exited;
    // Not killed by the harness (signal SIGKILL, code null). The CLI ends its process once done
    // (src/end-process.ts), so whether the listener was closed is checked in process, below.
    expect(exit.signal).toBeNull();
    expect(exit.code).toBe(EXIT.timeout);
    expect(exit.stderr).toMatch(/No approval arrived within 1 s \(--timeout\); nothing was stored/);
    expect(exit.stdout).toBe('');
  });

  it('Ctrl-C ends the wait with exit code 130 and a clear message', async () => {
    const cli = startCli(['login', server.url, '--platform', 'mastodon']);
    await cli.waitForStderr(/Waiting for the approval/);
    cli.child.kill('SIGINT');
    const exit = await cli.exited;
    expect(exit.code).toBe(EXIT.interrupted);
    expect(exit.stderr).toMatch(/Interrupted \(Ctrl-C\); nothing was stored/);
  });

  it('copy-paste ends with exit code 3 when standard input ends without a code', async () => {
    const cli = startCli(['login', server.url, '--platform', 'mastodon', '--oob']);
    await cli.waitForStderr(/Paste the code/);
    cli.child.stdin.end('\n\n');
    const exit = await cli.exited;
    expect(exit.code).toBe(EXIT.notAuthorized);
    expect(exit.stderr).toMatch(/No code was entered/);
  });

  it('exits after a pasted code even though standard input stays open, as a terminal’s does', async () => {
    const cli = startCli(['login', server.url, '--platform', 'mastodon', '--oob'], {
      deadlineMs: 20_000,
    });
    const url = new URL(await cli.waitForUrl());
    await cli.waitForStderr(/Paste the code/);
    const code = server.issueCode({
      clientId: url.searchParams.get('client_id') ?? '',
      redirectUri: url.searchParams.get('redirect_uri') ?? '',
      scope: url.searchParams.get('scope') ?? undefined,
      codeChallenge: url.searchParams.get('code_challenge') ?? undefined,
    });
    cli.child.stdin.write(`${code}\n`);
    const exit = await cli.exited;
    expect(exit.signal).toBeNull();
    expect(exit.code).toBe(0);
    expect(exit.stdout).toMatch(/^FEDI_TOKEN=\S+$/m);
    expect(exit.stderr).not.toContain(code);
  });

  it('a wrong pasted code is the server’s invalid_grant, exit code 1, and the code is not echoed', async () => {
    const cli = startCli(['login', server.url, '--platform', 'mastodon', '--oob']);
    await cli.waitForStderr(/Paste the code/);
    cli.child.stdin.end('not-a-real-code-0123456789\n');
    const exit = await cli.exited;
    expect(exit.code).toBe(EXIT.failure);
    expect(exit.stderr).toMatch(/POST \/oauth\/token answered HTTP 400 \(invalid_grant\)/);
    expect(exit.stderr).not.toContain('not-a-real-code-0123456789');
  });
});

const ESC = '\u001b';
/** The escape sequences in `text`, each as the text that follows its ESC. */
const escapes = (text: string): string[] => text.split(ESC).slice(1);

describe('app registration on the wire (bundle)', () => {
  it.each(['mastodon', 'gotosocial'] as const)(
    'on %s: redirect_uris is one newline-separated string with the loopback URI and the OOB one',
    async (flavour) => {
      const upstream = await startMastodonServer({ flavour });
      const proxy = await startRecordingProxy(upstream.url);
      try {
        const cli = startCli(['login', proxy.url, '--platform', 'mastodon']);
        const url = new URL(await cli.waitForUrl());
        const registrations = proxy.bodies.filter(
          (r) => r.method === 'POST' && r.path === '/api/v1/apps',
        );
        expect(registrations).toHaveLength(1);
        const [registration] = registrations;
        expect(registration?.headers['content-type']).toBe('application/x-www-form-urlencoded');
        const form = new URLSearchParams(registration?.body);
        // Exactly one field: not redirect_uris[] nor a repeated key, which GoToSocial rejects.
        expect(form.getAll('redirect_uris')).toHaveLength(1);
        expect([...form.keys()].filter((key) => key.startsWith('redirect_uri'))).toEqual([
          'redirect_uris',
        ]);
        const loopback = url.searchParams.get('redirect_uri') ?? '';
        expect(loopback).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/callback$/);
        expect(form.get('redirect_uris')).toBe(`${loopback}\nurn:ietf:wg:oauth:2.0:oob`);
        expect((await answerAuthorize(url.href)).status).toBe(200);
        const exit = await cli.exited;
        expect(exit.code).toBe(0);
        // The redirect that was used is the registered loopback one: no copy-paste fallback.
        expect(exit.stderr).not.toMatch(/copy-paste/);
      } finally {
        await proxy.close();
        await upstream.close();
      }
    },
  );
});

describe('logins through the bundle (approved over plain HTTP)', () => {
  /** A port that was free a moment ago, for --port. */
  async function freePort(): Promise<number> {
    const probe = createServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    const { port } = probe.address() as AddressInfo;
    await new Promise((resolve) => probe.close(resolve));
    return port;
  }

  const printed = (stdout: string): Record<string, string> =>
    Object.fromEntries([...stdout.matchAll(/^([A-Z_]+)=(\S+)$/gm)].map((m) => [m[1], m[2]]));

  it('the README’s one command: detects Mastodon from nodeinfo, then registers and logs in', async () => {
    const upstream = await startMastodonServer({ flavour: 'mastodon' });
    try {
      const cli = startCli(['login', upstream.url]);
      const url = new URL(await cli.waitForUrl());
      expect(cli.stderr).toMatch(/^Detected mastodon \(mastodon\) at http:\/\/127\.0\.0\.1:\d+$/m);
      const paths = upstream.requests.map((r) => r.path);
      expect(paths.indexOf('/api/v1/apps')).toBeGreaterThan(paths.indexOf('/.well-known/nodeinfo'));
      expect(paths.indexOf('/.well-known/nodeinfo')).toBeGreaterThanOrEqual(0);
      expect(url.searchParams.get('redirect_uri')).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/callback$/);
      expect((await answerAuthorize(url.href)).status).toBe(200);
      const exit = await cli.exited;
      expect(exit.code).toBe(0);
      expect(Object.keys(printed(exit.stdout))).toEqual([
        'FEDI_TOKEN',
        'FEDI_CLIENT_ID',
        'FEDI_CLIENT_SECRET',
      ]);
      expect(exit.stderr).toMatch(/Logged in as @alice on .* \(mastodon\)/);
    } finally {
      await upstream.close();
    }
  });

  it('--client-id with --port uses the app’s registered loopback redirect, registers nothing, prints only the token', async () => {
    const port = await freePort();
    const redirectUri = `http://127.0.0.1:${port}/callback`;
    const app = server.registerApp({ redirectUris: [redirectUri] });
    const before = server.requests.filter((r) => r.path === '/api/v1/apps').length;
    const cli = startCli(
      [
        'login',
        server.url,
        '--platform',
        'mastodon',
        '--client-id',
        app.clientId,
        '--port',
        `${port}`,
      ],
      { env: { FEDI_TOKEN_CLIENT_SECRET: app.clientSecret } },
    );
    const url = new URL(await cli.waitForUrl());
    expect(url.searchParams.get('client_id')).toBe(app.clientId);
    expect(url.searchParams.get('redirect_uri')).toBe(redirectUri);
    expect((await answerAuthorize(url.href)).text).toMatch(/close this tab/);
    const exit = await cli.exited;
    expect(exit.code).toBe(0);
    expect(exit.stderr).not.toMatch(/copy-paste/);
    expect(Object.keys(printed(exit.stdout))).toEqual(['FEDI_TOKEN']);
    expect(exit.stdout + exit.stderr).not.toContain(app.clientSecret);
    expect(server.requests.filter((r) => r.path === '/api/v1/apps')).toHaveLength(before);
  });

  it('on Pleroma: detected, and the refresh token is printed as FEDI_REFRESH_TOKEN and works', async () => {
    const upstream = await startMastodonServer({ flavour: 'pleroma' });
    try {
      const cli = startCli(['login', upstream.url]);
      const url = new URL(await cli.waitForUrl());
      expect(cli.stderr).toMatch(/Detected pleroma \(mastodon\)/);
      expect((await answerAuthorize(url.href)).status).toBe(200);
      const exit = await cli.exited;
      expect(exit.code).toBe(0);
      const values = printed(exit.stdout);
      expect(Object.keys(values)).toEqual([
        'FEDI_TOKEN',
        'FEDI_REFRESH_TOKEN',
        'FEDI_CLIENT_ID',
        'FEDI_CLIENT_SECRET',
      ]);
      expect(exit.stderr).not.toContain(values.FEDI_REFRESH_TOKEN);
      const refreshed = await fetch(`${upstream.url}/oauth/token`, {
        method: 'POST',
        body: new URLSearchParams({
          grant_type: 'refresh_token',
          refresh_token: values.FEDI_REFRESH_TOKEN ?? '',
          client_id: values.FEDI_CLIENT_ID ?? '',
          client_secret: values.FEDI_CLIENT_SECRET ?? '',
        }),
      });
      expect(refreshed.status).toBe(200);
      expect(await refreshed.json()).toMatchObject({ access_token: expect.any(String) });
    } finally {
      await upstream.close();
    }
  });

  it('Misskey: a callback with another session is refused with exit code 3 and nothing is fetched', async () => {
    const misskey = await startMisskey();
    try {
      const cli = startCli(['login', misskey.url, '--platform', 'misskey']);
      const url = new URL(await cli.waitForUrl());
      const callback = new URL(url.searchParams.get('callback') ?? '');
      expect(callback.href).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/callback$/);
      callback.searchParams.set('session', '00000000-0000-4000-8000-000000000000');
      const page = await fetch(callback);
      expect(page.status).toBe(400);
      expect(await page.text()).toMatch(/session does not match this login/);
      const exit = await cli.exited;
      expect(exit.code).toBe(EXIT.notAuthorized);
      expect(exit.stderr).toMatch(/Error: The answer's session does not match this login/);
      expect(exit.stdout).toBe('');
      expect(misskey.hits.filter((hit) => hit.includes('/check'))).toEqual([]);
    } finally {
      await misskey.close();
    }
  });
});

describe('a refused app registration (bundle)', () => {
  it('falls back to copy-paste when the refusal is about the redirect URI (GoToSocial’s 400)', async () => {
    const upstream = await startMastodonServer({ flavour: 'gotosocial' });
    try {
      upstream.inject({
        method: 'POST',
        path: '/api/v1/apps',
        kind: 'status',
        status: 400,
        body: {
          error: 'Bad Request: error parsing redirect URI: parse "http://127.0.0.1": invalid',
        },
      });
      const cli = startCli(['login', upstream.url, '--platform', 'mastodon']);
      const url = new URL(await cli.waitForUrl());
      expect(url.searchParams.get('redirect_uri')).toBe('urn:ietf:wg:oauth:2.0:oob');
      expect(cli.stderr).toMatch(
        /The server refused the loopback redirect \(.*HTTP 400: Bad Request: error parsing redirect URI.*\); using copy-paste instead/,
      );
      await cli.waitForStderr(/Paste the code/);
      const code = upstream.issueCode({
        clientId: url.searchParams.get('client_id') ?? '',
        redirectUri: 'urn:ietf:wg:oauth:2.0:oob',
        scope: url.searchParams.get('scope') ?? undefined,
      });
      cli.child.stdin.end(`${code}\n`);
      const exit = await cli.exited;
      expect(exit.code).toBe(0);
      expect(exit.stdout).toMatch(/^FEDI_TOKEN=\S+$/m);
      expect(upstream.requests.filter((r) => r.path === '/api/v1/apps')).toHaveLength(2);
    } finally {
      await upstream.close();
    }
  });

  it.each([
    [403, 'This action is not allowed'],
    [401, 'The access token is invalid'],
    [422, "Validation failed: Scopes doesn't match configured on the server."],
    [422, "Validation failed: Name can't be blank"],
  ])(
    'HTTP %i "%s" is reported as the server said, with no second registration',
    async (status, error) => {
      const upstream = await startMastodonServer({ flavour: 'mastodon' });
      try {
        upstream.inject({
          method: 'POST',
          path: '/api/v1/apps',
          kind: 'status',
          status,
          body: { error },
        });
        const exit = await startCli(['login', upstream.url, '--platform', 'mastodon']).exited;
        expect(exit.code).toBe(EXIT.failure);
        expect(exit.stderr).toContain(
          `Error: ${upstream.url} POST /api/v1/apps answered HTTP ${status}: ${error}`,
        );
        expect(exit.stderr).not.toMatch(/copy-paste|Open this page/);
        expect(upstream.requests.filter((r) => r.path === '/api/v1/apps')).toHaveLength(1);
      } finally {
        await upstream.close();
      }
    },
  );
});

describe('the browser command (bundle)', () => {
  it.each([
    ['FEDI_TOKEN_BROWSER', (command: string) => ({ FEDI_TOKEN_BROWSER: command })],
    ['BROWSER', (command: string) => ({ FEDI_TOKEN_BROWSER: undefined, BROWSER: command })],
  ])(
    '%s names a command that gets the authorize URL (state, S256 PKCE); the login then completes',
    async (_name, envFor) => {
      const stub = browserStub();
      try {
        const cli = startCli(['login', server.url, '--platform', 'mastodon'], {
          env: envFor(stub.command),
        });
        const opened = await stub.opened();
        // One argument, the whole URL: a shell would have split it at `&`.
        expect(opened).toHaveLength(1);
        const url = new URL(opened[0] ?? '');
        expect(url.href).toBe(await cli.waitForUrl());
        expect(url.origin + url.pathname).toBe(`${server.url}/oauth/authorize`);
        expect(url.searchParams.get('response_type')).toBe('code');
        expect(url.searchParams.get('redirect_uri')).toMatch(
          /^http:\/\/127\.0\.0\.1:\d+\/callback$/,
        );
        expect(url.searchParams.get('state')).toMatch(/^[A-Za-z0-9_-]{32,}$/);
        expect(url.searchParams.get('code_challenge')).toMatch(/^[A-Za-z0-9_-]{43}$/);
        expect(url.searchParams.get('code_challenge_method')).toBe('S256');
        // The server checks the verifier against this challenge at the exchange.
        expect((await answerAuthorize(url.href)).text).toMatch(/close this tab/);
        const exit = await cli.exited;
        expect(exit.code).toBe(0);
        expect(exit.stdout).toMatch(/^FEDI_TOKEN=\S+$/m);
        // Piped streams: no escape sequence in either.
        expect(escapes(exit.stdout)).toEqual([]);
        expect(escapes(exit.stderr)).toEqual([]);
      } finally {
        stub.remove();
      }
    },
  );

  it('an error on piped stderr has no escape sequence either', async () => {
    const exit = await startCli(['login', server.url, '--platform', 'x'], {
      env: { TERM: 'xterm-256color' },
    }).exited;
    expect(exit.stderr).toMatch(/^Error: --platform/);
    expect(escapes(exit.stderr)).toEqual([]);
  });
});

describe('--gh with a stub gh (bundle)', () => {
  const gh = ghStub();
  /** The directory the CLI runs in, where values gh did not store are saved. */
  let cwd: string;
  beforeEach(() => {
    cwd = realpathSync(mkdtempSync(join(tmpdir(), 'fedi-token-cwd-')));
  });
  afterEach(() => {
    rmSync(cwd, { recursive: true, force: true });
  });
  afterAll(() => {
    gh.remove();
  });

  const ghLogin = (env: Record<string, string>, ...extra: string[]) =>
    startCli(['login', server.url, '--platform', 'mastodon', '--gh', ...extra], { env, cwd });

  /** The one file the CLI saved, its mode and its NAME=value lines. */
  function savedFile(): { path: string; mode: number; values: Record<string, string> } {
    const files = readdirSync(cwd);
    expect(files).toEqual([expect.stringMatching(/^fedi-token-unstored-[0-9a-f]{8}\.env$/)]);
    const path = join(cwd, files[0] ?? '');
    const lines = readFileSync(path, 'utf8').trimEnd().split('\n');
    const values = Object.fromEntries(lines.map((line) => line.split(/=(.*)/s).slice(0, 2)));
    return { path, mode: statSync(path).mode & 0o777, values };
  }

  it('fails before any request when gh is not installed', async () => {
    const before = server.requests.length;
    const exit = await ghLogin({ PATH: '/nonexistent' }).exited;
    expect(exit.code).toBe(EXIT.usage);
    expect(exit.stderr).toMatch(/--gh needs the GitHub CLI \(gh\) on PATH/);
    expect(server.requests.length).toBe(before);
  });

  it.each([
    [
      'not logged in',
      { loggedOut: true },
      [],
      /--gh: gh is not logged in \(gh auth status: You are not logged into any GitHub hosts\. To log in, run: gh auth login\); run `gh auth login`/,
      [['auth', 'status']],
    ],
    [
      'unable to reach the repository',
      { repoUnreachable: true },
      ['--repo', 'octo/gone'],
      /--gh: gh cannot reach the secrets of octo\/gone \(gh secret list: HTTP 404: Not Found .*\); check --repo/,
      [
        ['auth', 'status'],
        ['secret', 'list', '--repo', 'octo/gone'],
      ],
    ],
  ])(
    'gh %s: exit code 2 before any request to the server',
    async (_name, behaviour, extra, message, expectedCalls) => {
      const before = server.requests.length;
      const env = gh.env(behaviour);
      const exit = await ghLogin(env, ...extra).exited;
      expect(exit.code).toBe(EXIT.usage);
      expect(exit.stderr).toMatch(message);
      expect(exit.stderr).toMatch(/Nothing was sent to the server/);
      expect(server.requests.length).toBe(before);
      expect(gh.calls(env).map((call) => call.argv)).toEqual(expectedCalls);
      expect(readdirSync(cwd)).toEqual([]);
    },
  );

  it('--json after storing: the names under "stored", no value anywhere', async () => {
    const env = gh.env();
    const cli = ghLogin(env, '--json');
    await answerAuthorize(await cli.waitForUrl());
    const exit = await cli.exited;
    expect(exit.code).toBe(0);
    const made = gh.calls(env);
    expect(made.map((call) => call.argv.slice(0, 3))).toEqual([
      ['auth', 'status'],
      ['secret', 'list'],
      ['secret', 'set', 'FEDI_TOKEN'],
      ['secret', 'set', 'FEDI_CLIENT_ID'],
      ['secret', 'set', 'FEDI_CLIENT_SECRET'],
    ]);
    const result = JSON.parse(exit.stdout) as Record<string, unknown>;
    expect(result).toMatchObject({
      instance: server.url,
      platform: 'mastodon',
      account: { username: 'alice' },
      stored: ['FEDI_TOKEN', 'FEDI_CLIENT_ID', 'FEDI_CLIENT_SECRET'],
    });
    expect(result).not.toHaveProperty('secrets');
    // The token and the app secret (the client id is public: it is in the authorize URL).
    for (const secret of [made[2]?.stdin ?? '', made[4]?.stdin ?? '']) {
      expect(secret.length).toBeGreaterThan(5);
      expect(exit.stdout + exit.stderr).not.toContain(secret);
    }
    expect(readdirSync(cwd)).toEqual([]);
  });

  it('gh failing on the 2nd secret: exit code 5, the values not stored saved to a private file named in the message', async () => {
    const env = gh.env({ failSet: 2 });
    const cli = ghLogin(env, '--repo', 'octo/site', '--json');
    const url = new URL(await cli.waitForUrl());
    await answerAuthorize(url.href);
    const exit = await cli.exited;
    expect(exit.code).toBe(EXIT.storeFailed);
    const made = gh.calls(env);
    expect(made.map((call) => call.argv)).toEqual([
      ['auth', 'status'],
      ['secret', 'list', '--repo', 'octo/site'],
      ['secret', 'set', 'FEDI_TOKEN', '--repo', 'octo/site'],
      ['secret', 'set', 'FEDI_CLIENT_ID', '--repo', 'octo/site'],
    ]);
    const saved = savedFile();
    expect(saved.mode).toBe(0o600);
    expect(Object.keys(saved.values)).toEqual(['FEDI_CLIENT_ID', 'FEDI_CLIENT_SECRET']);
    expect(saved.values.FEDI_CLIENT_ID).toBe(url.searchParams.get('client_id'));
    expect(made[3]?.stdin).toBe(saved.values.FEDI_CLIENT_ID);
    const escaped = saved.path.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    expect(exit.stderr).toMatch(
      new RegExp(
        `gh secret set FEDI_CLIENT_ID failed: HTTP 403: Resource not accessible by integration\\. Stored: FEDI_TOKEN; not stored: FEDI_CLIENT_ID, FEDI_CLIENT_SECRET\\. Their values are in ${escaped} \\(readable only by you\\): store them with \`gh secret set -f ${escaped} --repo octo/site\``,
      ),
    );
    expect(JSON.parse(exit.stdout)).toEqual({
      error: expect.stringContaining(saved.path),
      exitCode: EXIT.storeFailed,
      stored: ['FEDI_TOKEN'],
      notStored: ['FEDI_CLIENT_ID', 'FEDI_CLIENT_SECRET'],
      unstoredFile: saved.path,
    });
    const token = made[2]?.stdin ?? '';
    const clientSecret = saved.values.FEDI_CLIENT_SECRET ?? '';
    for (const secret of [token, clientSecret]) {
      expect(secret.length).toBeGreaterThan(5);
      expect(exit.stdout + exit.stderr).not.toContain(secret);
    }
    // The saved secret is the app's: with it, the stored token can be revoked.
    const revoke = await fetch(`${server.url}/oauth/revoke`, {
      method: 'POST',
      body: new URLSearchParams({
        client_id: saved.values.FEDI_CLIENT_ID ?? '',
        client_secret: clientSecret,
        token,
      }),
    });
    expect(revoke.status).toBe(200);
    expect(server.isRevoked(token)).toBe(true);
  });

  it('Ctrl-C while gh stores the 2nd secret: exit code 130, what was stored listed, the rest saved, gh stopped', async () => {
    const env = gh.env({ hangSet: 2 });
    const cli = ghLogin(env);
    await answerAuthorize(await cli.waitForUrl());
    const made = await gh.waitForCalls(env, 4);
    expect(made[3]?.argv).toEqual(['secret', 'set', 'FEDI_CLIENT_ID']);
    cli.child.kill('SIGINT');
    const exit = await cli.exited;
    expect(exit.code).toBe(EXIT.interrupted);
    expect(exit.stderr).toMatch(
      /Interrupted \(Ctrl-C\) while storing the secrets with gh\. Stored: FEDI_TOKEN; perhaps stored: FEDI_CLIENT_ID \(gh was setting it\); not stored: FEDI_CLIENT_SECRET\. Their values are in \S+fedi-token-unstored-/,
    );
    expect(exit.stderr).not.toMatch(/nothing was stored/);
    const saved = savedFile();
    expect(saved.mode).toBe(0o600);
    expect(Object.keys(saved.values)).toEqual(['FEDI_CLIENT_ID', 'FEDI_CLIENT_SECRET']);
    expect(exit.stderr).toContain(saved.path);
    expect(exit.stdout + exit.stderr).not.toContain(saved.values.FEDI_CLIENT_SECRET);
    // The hanging gh was stopped with the CLI, not left running for a minute.
    await expect(gone(made[3]?.pid ?? 0)).resolves.toBe(true);
    expect(gh.calls(env)).toHaveLength(4);
  });
});

/** Whether process `pid` ends (or is a zombie nobody reaped) within a few seconds. */
async function gone(pid: number): Promise<boolean> {
  const until = Date.now() + 5_000;
  while (Date.now() < until) {
    let stat: string;
    try {
      stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    } catch {
      return true;
    }
    if (stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z')) return true;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  return false;
}

const SCRIPT = '/usr/bin/script';

describe('colour on a real terminal (bundle under script(1))', () => {
  /** Runs `login` under a pseudo-terminal with one stream sent to a file instead. */
  async function onTerminal(
    redirect: '1>' | '2>' | '',
    env: Record<string, string> = {},
  ): Promise<{ terminal: string; file: string; code: number | null; opened: string }> {
    const dir = mkdtempSync(join(tmpdir(), 'fedi-token-tty-'));
    const stub = browserStub();
    const file = join(dir, 'redirected');
    const quote = (text: string): string => `'${text.replaceAll("'", "'\\''")}'`;
    // --timeout: script(1) gives the CLI its own session, out of reach of the kill below.
    const command = [NODE24, CLI, 'login', server.url, '--platform', 'mastodon', '--timeout', '30']
      .map(quote)
      .join(' ');
    let child: ReturnType<typeof spawn> | undefined;
    try {
      child = spawn(
        SCRIPT,
        ['-qefc', redirect ? `${command} ${redirect}${quote(file)}` : command, '/dev/null'],
        {
          env: cliEnv({
            FEDI_TOKEN_BROWSER: stub.command,
            TERM: 'xterm',
            SHELL: '/bin/sh',
            ...env,
          }),
          stdio: ['ignore', 'pipe', 'pipe'],
        },
      );
      let terminal = '';
      child.stdout?.on('data', (chunk: Buffer) => (terminal += chunk.toString()));
      const code = new Promise<number | null>((resolve) => child?.on('close', resolve));
      const opened = (await stub.opened())[0] ?? '';
      await answerAuthorize(opened);
      const exitCode = await code;
      return {
        opened,
        terminal,
        file: existsSync(file) ? readFileSync(file, 'utf8') : '',
        code: exitCode,
      };
    } finally {
      // A failed test must not leave the login waiting; closing the terminal hangs it up too.
      if (child?.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      stub.remove();
      rmSync(dir, { recursive: true, force: true });
    }
  }

  const ifScript = existsSync(SCRIPT) ? it : it.skip;

  ifScript('stdout on the terminal is coloured while stderr in a file is not', async () => {
    const run = await onTerminal('2>');
    expect(run.code).toBe(0);
    expect(run.terminal).toContain(`${ESC}[1mStore these as repository secrets${ESC}[0m`);
    expect(run.file).toMatch(/Logged in as @alice/);
    expect(escapes(run.file)).toEqual([]);
  });

  ifScript('stderr on the terminal is coloured while stdout in a file is not', async () => {
    const run = await onTerminal('1>');
    expect(run.code).toBe(0);
    expect(run.terminal).toContain(`${ESC}[4m${run.opened}${ESC}[0m`);
    expect(run.file).toMatch(/^Store these as repository secrets/);
    expect(escapes(run.file)).toEqual([]);
  });

  ifScript('NO_COLOR turns colour off on the terminal', async () => {
    const run = await onTerminal('', { NO_COLOR: '1' });
    expect(run.code).toBe(0);
    expect(run.terminal).toMatch(/Store these as repository secrets/);
    expect(escapes(run.terminal)).toEqual([]);
  });
});

describe('Misskey --oob: press Enter after approving (bundle)', () => {
  let misskey: MisskeyServer;
  beforeAll(async () => {
    misskey = await startMisskey();
  });
  afterAll(async () => {
    await misskey.close();
  });

  /** The MiAuth page's Allow button, posted as the browser would (no callback with --oob). */
  async function allow(url: URL): Promise<string> {
    const page = await fetch(url);
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('name="callback" value=""');
    const answer = await fetch(new URL(`${url.pathname}/approve`, url), {
      method: 'POST',
      body: new URLSearchParams({ permission: url.searchParams.get('permission') ?? '' }),
    });
    expect(answer.status).toBe(200);
    return answer.text();
  }

  it('waits for Enter, then fetches and checks the token', async () => {
    const cli = startCli(['login', misskey.url, '--oob'], { deadlineMs: 20_000 });
    const url = new URL(await cli.waitForUrl());
    expect(url.pathname).toMatch(/^\/miauth\/[0-9a-f-]{36}$/);
    expect(url.searchParams.has('callback')).toBe(false);
    await cli.waitForStderr(/Press Enter here after you approve in the browser/);
    expect(await allow(url)).toMatch(/Approved/);
    // Approving is not enough: nothing is fetched until the user presses Enter.
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(misskey.hits.filter((hit) => hit.endsWith('/check'))).toEqual([]);
    expect(cli.child.exitCode).toBeNull();
    cli.child.stdin.write('\n');
    const exit = await cli.exited;
    expect(exit.code).toBe(0);
    expect(exit.stderr).toMatch(/Logged in as @\S+ on .*\(misskey\)/);
    const token = /^FEDI_TOKEN=(\S+)$/m.exec(exit.stdout)?.[1] ?? '';
    expect(token).not.toBe('');
    expect(exit.stderr).not.toContain(token);
    const me = await fetch(`${misskey.url}/api/i`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
      body: '{}',
    });
    expect(me.status).toBe(200);
  });

  it('Enter before approving fails with exit code 1 and says why', async () => {
    const cli = startCli(['login', misskey.url, '--oob'], { deadlineMs: 20_000 });
    await cli.waitForStderr(/Press Enter here/);
    cli.child.stdin.write('\n');
    const exit = await cli.exited;
    expect(exit.code).toBe(EXIT.failure);
    expect(exit.stderr).toMatch(/not approved yet/);
    expect(exit.stdout).toBe('');
  });
});

describe('the listener is closed whatever ends the login (in process)', () => {
  const sink: OutStream = { write: () => true };

  /**
   * Runs `login` with `act` as the browser; resolves with how it ended and the callback URI.
   * --timeout: a regression that leaves the login waiting fails the test instead of hanging it.
   */
  async function loginInProcess(
    act: (url: string, interrupt: AbortController) => Promise<void>,
    timeoutSeconds = 5,
  ): Promise<{ outcome?: LoginOutcome; error?: unknown; callback: string }> {
    const command = parseCommand(
      ['login', server.url, '--platform', 'mastodon', '--timeout', String(timeoutSeconds)],
      {},
    );
    if (command.kind !== 'login') throw new Error('not a login');
    const interrupt = new AbortController();
    let opened: Promise<void> | undefined;
    let callback = '';
    const ended = await login(command.options, {
      http: new Http({ timeoutMs: 10_000, maxAttempts: 1 }),
      terminal: new Terminal(sink, sink, {}),
      stdin: Readable.from([]),
      open: (url) => {
        callback = new URL(url).searchParams.get('redirect_uri') ?? '';
        opened = act(url, interrupt);
      },
      signal: interrupt.signal,
    }).then(
      (outcome) => ({ outcome }),
      (error: unknown) => ({ error }),
    );
    await opened;
    expect(callback).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/callback$/);
    return { ...ended, callback };
  }

  it('approved: the token is obtained and the port freed', async () => {
    const { outcome, error, callback } = await loginInProcess(async (url) => {
      expect((await answerAuthorize(url)).status).toBe(200);
    });
    expect(error).toBeUndefined();
    expect(outcome?.result.tokens?.accessToken).toEqual(expect.any(String));
    // This process is still running: only the login's own close can have freed the port.
    await expect(fetch(callback)).rejects.toThrow();
  });

  it.each([
    [
      'denied in the browser (access_denied)',
      async (url: string) => {
        expect((await answerAuthorize(url, { decision: 'deny' })).status).toBe(400);
      },
      5,
      EXIT.notAuthorized,
      /denied in the browser \(access_denied\)/,
    ],
    [
      'an answer with another state',
      async (url: string) => {
        expect((await answerAuthorize(url, { state: 'forged' })).status).toBe(400);
      },
      5,
      EXIT.notAuthorized,
      /state does not match this login/,
    ],
    [
      'Ctrl-C',
      async (_url: string, interrupt: AbortController) => {
        await new Promise((resolve) => setTimeout(resolve, 50));
        interrupt.abort(new CliError(EXIT.interrupted, 'Interrupted (Ctrl-C)'));
      },
      5,
      EXIT.interrupted,
      /Interrupted/,
    ],
    [
      'no approval within --timeout 1',
      async () => undefined,
      1,
      EXIT.timeout,
      /No approval arrived within 1 s \(--timeout\)/,
    ],
  ])('%s', async (_name, act, timeoutSeconds, exitCode, message) => {
    const { error, callback } = await loginInProcess(act, timeoutSeconds);
    expect(error).toBeInstanceOf(CliError);
    expect((error as CliError).exitCode).toBe(exitCode);
    expect((error as CliError).message).toMatch(message);
    // This process is still running: only the login's own close can have freed the port.
    await expect(fetch(callback)).rejects.toThrow();
  });
});

describe('loopback listener (in process)', () => {
  it('binds 127.0.0.1, answers once, and refuses connections after close', async () => {
    const listener = await startLoopback();
    expect(listener.redirectUri).toBe(`http://127.0.0.1:${listener.port}/callback`);
    const controller = new AbortController();
    const waiting = listener.wait({ signal: controller.signal, judge: () => ({ ok: true }) });
    expect((await fetch(`http://127.0.0.1:${listener.port}/favicon.ico`)).status).toBe(404);
    const page = await fetch(`${listener.redirectUri}?code=abc&state=s`);
    expect(page.status).toBe(200);
    expect(page.headers.get('referrer-policy')).toBe('no-referrer');
    expect(page.headers.get('cache-control')).toBe('no-store');
    expect(await page.text()).toMatch(/close this tab/);
    expect((await waiting).get('code')).toBe('abc');
    expect((await fetch(`${listener.redirectUri}?code=again`)).status).toBe(410);
    await listener.close();
    await expect(fetch(listener.redirectUri)).rejects.toThrow();
  });

  it('rejects with the judge’s error and shows it on the page', async () => {
    const listener = await startLoopback();
    const waiting = listener.wait({
      signal: new AbortController().signal,
      judge: () => ({ ok: false, error: new Error('state mismatch') }),
    });
    const rejected = expect(waiting).rejects.toThrow('state mismatch');
    const page = await fetch(`${listener.redirectUri}?code=abc&state=other`);
    expect(page.status).toBe(400);
    expect(await page.text()).toMatch(/fedi-token: state mismatch/);
    await rejected;
    await listener.close();
  });

  it('ignores requests under another Host name (DNS rebinding)', async () => {
    const listener = await startLoopback();
    const controller = new AbortController();
    const waiting = listener.wait({ signal: controller.signal, judge: () => ({ ok: true }) });
    const rejected = expect(waiting).rejects.toThrow('stopped');
    // fetch() may not set Host; node:http may, as a rebinding page's request would arrive.
    const status = await new Promise<number | undefined>((resolve, reject) => {
      const req = request(
        `${listener.redirectUri}?code=abc`,
        { headers: { host: 'evil.example' } },
        (res) => {
          res.resume();
          resolve(res.statusCode);
        },
      );
      req.on('error', reject);
      req.end();
    });
    expect(status).toBe(421);
    controller.abort(new Error('stopped'));
    await rejected;
    await listener.close();
    await expect(fetch(listener.redirectUri)).rejects.toThrow();
  });
});

describe('pieces', () => {
  it('PKCE S256 matches RFC 7636 appendix B', () => {
    expect(challengeOf('dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk')).toBe(
      'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM',
    );
    const pkce = createPkce();
    expect(pkce.verifier).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(pkce.challenge).toBe(challengeOf(pkce.verifier));
    expect(createPkce().verifier).not.toBe(pkce.verifier);
  });

  it('compares state exactly', () => {
    expect(sameState('abc', 'abc')).toBe(true);
    expect(sameState('abc', 'abd')).toBe(false);
    expect(sameState('abc', 'abcd')).toBe(false);
    expect(sameState('abc', null)).toBe(false);
  });

  it('takes the code from a pasted redirect URL or a bare code', () => {
    expect(codeFrom('  abc123 ')).toBe('abc123');
    expect(codeFrom('https://gts.example/oauth/oob?code=XYZ')).toBe('XYZ');
    expect(codeFrom('   ')).toBeUndefined();
  });

  it('decides colour per stream: the results by stdout, progress and errors by stderr', () => {
    const capture = (isTTY: boolean) => {
      const stream = { isTTY, text: '', write: (chunk: string) => ((stream.text += chunk), true) };
      return stream;
    };
    const secrets = [{ name: 'FEDI_TOKEN', value: 't' }];
    for (const [outTTY, errTTY, env] of [
      [true, false, {}],
      [false, true, {}],
      [true, true, {}],
      [false, false, {}],
      [true, true, { NO_COLOR: '1' }],
    ] as const) {
      const stdout = capture(outTTY);
      const stderr = capture(errTTY);
      const terminal = new Terminal(stdout, stderr, env);
      printSecrets(terminal, secrets);
      terminal.link('https://social.example/oauth/authorize');
      terminal.error('failed');
      const coloured = (on: boolean) => on && env.NO_COLOR === undefined;
      expect(escapes(stdout.text).length > 0).toBe(coloured(outTTY));
      expect(escapes(stderr.text).length > 0).toBe(coloured(errTTY));
    }
  });

  it('colours only a terminal, and never with NO_COLOR', () => {
    expect(colourEnabled({ write: () => true, isTTY: true }, {})).toBe(true);
    expect(colourEnabled({ write: () => true, isTTY: true }, { NO_COLOR: '1' })).toBe(false);
    expect(colourEnabled({ write: () => true, isTTY: true }, { TERM: 'dumb' })).toBe(false);
    expect(colourEnabled({ write: () => true }, {})).toBe(false);
  });

  it('redacts every recorded secret, multi-line ones line by line', () => {
    const terminal = new Terminal({ write: () => true }, { write: () => true }, {});
    terminal.mask('tok-123');
    terminal.mask('line-one\nline-two');
    expect(terminal.redact('a tok-123 b line-two c line-one')).toBe('a *** b *** c ***');
  });

  it('caps each request at --timeout when that is shorter than 30 s', () => {
    const requestTimeout = (timeout: string): number | undefined => {
      const command = parseCommand(['login', 'https://a.example', '--timeout', timeout], {});
      return command.kind === 'login' ? command.options.requestTimeoutMs : undefined;
    };
    expect(requestTimeout('5')).toBe(5_000);
    expect(requestTimeout('30')).toBe(30_000);
    expect(requestTimeout('600')).toBe(30_000);
  });

  it('takes the client secret from FEDI_TOKEN_CLIENT_SECRET, only with --client-id', () => {
    const env = { FEDI_TOKEN_CLIENT_SECRET: 'from-env' };
    const withId = parseCommand(['login', 'https://a.example', '--client-id', 'id1'], env);
    expect(withId.kind === 'login' && withId.options.clientSecret).toBe('from-env');
    const withoutId = parseCommand(['login', 'https://a.example'], env);
    expect(withoutId.kind === 'login' && withoutId.options.clientSecret).toBeUndefined();
  });

  it('parses a full login command', () => {
    const command = parseCommand(
      ['login', 'https://social.example', '--scope', 'read,write', '--gh', '--prefix', 'site'],
      {},
    );
    expect(command).toEqual({ kind: 'login', options: expect.anything() });
    if (command.kind !== 'login') return;
    expect(command.options).toMatchObject({
      platform: 'auto',
      scope: 'read write',
      gh: true,
      prefix: 'SITE',
      timeoutMs: 300_000,
      requestTimeoutMs: 30_000,
      oob: false,
      json: false,
    });
  });
});

describe('the copied `gh secret set -f` command', () => {
  it('quotes the file path for the shell the user is in', () => {
    expect(shellQuote('/home/me/.fedi-token-unstored.env', 'linux')).toBe(
      '/home/me/.fedi-token-unstored.env',
    );
    expect(shellQuote("/home/O'Neil/my files/x.env", 'darwin')).toBe(
      "'/home/O'\\''Neil/my files/x.env'",
    );
    expect(shellQuote('C:\\Users\\me\\x.env', 'win32')).toBe('C:\\Users\\me\\x.env');
    // Single quotes mean nothing to cmd; double quotes work there and in PowerShell.
    expect(shellQuote("C:\\Users\\Ann O'Neil\\x.env", 'win32')).toBe(
      '"C:\\Users\\Ann O\'Neil\\x.env"',
    );
  });
});
