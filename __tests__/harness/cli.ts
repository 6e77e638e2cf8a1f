/**
 * Runs the bundled CLI (`node dist/cli/index.js`, Node 24) as a user would, but interactively: a
 * test reads its stderr as it arrives (to pick up the authorize URL), writes to its stdin, sends it
 * signals, and then collects the exit code and both streams. Also the stand-ins a login needs
 * without Chromium: a "browser" command that only records the URL it was given, the user's click
 * on a Mastodon authorize page done over plain HTTP, and a proxy that records request bodies
 * (the loopback Mastodon server records only method, path and query), and a `gh` that records
 * its calls and fails or hangs where a test says.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import {
  chmodSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { createServer, request, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NODE24, ROOT } from './action.ts';

export const CLI = join(ROOT, 'dist', 'cli', 'index.js');

export interface CliExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface CliProcess {
  child: ChildProcessWithoutNullStreams;
  readonly stdout: string;
  readonly stderr: string;
  /** Resolves with the first match of `pattern` in stderr (waiting for it to appear). */
  waitForStderr(pattern: RegExp, deadlineMs?: number): Promise<RegExpMatchArray>;
  /** The authorize URL the CLI printed. */
  waitForUrl(): Promise<string>;
  exited: Promise<CliExit>;
}

/** The CLI's environment: FEDI_TOKEN_BROWSER=none unless `env` says otherwise; undefined unsets. */
export function cliEnv(env: Record<string, string | undefined> = {}): Record<string, string> {
  const merged: Record<string, string | undefined> = {
    PATH: process.env.PATH ?? '',
    HOME: process.env.HOME ?? '/tmp',
    FEDI_TOKEN_BROWSER: 'none',
    ...env,
  };
  return Object.fromEntries(
    Object.entries(merged).filter((entry): entry is [string, string] => entry[1] !== undefined),
  );
}

export function startCli(
  args: string[],
  options: { env?: Record<string, string | undefined>; deadlineMs?: number; cwd?: string } = {},
): CliProcess {
  const child = spawn(NODE24, [CLI, ...args], { env: cliEnv(options.env), cwd: options.cwd });
  let stdout = '';
  let stderr = '';
  const waiters = new Set<() => void>();
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
    for (const check of waiters) check();
  });
  const deadline = setTimeout(() => child.kill('SIGKILL'), options.deadlineMs ?? 60_000);
  const exited = new Promise<CliExit>((resolve) => {
    child.on('close', (code, signal) => {
      clearTimeout(deadline);
      for (const check of waiters) check();
      resolve({ code, signal, stdout, stderr });
    });
  });
  const waitForStderr = (pattern: RegExp, deadlineMs = 30_000): Promise<RegExpMatchArray> =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        waiters.delete(check);
        reject(new Error(`no ${pattern} on stderr within ${deadlineMs} ms:\n${stderr}`));
      }, deadlineMs);
      function check(): void {
        const match = pattern.exec(stderr);
        if (match) {
          clearTimeout(timer);
          waiters.delete(check);
          resolve(match);
        } else if (child.exitCode !== null || child.signalCode !== null) {
          clearTimeout(timer);
          waiters.delete(check);
          reject(new Error(`the CLI exited before printing ${pattern}:\n${stderr}\n${stdout}`));
        }
      }
      waiters.add(check);
      check();
    });
  return {
    child,
    get stdout() {
      return stdout;
    },
    get stderr() {
      return stderr;
    },
    waitForStderr,
    waitForUrl: async () => (await waitForStderr(/^ {2}(https?:\/\/\S+)$/m))[1] ?? '',
    exited,
  };
}

export interface BrowserStub {
  /** An executable to put in FEDI_TOKEN_BROWSER or BROWSER. */
  command: string;
  /** The arguments of the first run, once it has happened. */
  opened(deadlineMs?: number): Promise<string[]>;
  remove(): void;
}

