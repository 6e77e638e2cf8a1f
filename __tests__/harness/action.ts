/**
 * Runs a bundled entry point the way the GitHub runner does: `node dist/<entry>/index.js` on
 * Node 24 as a subprocess, inputs as INPUT_* variables (upper-cased, hyphens kept), state as
 * STATE_*, and the GITHUB_OUTPUT / GITHUB_ENV / GITHUB_STATE / GITHUB_STEP_SUMMARY files.
 * `findLeaks` replays the log as the runner masks it and reports any secret left visible.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

export const ROOT = resolve(import.meta.dirname, '..', '..');
/** The node@24 dev dependency: the runtime `runs.using: node24` gives an action. */
export const NODE24 = join(ROOT, 'node_modules', '.bin', 'node');

export type Entry = 'main' | 'post' | 'snapshot' | 'cli';

export interface ActionRun {
  exitCode: number | null;
  /** stdout and stderr interleaved as the runner would record them (stdout first per chunk). */
  log: string;
  stdout: string;
  stderr: string;
  outputs: Record<string, string>;
  env: Record<string, string>;
  state: Record<string, string>;
  summary: string;
  /** The log after the runner's masking: what a reader of the workflow log sees. */
  maskedLog: string;
  /** Values registered with ::add-mask::. */
  masks: string[];
}

export interface RunOptions {
  state?: Record<string, string>;
  env?: Record<string, string>;
  cwd?: string;
  timeoutMs?: number;
  /** Standard input for the process (the CLI's pasted code). */
  stdin?: string;
  args?: string[];
}

export async function runAction(
  entry: Entry,
  inputs: Record<string, string>,
  options: RunOptions = {},
): Promise<ActionRun> {
  const dir = mkdtempSync(join(tmpdir(), 'fedi-token-run-'));
  const files = {
    GITHUB_OUTPUT: join(dir, 'output'),
    GITHUB_ENV: join(dir, 'env'),
    GITHUB_STATE: join(dir, 'state'),
    GITHUB_STEP_SUMMARY: join(dir, 'summary'),
  };
  for (const file of Object.values(files)) writeFileSync(file, '');
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '',
    HOME: process.env.HOME ?? dir,
    RUNNER_TEMP: dir,
    GITHUB_ACTIONS: 'true',
    ...files,
    ...options.env,
  };
  for (const [name, value] of Object.entries(inputs)) {
    env[`INPUT_${name.replace(/ /g, '_').toUpperCase()}`] = value;
  }
  for (const [name, value] of Object.entries(options.state ?? {})) env[`STATE_${name}`] = value;

  try {
    const { exitCode, stdout, stderr, log } = await spawnLogged(
      NODE24,
      [join(ROOT, 'dist', entry, 'index.js'), ...(options.args ?? [])],
      {
        env,
        cwd: options.cwd ?? dir,
        timeoutMs: options.timeoutMs ?? 30_000,
        stdin: options.stdin,
      },
    );
    const { masked, masks } = maskLikeRunner(log);
    return {
      exitCode,
      log,
      stdout,
      stderr,
      outputs: parseFileCommand(readFileSync(files.GITHUB_OUTPUT, 'utf8')),
      env: parseFileCommand(readFileSync(files.GITHUB_ENV, 'utf8')),
      state: parseFileCommand(readFileSync(files.GITHUB_STATE, 'utf8')),
      summary: readFileSync(files.GITHUB_STEP_SUMMARY, 'utf8'),
      maskedLog: masked,
      masks,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export function spawnLogged(
  command: string,
  args: string[],
  options: { env: Record<string, string>; cwd: string; timeoutMs: number; stdin?: string },
): Promise<{ exitCode: number | null; stdout: string; stderr: string; log: string }> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(command, args, { env: options.env, cwd: options.cwd });
    let stdout = '';
    let stderr = '';
    let log = '';
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
      log += chunk.toString();
    });
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
      log += chunk.toString();
    });
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${args[0]} did not finish within ${options.timeoutMs} ms\n${log}`));
    }, options.timeoutMs);
    child.on('error', reject);
    child.on('close', (exitCode) => {
      clearTimeout(timer);
      resolvePromise({ exitCode, stdout, stderr, log });
    });
    if (options.stdin !== undefined) child.stdin.end(options.stdin);
    else child.stdin.end();
  });
}

/** Parses the `name<<delimiter … delimiter` format of GITHUB_OUTPUT, GITHUB_ENV and GITHUB_STATE. */
export function parseFileCommand(text: string): Record<string, string> {
  const result: Record<string, string> = {};
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] ?? '';
    const heredoc = /^([^=<]+)<<(.+)$/.exec(line);
    if (heredoc?.[1] && heredoc[2]) {
      const value: string[] = [];
      for (i++; i < lines.length && lines[i] !== heredoc[2]; i++) value.push(lines[i] ?? '');
      result[heredoc[1]] = value.join('\n');
    } else if (line.includes('=')) {
      const at = line.indexOf('=');
      result[line.slice(0, at)] = line.slice(at + 1);
    }
  }
  return result;
}

function unescapeCommandData(value: string): string {
  return value.replace(/%0D/g, '\r').replace(/%0A/g, '\n').replace(/%25/g, '%');
}

/**
 * The runner's masking, replayed: a value is hidden from the line after its ::add-mask:: on.
 * A line printed before the mask arrives is shown as it was: that is a leak.
 */
export function maskLikeRunner(log: string): { masked: string; masks: string[] } {
  const masks: string[] = [];
  const out: string[] = [];
  for (const line of log.split('\n')) {
    const command = /^::add-mask::(.*)$/.exec(line);
    if (command) {
      const value = unescapeCommandData(command[1] ?? '');
      if (value) masks.push(value);
      out.push('::add-mask::***');
      continue;
    }
    let masked = line;
    // Longest first, so a mask that contains another is replaced whole.
    for (const value of [...masks].sort((a, b) => b.length - a.length)) {
      masked = masked.split(value).join('***');
    }
    out.push(masked);
  }
  return { masked: out.join('\n'), masks };
}

/** Secrets visible in the masked log or in the job summary; empty when nothing leaked. */
export function findLeaks(run: ActionRun, secrets: readonly string[]): string[] {
  return secrets.filter(
    (secret) =>
      secret.length > 0 && (run.maskedLog.includes(secret) || run.summary.includes(secret)),
  );
}
