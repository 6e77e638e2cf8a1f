// Issue 2 benchmark: cold-start CPU of the bundled main step (a `validate` against the loopback
// Mastodon server) as a ratio to a bare `node` start in the same run; bundle sizes; requests per
// operation. Prints numbers; asserts nothing (targets: ≤ 1.25× bare node, main ≤ 250 kB).
import { execFile, execFileSync } from 'node:child_process';
import { promisify } from 'node:util';
import {
  mkdirSync,
  mkdtempSync,
  rmSync,
  readdirSync,
  readFileSync,
  statSync,
  writeFileSync,
  existsSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { startMastodonServer } from '../../__tests__/servers/mastodon.ts';

const ROOT = resolve(import.meta.dirname, '..', '..');
// On Windows .bin/node is a shell shim; the binary is node/bin/node.exe.
const NODE =
  process.platform === 'win32'
    ? join(ROOT, 'node_modules', 'node', 'bin', 'node.exe')
    : join(ROOT, 'node_modules', '.bin', 'node');
const PROBE = join(ROOT, 'scripts', 'bench', 'cpu-probe.mjs');
const RUNS = Number(process.env.BENCH_RUNS ?? 11);

// Asynchronous on purpose: the loopback server lives in this process, and a synchronous spawn
// would block it from answering the very request being measured.
const run = promisify(execFile);

const median = (values) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
};

function runnerEnv(dir, inputs) {
  const env = { PATH: process.env.PATH, HOME: dir, RUNNER_TEMP: dir };
  for (const name of ['GITHUB_OUTPUT', 'GITHUB_ENV', 'GITHUB_STATE', 'GITHUB_STEP_SUMMARY']) {
    env[name] = join(dir, name);
    writeFileSync(env[name], '');
  }
  for (const [name, value] of Object.entries(inputs)) env[`INPUT_${name.toUpperCase()}`] = value;
  return env;
}

/** CPU microseconds of one process, measured by the preloaded probe. */
async function cpuOf(args, env) {
  const dir = mkdtempSync(join(tmpdir(), 'fedi-bench-'));
  const probeFile = join(dir, 'cpu');
  await run(NODE, ['--import', PROBE, ...args], { env: { ...env, CPU_PROBE_FILE: probeFile } });
  return Number(readFileSync(probeFile, 'utf8').trim());
}

const floorDir = join(ROOT, '.build', `bench-floor-${process.pid}`);
function buildFloorBundles() {
  const sources = {
    'only @actions/core': "import * as core from '@actions/core';\ncore.getInput('operation');\n",
    'only zod/mini':
      "import * as z from 'zod/mini';\nz.safeParse(z.object({ a: z.string() }), { a: 'x' });\n",
  };
  mkdirSync(floorDir, { recursive: true });
  const files = {};
  for (const [index, [name, source]] of Object.entries(sources).entries()) {
    writeFileSync(join(floorDir, `floor-${index}.mjs`), source);
    execFileSync(
      join(ROOT, 'node_modules', '.bin', 'ncc'),
      ['build', `floor-${index}.mjs`, '-o', `out-${index}`, '--minify', '--no-cache', '--quiet'],
      { cwd: floorDir, stdio: 'ignore' },
    );
    files[name] = join(floorDir, `out-${index}`, 'index.mjs');
  }
  return files;
}

