// Issue 12 benchmark: how long each bundled entry point lives against each way a server can stall
// (__tests__/servers/stalls.ts), from the first byte the server saw (the accepted connection, for
// one that never reads) to the process's exit, with timeout-seconds 1. main, post and snapshot
// make 2 attempts (budget 2 × 1 s + at most 0.5 s back-off = 2.5 s); the CLI's app registration
// is a POST, sent once (budget 1 s). "Ctrl-C" is SIGINT to exit, sent while the CLI's request
// (30 s) stalls. Prints the median of BENCH_RUNS runs (default 3); asserts nothing.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const ROOT = resolve(import.meta.dirname, '..', '..');
const NODE = join(ROOT, 'node_modules', '.bin', 'node');
const RUNS = Number(process.env.BENCH_RUNS ?? 3);

// The stall servers are TypeScript: Node 24 (the node@24 dev dependency) runs them directly.
if (Number(process.versions.node.split('.')[0]) < 23) {
  const result = spawnSync(NODE, [import.meta.filename], { stdio: 'inherit' });
  process.exit(result.status ?? 1);
}
const { STALLS, REDIRECT_HOPS, startStallServer } =
  await import('../../__tests__/servers/stalls.ts');

const TOKEN = 'bench-token-0123456789';
const tokenInputs = (url) => ({
  instance: url,
  platform: 'mastodon',
  'timeout-seconds': '1',
  'max-attempts': '2',
});
const ENTRIES = {
  main: (url) => ({
    entry: 'main',
    inputs: { ...tokenInputs(url), operation: 'validate', 'access-token': TOKEN },
  }),
  post: (url) => ({
    entry: 'post',
    inputs: {
      ...tokenInputs(url),
      operation: 'client-credentials',
      'client-id': 'bench-client',
      'client-secret': 'bench-secret-0123456789',
      'revoke-on-exit': 'true',
    },
    state: { 'revoke-token': TOKEN, 'revoke-platform': 'mastodon', 'revoke-expires-at': '' },
  }),
  snapshot: (url) => ({
    entry: 'snapshot',
    inputs: { ...tokenInputs(url), 'access-token': TOKEN, path: 'statuses.json' },
  }),
  cli: (url) => ({
    entry: 'cli',
    args: ['login', url, '--platform', 'mastodon', '--timeout', '1'],
  }),
  'cli Ctrl-C': (url) => ({
    entry: 'cli',
    args: ['login', url, '--platform', 'mastodon', '--timeout', '30'],
    interrupt: true,
  }),
};

/** Milliseconds from the server's first byte (or, with `interrupt`, from SIGINT) to exit. */
async function measure(stall, make) {
  const server = await startStallServer(stall);
  const dir = mkdtempSync(join(tmpdir(), 'fedi-bench-stall-'));
  try {
    const { entry, inputs = {}, state = {}, args = [], interrupt, extraEnv } = make(server.url);
    const env = {
      ...extraEnv,
      PATH: process.env.PATH,
      HOME: dir,
      RUNNER_TEMP: dir,
      FEDI_TOKEN_BROWSER: 'none',
    };
    for (const name of ['GITHUB_OUTPUT', 'GITHUB_ENV', 'GITHUB_STATE', 'GITHUB_STEP_SUMMARY']) {
      env[name] = join(dir, name);
      writeFileSync(env[name], '');
    }
    for (const [name, value] of Object.entries(inputs)) env[`INPUT_${name.toUpperCase()}`] = value;
    for (const [name, value] of Object.entries(state)) env[`STATE_${name}`] = value;
    const child = spawn(NODE, [join(ROOT, 'dist', entry, 'index.js'), ...args], {
      env,
      cwd: dir,
      stdio: 'ignore',
    });
    const killer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    const exited = new Promise((done) => child.on('exit', () => done(Date.now())));
    let from;
    if (interrupt) {
      await server.connected(stall === 'redirect-chain' ? REDIRECT_HOPS + 1 : 1);
      from = Date.now();
      child.kill('SIGINT');
    }
    const exitAt = await exited;
    clearTimeout(killer);
    from ??= server.firstByteAt ?? exitAt;
    return exitAt - from;
  } finally {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
const columns = Object.keys(ENTRIES);
console.log(
  `first byte → exit, ms, median of ${RUNS} (node ${process.version}, timeout-seconds 1)`,
);
console.log(['stall'.padEnd(20), ...columns.map((c) => c.padStart(11))].join(''));
for (const stall of STALLS) {
  const cells = [];
  for (const column of columns) {
    const times = [];
    for (let i = 0; i < RUNS; i++) times.push(await measure(stall, ENTRIES[column]));
    cells.push(String(median(times)).padStart(11));
  }
  console.log([stall.padEnd(20), ...cells].join(''));
}
// A proxy that reads the CONNECT and never answers: @actions/http-client never proxies loopback
// hosts, so the instance has a name only the proxy could resolve.
const proxied = [];
for (let i = 0; i < RUNS; i++) {
  proxied.push(
    await measure('never-answers', (url) => ({
      entry: 'main',
      inputs: { ...ENTRIES.main('https://social.example').inputs },
      extraEnv: { https_proxy: url },
    })),
  );
}
console.log(`${'proxy: no CONNECT'.padEnd(20)}${String(median(proxied)).padStart(11)}`);
console.log(
  ['budget'.padEnd(20), ...['2500', '2500', '2500', '1000', '—'].map((c) => c.padStart(11))].join(
    '',
  ),
);
