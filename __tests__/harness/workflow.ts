/**
 * Runs one job of a workflow file the way the GitHub runner does, as far as this repository's
 * workflows need: `uses:` of an action in the repository (`./`, `./snapshot`, `./.github/...`)
 * through runScript (INPUT_* with the action's defaults, the GITHUB_* files, the leak check),
 * `run:` steps with bash as `shell: bash` runs them, `if:` and `${{ }}` expressions, outputs,
 * GITHUB_ENV carried to later steps, and the post steps in reverse order when the job ends.
 * Actions from other repositories are not run: the caller lists what stands in for them (the
 * checkout is the repository itself). Anything else (another shell, an unknown expression
 * function, `continue-on-error`) throws, so a workflow cannot outgrow what the test checks.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parse } from 'yaml';
import { maskLikeRunner, parseFileCommand, ROOT, runScript, type ActionRun } from './action.ts';

type Value = string | number | boolean | null | undefined | Value[] | { [key: string]: Value };
type Context = Record<string, Value>;

// ---- expressions ---------------------------------------------------------------------------

type Token = { kind: 'id' | 'str' | 'num' | 'op'; text: string };

function tokenize(source: string): Token[] {
  const tokens: Token[] = [];
  const pattern =
    /\s*(?:('(?:[^']|'')*')|(\d+(?:\.\d+)?)|([A-Za-z_][\w-]*)|(==|!=|&&|\|\||[!().,[\]*]))/y;
  let at = 0;
  while (at < source.length) {
    if (/^\s*$/.test(source.slice(at))) break;
    pattern.lastIndex = at;
    const match = pattern.exec(source);
    if (!match) throw new Error(`Unsupported expression syntax at '${source.slice(at)}'`);
    at = pattern.lastIndex;
    if (match[1]) tokens.push({ kind: 'str', text: match[1].slice(1, -1).replace(/''/g, "'") });
    else if (match[2]) tokens.push({ kind: 'num', text: match[2] });
    else if (match[3]) tokens.push({ kind: 'id', text: match[3] });
    else tokens.push({ kind: 'op', text: match[4] ?? '' });
  }
  return tokens;
}

export interface JobStatus {
  failed: boolean;
}

/** GitHub's truthiness: false, 0, '', null (and a missing property) are false. */
const truthy = (value: Value): boolean =>
  !(value === false || value === 0 || value === '' || value === null || value === undefined);

/** Property access is case-insensitive, as in GitHub's contexts. */
function property(object: Value, name: string): Value {
  if (typeof object !== 'object' || object === null || Array.isArray(object)) return undefined;
  if (Object.hasOwn(object, name)) return object[name];
  const key = Object.keys(object).find((k) => k.toLowerCase() === name.toLowerCase());
  return key === undefined ? undefined : object[key];
}

/** `==` as GitHub compares: strings case-insensitively, other types only with their own. */
function equal(a: Value, b: Value): boolean {
  if (typeof a === 'string' && typeof b === 'string') return a.toLowerCase() === b.toLowerCase();
  if (typeof a !== typeof b)
    throw new Error(`Unsupported comparison of ${typeof a} and ${typeof b}`);
  return a === b;
}