const server = await startMastodonServer({ flavour: 'mastodon' });
try {
  const token = server.issueToken({ scope: 'read' });
  const dir = mkdtempSync(join(tmpdir(), 'fedi-bench-'));
  const env = runnerEnv(dir, {
    operation: 'validate',
    instance: server.url,
    platform: 'mastodon',
    'access-token': token,
  });
  const bare = [];
  const action = [];
  // The same request with no dependencies at all (plain http, then with `https` loaded as any
  // real instance needs): what any implementation would pay on top of a bare start.
  const floorRequest = { 'node:http request': [], 'node:http request + https': [] };
  const FLOOR = join(ROOT, 'scripts', 'bench', 'floor-request.mjs');
  // Interleaved, so drift in machine load hits every side alike.
  for (let i = 0; i < RUNS; i++) {
    bare.push(await cpuOf(['-e', '0'], env));
    action.push(await cpuOf([join(ROOT, 'dist', 'main', 'index.js')], env));
    floorRequest['node:http request'].push(await cpuOf([FLOOR], env));
    floorRequest['node:http request + https'].push(
      await cpuOf([FLOOR], { ...env, FLOOR_TLS: '1' }),
    );
  }
  // The floor the fixed dependencies set: bundles that only import @actions/core, or zod/mini,
  // built the same way as dist/ and measured in the same loop.
  const floors = buildFloorBundles();
  const floorCpu = Object.fromEntries(Object.keys(floors).map((name) => [name, []]));
  for (let i = 0; i < RUNS; i++)
    for (const [name, file] of Object.entries(floors))
      floorCpu[name].push(await cpuOf([file], env));
  rmSync(floorDir, { recursive: true, force: true });
  const bareMs = median(bare) / 1000;
  const actionMs = median(action) / 1000;
  console.log(`cold start CPU, median of ${RUNS} (node ${process.version}):`);
  console.log(`  bare node          ${bareMs.toFixed(1)} ms`);
  console.log(`  main (validate)    ${actionMs.toFixed(1)} ms`);
  console.log(`  ratio              ${(actionMs / bareMs).toFixed(2)}x   (target <= 1.25x)`);
  console.log('  floors, measured in the same loop:');
  for (const [name, values] of Object.entries({ ...floorRequest, ...floorCpu })) {
    const ms = median(values) / 1000;
    console.log(`    ${name.padEnd(26)} ${ms.toFixed(1)} ms   ${(ms / bareMs).toFixed(2)}x`);
  }

  console.log('bundle sizes:');
  for (const entry of ['main', 'post', 'snapshot', 'cli']) {
    const file = join(ROOT, 'dist', entry, 'index.js');
    if (!existsSync(file)) continue;
    console.log(`  dist/${entry}/index.js  ${(statSync(file).size / 1000).toFixed(1)} kB`);
    // Chunks load only when their feature is used (e.g. the secret write-back and libsodium).
    for (const chunk of readdirSync(join(ROOT, 'dist', entry)).filter((f) =>
      /^\d+\.index\.js$/.test(f),
    ))
      console.log(
        `    lazy chunk ${chunk}  ${(statSync(join(ROOT, 'dist', entry, chunk)).size / 1000).toFixed(1)} kB`,
      );
  }

  console.log('requests per operation (platform given; + up to 2 with platform: auto):');
  const count = async (inputs) => {
    const before = server.requests.length;
    const runDir = mkdtempSync(join(tmpdir(), 'fedi-bench-'));
    await run(NODE, [join(ROOT, 'dist', 'main', 'index.js')], {
      env: runnerEnv(runDir, { instance: server.url, platform: 'mastodon', ...inputs }),
    });
    return server.requests.length - before;
  };
  const app = server.registerApp({ scopes: ['read', 'write'] });
  const client = { 'client-id': app.clientId, 'client-secret': app.clientSecret };
  const code = server.issueCode({ clientId: app.clientId, redirectUri: app.redirectUris[0] });
  console.log(`  exchange             ${await count({ operation: 'exchange', code, ...client })}`);
  console.log(
    `  client-credentials   ${await count({ operation: 'client-credentials', ...client })}`,
  );
  console.log(
    `  validate (user)      ${await count({ operation: 'validate', 'access-token': token })}`,
  );
  const appToken = server.issueToken({ clientId: app.clientId, user: null });
  console.log(
    `  validate (app)       ${await count({ operation: 'validate', 'access-token': appToken })}`,
  );
  const ownToken = server.issueToken({ clientId: app.clientId, scope: 'read' });
  console.log(
    `  revoke               ${await count({ operation: 'revoke', 'access-token': ownToken, ...client })}`,
  );
  const detectBefore = server.requests.length;
  await count({ operation: 'validate', 'access-token': appToken, platform: 'auto' });
  console.log(`  validate, auto       ${server.requests.length - detectBefore}`);
} finally {
  await server.close();
}
