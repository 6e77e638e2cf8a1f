/**
 * The CLI's manners and its failure paths without a browser: arguments checked before any request,
 * --help/--version, exit codes, the timeout and Ctrl-C, the pasted-code path's end of input, and the
 * loopback listener's own rules (in process, so "closed" can be checked directly).
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { parseCommand } from '../src/cli/args.ts';
import { EXIT } from '../src/cli/exit.ts';
import { startLoopback } from '../src/cli/loopback.ts';
import { colourEnabled, Terminal } from '../src/cli/output.ts';
import { codeFrom } from '../src/cli/paste.ts';
import { challengeOf, createPkce, sameState } from '../src/cli/pkce.ts';
import { ROOT } from './harness/action.ts';
import { startCli } from './harness/cli.ts';
import { startMastodonServer, type MastodonServer } from './servers/mastodon.ts';

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
  it('times out after --timeout with exit code 4 and closes the listener', async () => {
    const cli = startCli(['login', server.url, '--platform', 'mastodon', '--timeout', '1']);
    const url = new URL(await cli.waitForUrl());
    const callback = url.searchParams.get('redirect_uri') ?? '';
    const exit = await cli.exited;
    expect(exit.code).toBe(EXIT.timeout);
    expect(exit.stderr).toMatch(/No approval arrived within 1 s \(--timeout\); nothing was stored/);
    expect(exit.stdout).toBe('');
    await expect(fetch(callback)).rejects.toThrow();
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
      oob: false,
      json: false,
    });
  });
});