export function evaluate(source: string, context: Context, status: JobStatus): Value {
  const tokens = tokenize(source);
  let at = 0;
  const peek = (text?: string) =>
    tokens[at] && (text === undefined || tokens[at]?.text === text) ? tokens[at] : undefined;
  const take = (text: string) => {
    if (!peek(text)) throw new Error(`Expected '${text}' in '${source}'`);
    at++;
  };
  const functions: Record<string, (args: Value[]) => Value> = {
    always: () => true,
    success: () => !status.failed,
    failure: () => status.failed,
    cancelled: () => false,
    tojson: ([value]) => JSON.stringify(value ?? null, null, 2),
  };

  const primary = (): Value => {
    const token = tokens[at++];
    if (!token) throw new Error(`Unexpected end of '${source}'`);
    if (token.kind === 'str') return token.text;
    if (token.kind === 'num') return Number(token.text);
    if (token.kind === 'op' && token.text === '(') {
      const value = or();
      take(')');
      return value;
    }
    if (token.kind === 'op' && token.text === '!') return !truthy(primary());
    if (token.kind !== 'id') throw new Error(`Unexpected '${token.text}' in '${source}'`);
    if (token.text === 'true' || token.text === 'false') return token.text === 'true';
    if (token.text === 'null') return null;
    if (peek('(')) {
      const fn = functions[token.text.toLowerCase()];
      if (!fn) throw new Error(`Unsupported function ${token.text}() in '${source}'`);
      at++;
      const args: Value[] = [];
      while (!peek(')')) {
        args.push(or());
        if (peek(',')) at++;
      }
      take(')');
      return fn(args);
    }
    let value = property(context, token.text);
    for (;;) {
      if (peek('.')) {
        at++;
        const name = tokens[at++];
        if (name?.kind !== 'id') throw new Error(`Expected a property name in '${source}'`);
        value = property(value, name.text);
      } else if (peek('[')) {
        at++;
        const key = or();
        take(']');
        value = property(value, String(key));
      } else return value;
    }
  };
  const comparison = (): Value => {
    let left = primary();
    while (peek('==') || peek('!=')) {
      const op = tokens[at++]?.text;
      const right = primary();
      left = op === '==' ? equal(left, right) : !equal(left, right);
    }
    return left;
  };
  const and = (): Value => {
    let left = comparison();
    while (peek('&&')) {
      at++;
      const right = comparison();
      left = truthy(left) ? right : left;
    }
    return left;
  };
  const or = (): Value => {
    let left = and();
    while (peek('||')) {
      at++;
      const right = and();
      left = truthy(left) ? left : right;
    }
    return left;
  };
  const value = or();
  if (at < tokens.length) throw new Error(`Unexpected '${tokens[at]?.text}' in '${source}'`);
  return value;
}

const asText = (value: Value): string =>
  value === null || value === undefined
    ? ''
    : typeof value === 'object'
      ? JSON.stringify(value)
      : String(value);

/** A value with `${{ }}` placeholders, filled in. */
export function interpolate(text: unknown, context: Context, status: JobStatus): string {
  return asText(text as Value).replace(/\$\{\{(.*?)\}\}/gs, (_, source: string) =>
    asText(evaluate(source, context, status)),
  );
}

/** An `if:`: an expression, with or without `${{ }}`; no `if` means `success()`. */
function condition(source: unknown, context: Context, status: JobStatus): boolean {
  if (source === undefined) return !status.failed;
  const text = String(source).trim();
  const inner = /^\$\{\{(.*)\}\}$/s.exec(text)?.[1] ?? text;
  return truthy(evaluate(inner, context, status));
}

// ---- the job -------------------------------------------------------------------------------

interface StepSpec {
  id?: string;
  name?: string;
  if?: string;
  uses?: string;
  run?: string;
  with?: Record<string, unknown>;
  env?: Record<string, unknown>;
  shell?: string;
  'working-directory'?: string;
  [key: string]: unknown;
}

interface ActionMetadata {
  inputs?: Record<string, { default?: unknown } | null>;
  runs: { using: string; main: string; post?: string; 'post-if'?: string };
}

export interface StepRun {
  id: string;
  label: string;
  outcome: 'success' | 'failure' | 'skipped';
  outputs: Record<string, string>;
  log: string;
  /** For actions: the run as runScript returned it (main, and post when it had one). */
  main?: ActionRun;
  post?: ActionRun;
}

export interface JobRun {
  steps: StepRun[];
  /** Actions from elsewhere, not run (`owner/repo@ref`). */
  notRun: string[];
  failed: boolean;
  /** Every step's log, in order, post steps last. */
  log: string;
  /** That log as the runner shows it: every mask, from where it was registered on. */
  maskedLog: string;
  masks: string[];
  /** The job's environment at the end (GITHUB_ENV included). */
  env: Record<string, string>;
}

export interface JobOptions {
  matrix?: Record<string, string>;
  /** Stands in for `runner.temp`; the job's files go there. */
  runnerTemp: string;
  /** Changes the parsed workflow before it runs (tests that must see a check fail). */
  edit?: (workflow: Workflow) => void;
  timeoutMs?: number;
}