/** A "browser" that writes its arguments to a file (renamed into place, so never read half). */
export function browserStub(): BrowserStub {
  const dir = mkdtempSync(join(tmpdir(), 'fedi-token-browser-'));
  const command = join(dir, 'browser');
  const log = join(dir, 'opened');
  writeFileSync(
    command,
    `#!/bin/sh\nprintf '%s\\n' "$@" > '${log}.tmp' && mv '${log}.tmp' '${log}'\n`,
  );
  chmodSync(command, 0o755);
  return {
    command,
    async opened(deadlineMs = 15_000) {
      const until = Date.now() + deadlineMs;
      while (!existsSync(log)) {
        if (Date.now() > until)
          throw new Error(`the browser stub was not run within ${deadlineMs} ms`);
        await new Promise((resolve) => setTimeout(resolve, 25));
      }
      return readFileSync(log, 'utf8').trimEnd().split('\n');
    },
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/**
 * The user's click on the loopback Mastodon server's authorize page, over HTTP: the page is
 * loaded, its form posted back with the decision, and the redirect followed to the CLI's
 * listener. `state` replaces the state, as a forged answer from another site would. Returns the
 * listener's answer.
 */
export async function answerAuthorize(
  authorizeUrl: string,
  options: { decision?: 'approve' | 'deny'; state?: string } = {},
): Promise<{ status: number; text: string }> {
  const url = new URL(authorizeUrl);
  const page = await fetch(url);
  if (page.status !== 200)
    throw new Error(`authorize page: HTTP ${page.status}: ${await page.text()}`);
  await page.text();
  const form = new URLSearchParams(url.searchParams);
  form.set('decision', options.decision ?? 'approve');
  const answer = await fetch(new URL(url.pathname, url), {
    method: 'POST',
    body: form,
    redirect: 'manual',
  });
  await answer.text();
  const location = answer.headers.get('location');
  if (!location) throw new Error(`authorize decision: HTTP ${answer.status} without a redirect`);
  const callback = new URL(location);
  if (options.state !== undefined) callback.searchParams.set('state', options.state);
  const landed = await fetch(callback);
  return { status: landed.status, text: await landed.text() };
}

export interface RecordedBody {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  body: string;
}

export interface RecordingProxy {
  url: string;
  bodies: RecordedBody[];
  close(): Promise<void>;
}

/** A loopback reverse proxy to `target` that keeps every request's raw body. */
export async function startRecordingProxy(target: string): Promise<RecordingProxy> {
  const upstream = new URL(target);
  const bodies: RecordedBody[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      bodies.push({
        method: req.method ?? '',
        path: new URL(req.url ?? '/', upstream).pathname,
        headers: req.headers,
        body: body.toString('utf8'),
      });
      const forward = request(
        new URL(req.url ?? '/', upstream),
        { method: req.method, headers: { ...req.headers, host: upstream.host } },
        (answer) => {
          res.writeHead(answer.statusCode ?? 502, answer.headers);
          answer.pipe(res);
        },
      );
      forward.on('error', () => res.destroy());
      forward.end(body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    bodies,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

export interface GhBehaviour {
  /** `gh auth status` fails as it does when nobody is logged in. */
  loggedOut?: boolean;
  /** `gh secret list` fails as it does for a repository the login cannot see. */
  repoUnreachable?: boolean;
  /** The Nth `gh secret set` (1-based) fails with HTTP 403. */
  failSet?: number;
  /** The Nth `gh secret set` (1-based) never ends on its own. */
  hangSet?: number;
}

export interface GhCall {
  argv: string[];
  stdin: string;
  pid: number;
}

export interface GhStub {
  /** PATH with the stub first, and where it logs. */
  env(behaviour?: GhBehaviour): Record<string, string>;
  /** The calls logged under `env`'s log so far, `--version` left out. */
  calls(env: Record<string, string>): GhCall[];
  /** Resolves once `count` calls are logged. */
  waitForCalls(env: Record<string, string>, count: number, deadlineMs?: number): Promise<GhCall[]>;
  remove(): void;
}

/** A `gh` on PATH that logs each call's arguments, standard input and pid (a file per call). */
export function ghStub(): GhStub {
  const dir = mkdtempSync(join(tmpdir(), 'fedi-token-gh-'));
  writeFileSync(
    join(dir, 'gh'),
    `#!/bin/sh
if [ "$1" = "--version" ]; then echo "gh version 2.63.0 (stub)"; exit 0; fi
log="$GH_STUB_LOG"
i=$(ls "$log" | grep -c '\\.argv$')
cat > "$log/$i.stdin"
echo $$ > "$log/$i.pid"
printf '%s\\n' "$@" > "$log/$i.tmp" && mv "$log/$i.tmp" "$log/$i.argv"
case "$1 $2" in
  "auth status")
    if [ -n "$GH_STUB_LOGGED_OUT" ]; then
      echo "You are not logged into any GitHub hosts. To log in, run: gh auth login" >&2; exit 1
    fi
    exit 0 ;;
  "secret list")
    if [ -n "$GH_STUB_REPO_UNREACHABLE" ]; then
      echo "HTTP 404: Not Found (https://api.github.com/repos/octo/gone/actions/secrets?per_page=100)" >&2; exit 1
    fi
    echo "OTHER_SECRET	2024-05-01T10:00:00Z"; exit 0 ;;
  "secret set")
    n=$(cat "$log"/*.argv | grep -c '^set$')
    if [ "$n" = "$GH_STUB_HANG_SET" ]; then exec sleep 60; fi
    if [ "$n" = "$GH_STUB_FAIL_SET" ]; then
      echo "HTTP 403: Resource not accessible by integration" >&2; exit 1
    fi
    exit 0 ;;
esac
echo "stub gh: unexpected call: $*" >&2
exit 64
`,
  );
  chmodSync(join(dir, 'gh'), 0o755);
  const calls = (env: Record<string, string>): GhCall[] => {
    const log = env.GH_STUB_LOG ?? '';
    const count = readdirSync(log).filter((name) => name.endsWith('.argv')).length;
    return Array.from({ length: count }, (_, i) => ({
      argv: readFileSync(join(log, `${i}.argv`), 'utf8')
        .trimEnd()
        .split('\n'),
      stdin: readFileSync(join(log, `${i}.stdin`), 'utf8'),
      pid: Number(readFileSync(join(log, `${i}.pid`), 'utf8')),
    }));
  };
  return {
    env(behaviour = {}) {
      const env: Record<string, string> = {
        PATH: `${dir}:${process.env.PATH ?? ''}`,
        GH_STUB_LOG: mkdtempSync(join(dir, 'log-')),
      };
      if (behaviour.loggedOut) env.GH_STUB_LOGGED_OUT = '1';
      if (behaviour.repoUnreachable) env.GH_STUB_REPO_UNREACHABLE = '1';
      if (behaviour.failSet !== undefined) env.GH_STUB_FAIL_SET = String(behaviour.failSet);
      if (behaviour.hangSet !== undefined) env.GH_STUB_HANG_SET = String(behaviour.hangSet);
      return env;
    },
    calls,
    async waitForCalls(env, count, deadlineMs = 15_000) {
      const until = Date.now() + deadlineMs;
      for (;;) {
        const made = calls(env);
        if (made.length >= count) return made;
        if (Date.now() > until) throw new Error(`gh was called ${made.length} times, not ${count}`);
        await new Promise((resolve) => setTimeout(resolve, 25));
      }
    },
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}
