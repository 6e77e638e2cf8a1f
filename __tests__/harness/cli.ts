/**
 * Runs the bundled CLI (`node dist/cli/index.js`, Node 24) as a user would, but interactively: a
 * test reads its stderr as it arrives (to pick up the authorize URL), writes to its stdin, sends it
 * signals, and then collects the exit code and both streams.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
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

export function startCli(
  args: string[],
  options: { env?: Record<string, string>; deadlineMs?: number } = {},
): CliProcess {
  const child = spawn(NODE24, [CLI, ...args], {
    env: {
      PATH: process.env.PATH ?? '',
      HOME: process.env.HOME ?? '/tmp',
      FEDI_TOKEN_BROWSER: 'none',
      ...options.env,
    },
  });
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
