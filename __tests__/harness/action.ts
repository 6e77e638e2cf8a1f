/**
 * Runs a bundled entry point the way the GitHub runner does: `node dist/<entry>/index.js` on
 * Node 24 as a subprocess, inputs as INPUT_* variables (upper-cased, hyphens kept), state as
 * STATE_*, and the GITHUB_OUTPUT / GITHUB_ENV / GITHUB_STATE / GITHUB_STEP_SUMMARY files.
 * Every run is checked for leaks before it is returned (`checkLeaks`): a test cannot forget to
 * look, and a secret visible to a reader of the workflow log fails the test that produced it.
 * `findLeaks` remains for tests that check extra values of their own.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

export const ROOT = resolve(import.meta.dirname, '..', '..');
/**
 * The node@24 dev dependency: the runtime `runs.using: node24` gives an action. On Windows
 * node_modules/.bin/node is a shell shim that spawn cannot start (there are node.cmd and
 * node.ps1 beside it); the package's installer leaves the binary itself in node/bin/node.exe.
 */
export function node24Path(platform: NodeJS.Platform = process.platform): string {
  return platform === 'win32'
    ? join(ROOT, 'node_modules', 'node', 'bin', 'node.exe')
    : join(ROOT, 'node_modules', '.bin', 'node');
}
export const NODE24 = node24Path();

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

/**
 * The inputs each entry masks as soon as it reads them (src/inputs.ts, src/snapshot/config.ts).
 * A copy, not an import: dropping a name from src must fail a test, not quietly narrow the check.
 */
const SECRET_INPUTS = [
  'access-token',
  'refresh-token',
  'client-secret',
  'code',
  'code-verifier',
  'github-token',
];
const SECRET_OUTPUTS = ['access-token', 'refresh-token'];
/** Where main leaves the token for post's revoke-on-exit. */
const SECRET_STATE = ['revoke-token'];
/**
 * Shorter values are not checked: a real secret is longer, and a short one matches ordinary log
 * text (`true`, an HTTP status) by coincidence.
 */
export const MIN_SECRET_LENGTH = 6;

export interface Leak {
  /** Where the value came from: `input access-token`, `::add-mask:: #2`, `output refresh-token`. */
  kind: string;
  /** A hint that identifies the value without revealing it: its first characters and length. */
  hint: string;
  /** Where it is visible. */
  where: string;
}

/** Thrown by runAction when a run left a secret visible; the message never holds a whole value. */
export class LeakError extends Error {
  readonly leaks: Leak[];
  /** `entry`: the bundle (`main`) or script that ran. */
  constructor(entry: string, leaks: Leak[]) {
    super(
      `The ${entry} run leaked ${leaks.length === 1 ? 'a secret' : `${leaks.length} secrets`}:\n` +
        leaks.map((leak) => `  ${leak.kind} ${leak.hint}: ${leak.where}`).join('\n'),
    );
    this.name = 'LeakError';
    this.leaks = leaks;
  }
}

export function runAction(
  entry: Entry,
  inputs: Record<string, string>,
  options: RunOptions = {},
): Promise<ActionRun> {
  return runScript(join(ROOT, 'dist', entry, 'index.js'), inputs, options, entry);
}

/**
 * Any JavaScript action file run as the runner runs it (runAction's bundles, or the `main` and
 * `post` of another action in the repository), with the same files and the same leak check.
 */
