/**
 * Runs the bundled CLI (`node dist/cli/index.js`, Node 24) as a user would, but interactively: a
 * test reads its stderr as it arrives (to pick up the authorize URL), writes to its stdin, sends it
 * signals, and then collects the exit code and both streams. Also the stand-ins a login needs
 * without Chromium: a "browser" command that only records the URL it was given, the user's click
 * on a Mastodon authorize page done over plain HTTP, and a proxy that records request bodies
 * (the loopback Mastodon server records only method, path and query).
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
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
  options: { env?: Record<string, string | undefined>; deadlineMs?: number } = {},
): CliProcess {
  const child = spawn(NODE24, [CLI, ...args], { env: cliEnv(options.env) });
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
