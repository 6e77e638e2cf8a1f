// The repository's checks, one stage at a time: `node scripts/check.mjs` runs them all in order
// (what .ci/run does on a clean clone), `node scripts/check.mjs lint test` only those, and
// `--list` prints the stage names. .github/workflows/ci.yml runs each stage as a step of its own;
// __tests__/workflows.test.ts keeps its steps equal to this list, so the two cannot drift apart.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const windows = process.platform === 'win32';
/**
 * The node@24 dev dependency: the runtime the action's `runs.using: node24` gives the bundles
 * (on Windows, .bin/node is a shell shim; the binary is node/bin/node.exe).
 */
const NODE24 = windows
  ? join(ROOT, 'node_modules', 'node', 'bin', 'node.exe')
  : join(ROOT, 'node_modules', '.bin', 'node');

class CheckFailed extends Error {}

/** Runs a command in the repository with the output shown; returns it when `capture` is set. */
function run(command, args, { env = {}, capture = false, allowFailure = false } = {}) {
  const result = spawnSync(command, args, {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: capture ? ['ignore', 'pipe', 'pipe'] : 'inherit',
    encoding: 'utf8',
    // npm is npm.cmd on Windows, and Node starts a .cmd only through a shell.
    shell: windows && (command === 'npm' || command.endsWith('.cmd')),
  });
  if (result.error) throw result.error;
  if (result.status !== 0 && !allowFailure) {
    throw new CheckFailed(`${command} ${args.join(' ')} exited with ${result.status}`);
  }
  return `${result.stdout ?? ''}${result.stderr ?? ''}`;
}

/** A bundle must start: ncc can emit one that builds but fails on its first line. */
function expectError(what, output, input) {
  if (!output.includes(`::error::Input '${input}'`)) {
    throw new CheckFailed(`${what} did not start:\n${output}`);
  }
}

export const STAGES = {
  install: () => run('npm', ['ci', '--no-audit', '--no-fund']),
  lint: () => run('npm', ['run', 'lint']),
  typecheck: () => run('npm', ['run', 'typecheck']),
  dist: () => {
    run('npm', ['run', 'bundle']);
    const changed = run('git', ['status', '--porcelain', '--untracked-files=all', '--', 'dist'], {
      capture: true,
    });
    if (changed.trim()) {
      throw new CheckFailed(
        `dist/ differs from a fresh 'npm run bundle': rebuild and commit it.\n${changed}`,
      );
    }
  },
  start: () => {
    const bundle = (entry, env) =>
      run(NODE24, [join('dist', entry, 'index.js')], { env, capture: true, allowFailure: true });
    expectError('dist/main', bundle('main', { INPUT_OPERATION: 'nonsense' }), 'operation');
    run(NODE24, [join('dist', 'post', 'index.js')]);
    expectError(
      'dist/snapshot',
      bundle('snapshot', {
        INPUT_MODE: 'sideways',
        INPUT_INSTANCE: 'https://social.example',
        'INPUT_ACCESS-TOKEN': 'x',
      }),
      'mode',
    );
    run(NODE24, [join('dist', 'cli', 'index.js'), '--version']);
  },
  'local-action': () => {
    const dir = mkdtempSync(join(tmpdir(), 'fedi-token-check-'));
    try {
      const envFile = join(dir, '.env');
      writeFileSync(envFile, 'INPUT_OPERATION=nonsense\n');
      const localAction = join(
        ROOT,
        'node_modules',
        '.bin',
        windows ? 'local-action.cmd' : 'local-action',
      );
      const output = run(localAction, ['.', 'src/main.ts', envFile], {
        capture: true,
        allowFailure: true,
      });
      expectError('npm run local-action (src/main.ts)', output, 'operation');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
  demo: () => run('npm', ['run', 'demo']),
  test: () => run('npm', ['test']),
};

async function main(args) {
  if (args.includes('--list')) {
    console.log(Object.keys(STAGES).join('\n'));
    return;
  }
  const unknown = args.filter((name) => !Object.hasOwn(STAGES, name));
  if (unknown.length > 0) {
    throw new CheckFailed(
      `Unknown stage ${unknown.join(', ')}; the stages are ${Object.keys(STAGES).join(', ')}`,
    );
  }
  for (const name of args.length > 0 ? args : Object.keys(STAGES)) {
    console.log(`== ${name}`);
    await STAGES[name]();
  }
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  try {
    await main(process.argv.slice(2));
  } catch (error) {
    if (!(error instanceof CheckFailed)) throw error;
    console.error(error.message);
    process.exitCode = 1;
  }
}
