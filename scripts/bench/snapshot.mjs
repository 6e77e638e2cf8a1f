// Issue 5 benchmark: a 1 000-status snapshot by the bundled action (dist/snapshot/index.js) side
// by side with a script using masto.js's paginator, against the same loopback Mastodon server in
// the same run. Each side runs in its own child process, which reports its own wall time, CPU and
// peak memory; the server counts the requests. Prints numbers; asserts nothing.
// Targets: requests = 2 (nodeinfo) + ⌈count / 40⌉ + 1; incremental with nothing new = 1 request
// (with the default platform: auto too);
// wall ≤ 1.0× and CPU ≤ 0.5× of masto.js.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';

const ROOT = resolve(import.meta.dirname, '..', '..');
// On Windows .bin/node is a shell shim; the binary is node/bin/node.exe.
const NODE =
  process.platform === 'win32'
    ? join(ROOT, 'node_modules', 'node', 'bin', 'node.exe')
    : join(ROOT, 'node_modules', '.bin', 'node');
const COUNT = Number(process.env.BENCH_COUNT ?? 1000);
const RUNS = Number(process.env.BENCH_RUNS ?? 5);

// The loopback server is TypeScript: Node 24 (the node@24 dev dependency) runs it directly.
if (Number(process.versions.node.split('.')[0]) < 23) {
  const result = spawnSync(NODE, [import.meta.filename, ...process.argv.slice(2)], {
    stdio: 'inherit',
  });
  process.exit(result.status ?? 1);
}

const [side, url, token, dir, mode, visibility = 'public', platform = 'mastodon'] =
  process.argv.slice(2);
if (side === 'ours') await ours();
else if (side === 'masto') await masto();
else await main();

/** What a child prints as its last line: its own measurements. */
function report(started, cpuStart) {
  const cpu = process.cpuUsage(cpuStart);
  console.log(
    JSON.stringify({
      wallMs: performance.now() - started,
      cpuMs: (cpu.user + cpu.system) / 1000,
      maxRssMiB: process.resourceUsage().maxRSS / 1024,
    }),
  );
}

async function ours() {
  // The runner's protocol: inputs as INPUT_*, outputs to a file; the bundle runs on import.
  Object.assign(process.env, {
    INPUT_INSTANCE: url,
    'INPUT_ACCESS-TOKEN': token,
    INPUT_PLATFORM: platform,
    INPUT_COUNT: String(COUNT),
    INPUT_VISIBILITY: visibility,
    INPUT_PATH: join(dir, 'ours.json'),
    INPUT_MODE: mode,
    GITHUB_OUTPUT: join(dir, 'output'),
    GITHUB_STEP_SUMMARY: join(dir, 'summary'),
  });
  writeFileSync(process.env.GITHUB_OUTPUT, '');
  writeFileSync(process.env.GITHUB_STEP_SUMMARY, '');
  const started = performance.now();
  const cpuStart = process.cpuUsage();
  await import(join(ROOT, 'dist', 'snapshot', 'index.js'));
  report(started, cpuStart);
}

async function masto() {
  const started = performance.now();
  const cpuStart = process.cpuUsage();
  const { createRestAPIClient } = await import('masto');
  const client = createRestAPIClient({ url, accessToken: token });
  const me = await client.v1.accounts.verifyCredentials();
  const kept = [];
  // The same job: public statuses only, newest first, stop at COUNT, write one JSON file.
  outer: for await (const page of client.v1.accounts.$select(me.id).statuses.list({ limit: 40 })) {
    for (const status of page) {
      if (status.visibility !== 'public') continue;
      kept.push(status);
      if (kept.length >= COUNT) break outer;
    }
  }
  writeFileSync(join(dir, 'masto.json'), JSON.stringify(kept));
  report(started, cpuStart);
}

/** Run one side in its own process; async, so this process's server keeps answering. */
async function child(args, server) {
  const before = server.requests.length;
  const proc = spawn(NODE, [import.meta.filename, ...args]);
  let out = '';
  proc.stdout.on('data', (chunk) => (out += chunk));
  proc.stderr.on('data', (chunk) => (out += chunk));
  const status = await new Promise((done) => proc.on('close', done));
  if (status !== 0) throw new Error(`${args[0]} failed:\n${out}`);
  const lines = out.trim().split('\n');
  return { ...JSON.parse(lines[lines.length - 1]), requests: server.requests.length - before };
}

async function main() {
  const { TimelineServer } = await import('../../__tests__/servers/timeline.ts');
  // 1.6 posts per wanted one: enough public ones after private posts and DMs are filtered out.
  const posts = Math.max(1600, Math.ceil(COUNT * 1.6));
  const server = await TimelineServer.start({ flavour: 'mastodon', posts });
  const dir = mkdtempSync(join(tmpdir(), 'bench-snapshot-'));
  const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
  const samples = { ours: [], masto: [], incremental: [], incrementalAuto: [], everything: [] };
  try {
    for (let run = 0; run < RUNS; run++) {
      // Alternate, so neither side always runs on a warmer machine.
      const order = run % 2 === 0 ? ['ours', 'masto'] : ['masto', 'ours'];
      for (const name of order) {
        samples[name].push(await child([name, server.url, server.token, dir, 'full'], server));
      }
      samples.incremental.push(
        await child(['ours', server.url, server.token, dir, 'incremental'], server),
      );
      // The README's workflow sets no platform: the file, not detection, tells the family.
      samples.incrementalAuto.push(
        await child(
          ['ours', server.url, server.token, dir, 'incremental', 'public', 'auto'],
          server,
        ),
      );
    }
    // Nothing filtered: the request count is the page arithmetic alone.
    samples.everything.push(
      await child(['ours', server.url, server.token, dir, 'full', 'direct'], server),
    );
  } finally {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  }
  const row = (name, list) => {
    const pick = (key) => median(list.map((sample) => sample[key]));
    return {
      name,
      requests: pick('requests'),
      wallMs: pick('wallMs'),
      cpuMs: pick('cpuMs'),
      maxRssMiB: pick('maxRssMiB'),
    };
  };
  const rows = [
    row('fedi-token snapshot (full)', samples.ours),
    row('masto.js paginator', samples.masto),
    row('fedi-token incremental, nothing new', samples.incremental),
    row('  the same with platform: auto (default)', samples.incrementalAuto),
    row('fedi-token full, nothing filtered (1 run)', samples.everything),
  ];
  console.log(
    `Snapshot of ${COUNT} public statuses, loopback Mastodon flavour, median of ${RUNS} runs`,
  );
  console.log(
    'side                                        requests   wall ms    CPU ms   peak RSS MiB',
  );
  for (const r of rows) {
    console.log(
      `${r.name.padEnd(44)}${String(r.requests).padStart(8)}${r.wallMs.toFixed(1).padStart(10)}` +
        `${r.cpuMs.toFixed(1).padStart(10)}${r.maxRssMiB.toFixed(1).padStart(15)}`,
    );
  }
  const [a, b] = rows;
  console.log(
    `ratios vs masto.js: wall ${(a.wallMs / b.wallMs).toFixed(2)}× (target ≤ 1.0), ` +
      `CPU ${(a.cpuMs / b.cpuMs).toFixed(2)}× (target ≤ 0.5)`,
  );
  console.log(
    `requests target: 2 + ⌈${COUNT}/40⌉ + 1 = ${Math.ceil(COUNT / 40) + 3} when nothing is filtered; ` +
      'Mastodon has no only_public, so keeping public posts only needs more pages',
  );
}