export interface Workflow {
  env?: Record<string, unknown>;
  defaults?: { run?: { shell?: string } };
  jobs: Record<
    string,
    { env?: Record<string, unknown>; defaults?: { run?: { shell?: string } }; steps: StepSpec[] }
  >;
}

const SUPPORTED_KEYS = new Set([
  'id',
  'name',
  'if',
  'uses',
  'run',
  'with',
  'env',
  'shell',
  'working-directory',
]);

export async function runJob(file: string, jobId: string, options: JobOptions): Promise<JobRun> {
  const workflow = parse(readFileSync(resolve(ROOT, file), 'utf8')) as Workflow;
  options.edit?.(workflow);
  const job = workflow.jobs[jobId];
  if (!job) throw new Error(`${file} has no job ${jobId}`);
  const shell = job.defaults?.run?.shell ?? workflow.defaults?.run?.shell;

  const status: JobStatus = { failed: false };
  const stepContext: Record<string, Value> = {};
  const context: Context = {
    github: { workspace: ROOT, event_name: 'push' },
    runner: { os: 'Linux', temp: options.runnerTemp },
    matrix: options.matrix ?? {},
    steps: stepContext,
    env: {},
  };
  const jobEnv: Record<string, string> = {
    CI: 'true',
    GITHUB_WORKSPACE: ROOT,
    RUNNER_OS: 'Linux',
    RUNNER_TEMP: options.runnerTemp,
  };
  for (const [name, value] of Object.entries({ ...workflow.env, ...job.env })) {
    jobEnv[name] = interpolate(value, context, status);
  }
  context.env = { ...jobEnv };

  const run: JobRun = {
    steps: [],
    notRun: [],
    failed: false,
    log: '',
    maskedLog: '',
    masks: [],
    env: jobEnv,
  };
  const posts: {
    step: StepRun;
    script: string;
    inputs: Record<string, string>;
    postIf: string;
    state: Record<string, string>;
    env: Record<string, string>;
  }[] = [];

  for (const [index, spec] of job.steps.entries()) {
    const unknown = Object.keys(spec).filter((key) => !SUPPORTED_KEYS.has(key));
    if (unknown.length > 0) throw new Error(`Step ${index + 1} uses ${unknown.join(', ')}`);
    const id = spec.id ?? `__step${index + 1}`;
    const label = spec.name ?? spec.id ?? spec.uses ?? spec.run ?? `step ${index + 1}`;
    const step: StepRun = { id, label, outcome: 'skipped', outputs: {}, log: '' };
    run.steps.push(step);

    if (spec.uses && !spec.uses.startsWith('./')) {
      run.notRun.push(spec.uses);
      step.outcome = 'success';
    } else if (condition(spec.if, context, status)) {
      const env = { ...jobEnv };
      for (const [name, value] of Object.entries(spec.env ?? {})) {
        env[name] = interpolate(value, context, status);
      }
      if (spec.uses) {
        const actionDir = resolve(ROOT, spec.uses);
        const metadata = parse(
          readFileSync(join(actionDir, 'action.yml'), 'utf8'),
        ) as ActionMetadata;
        if (!/^node\d+$/.test(metadata.runs.using)) {
          throw new Error(`${spec.uses}: only JavaScript actions are supported`);
        }
        // The runner gives every declared input its default when the step leaves it out.
        const inputs: Record<string, string> = {};
        for (const [name, input] of Object.entries(metadata.inputs ?? {})) {
          if (input?.default !== undefined)
            inputs[name] = interpolate(input.default, context, status);
        }
        for (const [name, value] of Object.entries(spec.with ?? {})) {
          inputs[name] = interpolate(value, context, status);
        }
        const main = await runScript(join(actionDir, metadata.runs.main), inputs, {
          env,
          cwd: ROOT,
          timeoutMs: options.timeoutMs ?? 60_000,
        });
        step.main = main;
        step.log = main.log;
        step.outputs = main.outputs;
        step.outcome = main.exitCode === 0 ? 'success' : 'failure';
        Object.assign(jobEnv, main.env);
        if (metadata.runs.post) {
          posts.push({
            step,
            script: join(actionDir, metadata.runs.post),
            inputs,
            postIf: metadata.runs['post-if'] ?? 'always()',
            state: main.state,
            env,
          });
        }
      } else if (spec.run !== undefined) {
        const result = await runBash(interpolate(spec.run, context, status), {
          shell: spec.shell ?? shell,
          env,
          cwd: spec['working-directory'] ? resolve(ROOT, spec['working-directory']) : ROOT,
          timeoutMs: options.timeoutMs ?? 60_000,
          header: Object.entries(spec.env ?? {}).map(([name]) => `  ${name}: ${env[name]}`),
        });
        step.log = result.log;
        step.outputs = result.outputs;
        step.outcome = result.exitCode === 0 ? 'success' : 'failure';
        Object.assign(jobEnv, result.env);
      } else {
        throw new Error(`Step ${index + 1} has neither uses nor run`);
      }
    }
    if (step.outcome === 'failure') status.failed = true;
    run.log += step.log;
    // The steps context holds only the steps with an id.
    if (spec.id) {
      stepContext[id] = { outputs: step.outputs, outcome: step.outcome, conclusion: step.outcome };
    }
    context.env = { ...jobEnv };
  }

  for (const post of posts.reverse()) {
    if (!condition(post.postIf, context, status)) continue;
    const result = await runScript(post.script, post.inputs, {
      env: post.env,
      cwd: ROOT,
      state: post.state,
      timeoutMs: options.timeoutMs ?? 60_000,
    });
    post.step.post = result;
    run.log += result.log;
    if (result.exitCode !== 0) status.failed = true;
  }

  run.failed = status.failed;
  const masked = maskLikeRunner(run.log);
  run.maskedLog = masked.masked;
  run.masks = masked.masks;
  return run;
}