export async function runScript(
  script: string,
  inputs: Record<string, string>,
  options: RunOptions = {},
  label = script,
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
      [script, ...(options.args ?? [])],
      {
        env,
        cwd: options.cwd ?? dir,
        timeoutMs: options.timeoutMs ?? 30_000,
        stdin: options.stdin,
      },
    );
    const { masked, masks } = maskLikeRunner(log);
    const run: ActionRun = {
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
    const leaks = checkLeaks(run, inputs, options);
    if (leaks.length > 0) throw new LeakError(label, leaks);
    return run;
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
  // os.EOL ends the lines: CRLF where @actions/core writes them on Windows.
  const lines = text.split(/\r?\n/);
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
 * The command a runner reads in a line, if any (actions/runner, src/Runner.Common/ActionCommand.cs
 * and src/Runner.Worker/ActionCommandManager.cs): `::name props::data` at the start of the line
 * after leading spaces, else the old `##[name props]data` anywhere in it.
 */
function commandOf(line: string): { name: string; data: string } | undefined {
  const v2 = /^::([^:]*?)::(.*)$/s.exec(line.trimStart());
  const v1 = v2 ? undefined : /##\[([^\]]*)\](.*)$/s.exec(line);
  const found = v2 ?? v1;
  if (!found) return undefined;
  const name = (found[1] ?? '').split(' ')[0] ?? '';
  return name ? { name: name.toLowerCase(), data: found[2] ?? '' } : undefined;
}

/**
 * The runner's masking, replayed: a value is hidden from the line after its ::add-mask:: on.
 * A line printed before the mask arrives is shown as it was: that is a leak. As on the runner,
 * `stop-commands` makes every command line plain text until its token comes back, so a mask sent
 * meanwhile is printed, not registered.
 */
export function maskLikeRunner(
  log: string,
  replacement = '***',
): { masked: string; masks: string[] } {
  const masks: string[] = [];
  const out: string[] = [];
  let stopToken: string | undefined;
  for (const line of log.split('\n')) {
    const command = commandOf(line);
    if (stopToken !== undefined) {
      if (command?.name === stopToken.toLowerCase()) stopToken = undefined;
    } else if (command?.name === 'stop-commands' && command.data) {
      stopToken = unescapeCommandData(command.data);
    } else if (command?.name === 'add-mask') {
      const value = unescapeCommandData(command.data);
      if (value) masks.push(value);
      out.push(`::add-mask::${replacement}`);
      continue;
    }
    let masked = line;
    // Longest first, so a mask that contains another is replaced whole.
    for (const value of [...masks].sort((a, b) => b.length - a.length)) {
      masked = masked.split(value).join(replacement);
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

/**
 * Every secret a run knows of, checked where a reader of the workflow could see it: the inputs
 * the action masks, the values the run itself registered with ::add-mask::, its secret outputs,
 * the variable it exported and the state handed to post. A secret counts as leaked when the
 * masked log or the job summary (which the action must keep free of secrets) shows it whole, and
 * a secret output or exported value also when the run never registered it as a mask: the next
 * step that prints it would show it.
 */
export function checkLeaks(
  run: ActionRun,
  inputs: Record<string, string>,
  options: Pick<RunOptions, 'state'> = {},
): Leak[] {
  const known = new Map<string, string>();
  const note = (kind: string, value: string | undefined): void => {
    // As core.getInput and the runner see it: trimmed, and line by line for multi-line values,
    // because the runner matches masks within a line.
    const text = (value ?? '').trim();
    for (const part of [text, ...text.split(/\r?\n/).map((line) => line.trim())]) {
      if (part.length >= MIN_SECRET_LENGTH && !known.has(part)) known.set(part, kind);
    }
  };
  for (const name of SECRET_INPUTS) note(`input ${name}`, inputs[name]);
  for (const name of SECRET_STATE) note(`state ${name}`, options.state?.[name]);
  const unmaskedOutputs: [string, string][] = [];
  const exported = inputs['export-env']?.trim();
  const published: [string, string | undefined][] = [
    ...SECRET_OUTPUTS.map((name): [string, string | undefined] => [
      `output ${name}`,
      run.outputs[name],
    ]),
    ...SECRET_STATE.map((name): [string, string | undefined] => [
      `saved state ${name}`,
      run.state[name],
    ]),
    // hasOwn: a workflow may name the variable `valueOf` or `constructor`.
    [
      `exported ${exported ?? ''}`,
      exported && Object.hasOwn(run.env, exported) ? run.env[exported] : undefined,
    ],
  ];
  for (const [kind, value] of published) {
    note(kind, value);
    if (value && value.length >= MIN_SECRET_LENGTH && !run.masks.includes(value)) {
      unmaskedOutputs.push([kind, value]);
    }
  }
  run.masks.forEach((value, index) => note(`::add-mask:: #${index + 1}`, value));

  // A secret that is also part of a non-secret input (property tests pass `validate` as both
  // access-token and operation) is expected in the log and summary; seeing it proves nothing.
  const plain = Object.entries(inputs)
    .filter(([name]) => !SECRET_INPUTS.includes(name))
    .map(([, value]) => value.toLowerCase());
  for (const value of known.keys()) {
    if (plain.some((text) => text.includes(value.toLowerCase()))) known.delete(value);
  }

  // Masked again with a marker no secret contains: with the runner's `***`, a secret such as
  // `a***b` could appear where masks meet, and that would not be a leak.
  const secrets = [...known.keys()];
  let code = 0xe000;
  while (secrets.some((secret) => secret.includes(String.fromCodePoint(code)))) code++;
  const marker = String.fromCodePoint(code);
  const logLines = maskLikeRunner(run.log, marker).masked.split('\n');

  const leaks: Leak[] = [];
  const hint = (value: string) =>
    `${JSON.stringify(Array.from(value).slice(0, 3).join(''))}… (${value.length} chars)`;
  for (const [value, kind] of known) {
    const line = logLines.findIndex((text) => text.includes(value));
    if (line >= 0) {
      leaks.push({ kind, hint: hint(value), where: `visible in the masked log, line ${line + 1}` });
    }
    if (run.summary.includes(value)) {
      leaks.push({ kind, hint: hint(value), where: 'visible in the job summary' });
    }
  }
  for (const [kind, value] of unmaskedOutputs) {
    leaks.push({ kind, hint: hint(value), where: 'never registered with ::add-mask::' });
  }
  return leaks;
}