/** `shell: bash` as the runner runs it: `bash --noprofile --norc -eo pipefail {0}`. */
async function runBash(
  script: string,
  options: {
    shell: string | undefined;
    env: Record<string, string>;
    cwd: string;
    timeoutMs: number;
    header: string[];
  },
): Promise<{
  exitCode: number | null;
  log: string;
  outputs: Record<string, string>;
  env: Record<string, string>;
}> {
  if (options.shell !== 'bash') {
    throw new Error(
      `Only 'shell: bash' is supported (the same on every runner), not ${options.shell}`,
    );
  }
  const dir = mkdtempSync(join(tmpdir(), 'fedi-token-step-'));
  try {
    const files = { GITHUB_OUTPUT: join(dir, 'output'), GITHUB_ENV: join(dir, 'env') };
    for (const path of Object.values(files)) writeFileSync(path, '');
    const scriptFile = join(dir, 'step.sh');
    writeFileSync(scriptFile, script);
    const child = spawn('bash', ['--noprofile', '--norc', '-eo', 'pipefail', scriptFile], {
      cwd: options.cwd,
      env: {
        PATH: process.env.PATH ?? '',
        HOME: process.env.HOME ?? dir,
        GITHUB_ACTIONS: 'true',
        ...options.env,
        ...files,
      },
    });
    // What the runner prints before the step's own output: the script and the step's env.
    let log = `${script}\n${options.header.length ? `env:\n${options.header.join('\n')}\n` : ''}`;
    child.stdout.on('data', (chunk: Buffer) => (log += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (log += chunk.toString()));
    const exitCode = await new Promise<number | null>((resolvePromise, reject) => {
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        reject(new Error(`run step did not finish within ${options.timeoutMs} ms\n${log}`));
      }, options.timeoutMs);
      child.on('error', reject);
      child.on('close', (code) => {
        clearTimeout(timer);
        resolvePromise(code);
      });
    });
    return {
      exitCode,
      log,
      outputs: parseFileCommand(readFileSync(files.GITHUB_OUTPUT, 'utf8')),
      env: parseFileCommand(readFileSync(files.GITHUB_ENV, 'utf8')),
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
