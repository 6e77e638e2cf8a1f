// Issue 11 benchmark: the snapshot action mirroring 200 new attachments of ~256 kB from a loopback
// media origin that adds 20 ms of latency to every request, side by side with a bare concurrent
// download loop (node:http, a keep-alive agent, streamed to files) of the same concurrency, in
// the same run. Each side runs in its own child process and reports its own wall time and peak
// memory; the media server counts the requests. Then the same with every file twice as large
// (peak memory should not follow), and a run with nothing new (no media request at all), whose
// wall time is what the step costs besides the media: node's start, the bundle, the listing
// request, reading the JSON. Prints numbers; asserts nothing. Targets: wall ≤ 1.2× the bare
// loop; peak RSS flat; nothing new, no media request.
import { spawn, spawnSync } from 'node:child_process';
import {
  copyFileSync,
  createWriteStream,
  mkdirSync,
  mkdtempSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import * as http from 'node:http';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { pipeline } from 'node:stream/promises';

const ROOT = resolve(import.meta.dirname, '..', '..');
const NODE = join(ROOT, 'node_modules', '.bin', 'node');
const FILES = Number(process.env.BENCH_FILES ?? 200);
const SIZE = Number(process.env.BENCH_FILE_BYTES ?? 256 * 1024);
const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const LATENCY_MS = 20;
// The mirror's concurrency (src/snapshot/media/mirror.ts, MEDIA_CONCURRENCY).
const CONCURRENCY = 4;
const PER_POST = 4;

// The loopback servers are TypeScript: Node 24 (the node@24 dev dependency) runs them directly.
if (Number(process.versions.node.split('.')[0]) < 23) {
  const result = spawnSync(NODE, [import.meta.filename, ...process.argv.slice(2)], {
    stdio: 'inherit',
  });
  process.exit(result.status ?? 1);
}

const [side, ...args] = process.argv.slice(2);
if (side === 'ours') await ours(...args);
else if (side === 'seed') await ours(...args, false);
else if (side === 'bare') await bare(...args);
else await main();

function report(started) {
  console.log(
    JSON.stringify({
      wallMs: performance.now() - started,
      maxRssMiB: process.resourceUsage().maxRSS / 1024,
    }),
  );
}

/** The bundled action, as the runner starts it: inputs in INPUT_*, outputs to a file. */
async function ours(url, token, dir, media = true) {
  Object.assign(process.env, {
    INPUT_INSTANCE: url,
    'INPUT_ACCESS-TOKEN': token,
    INPUT_PLATFORM: 'mastodon',
    INPUT_COUNT: '100000',
    INPUT_VISIBILITY: 'direct',
    INPUT_PATH: join(dir, 'statuses.json'),
    'INPUT_MEDIA-PATH': media ? join(dir, 'media') : '',
    GITHUB_OUTPUT: join(dir, 'output'),
    GITHUB_STEP_SUMMARY: join(dir, 'summary'),
  });
  writeFileSync(process.env.GITHUB_OUTPUT, '');
  writeFileSync(process.env.GITHUB_STEP_SUMMARY, '');
  const started = performance.now();
  await import(join(ROOT, 'dist', 'snapshot', 'index.js'));
  report(started);
}

/** The floor: the same URLs, the same concurrency, streamed to files, nothing else. */
async function bare(listFile, dir) {
  const started = performance.now();
  const urls = (await import(listFile, { with: { type: 'json' } })).default;
  const agent = new http.Agent({ keepAlive: true });
  let next = 0;
  const worker = async () => {
    while (next < urls.length) {
      const index = next++;
      const response = await new Promise((done, fail) =>
        http.get(urls[index], { agent }, done).on('error', fail),
      );
      await pipeline(response, createWriteStream(join(dir, `${index}.png`)));
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  agent.destroy();
  report(started);
}

async function child(args, cdn) {
  const before = cdn.requests.length;
  const proc = spawn(NODE, [import.meta.filename, ...args]);
  let out = '';
  proc.stdout.on('data', (chunk) => (out += chunk));
  proc.stderr.on('data', (chunk) => (out += chunk));
  const status = await new Promise((done) => proc.on('close', done));
  if (status !== 0 || out.includes('::error::')) throw new Error(`${args[0]} failed:\n${out}`);
  const lines = out.trim().split('\n');
  return { ...JSON.parse(lines[lines.length - 1]), requests: cdn.requests.length - before };
}

/** A timeline whose newest media posts carry PER_POST pictures each, FILES in all, of `size`. */
async function setup(size) {
  const { TimelineServer } = await import('../../__tests__/servers/timeline.ts');
  const { MediaServer, noisePng } = await import('../../__tests__/servers/media.ts');
  const cdn = await MediaServer.start();
  cdn.latencyMs = LATENCY_MS;
  const urls = [];
  const given = new Map();
  const catalog = {
    mastodonAttachments(post) {
      if (!given.has(post.index)) {
        const room = Math.max(0, Math.min(PER_POST, FILES - urls.length));
        const list = Array.from({ length: room }, (_, n) => {
          const url = cdn.put(`/bench/${post.index}/${n}.png`, {
            body: noisePng(size, post.index * 10 + n),
            type: 'image/png',
          });
          urls.push(url);
          return {
            id: `${post.index}0${n}`,
            type: 'image',
            url,
            preview_url: null,
            description: '',
          };
        });
        given.set(post.index, list);
      }
      return given.get(post.index);
    },
    misskeyFiles: () => [],
    contentWarning: () => '',
    serveInstance: () => false,
  };
  const posts = Math.ceil((FILES / PER_POST) * 6);
  const timeline = await TimelineServer.start({ flavour: 'mastodon', posts, media: catalog });
  const dir = mkdtempSync(join(tmpdir(), 'bench-media-'));
  const list = join(dir, 'urls.json');
  return {
    cdn,
    timeline,
    dir,
    urls,
    list,
    close: () => Promise.all([cdn.close(), timeline.close()]),
  };
}

async function main() {
  const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
  const measure = async (size) => {
    const { cdn, timeline, dir, urls, list, close } = await setup(size);
    const samples = { ours: [], bare: [], nothingNew: [] };
    try {
      // The JSON without media, made once (the walk renders every attachment, filling `urls`).
      const seed = join(dir, 'seed');
      mkdirSync(seed);
      // Async: this process serves the requests, so it must not block on the child.
      await child(['seed', timeline.url, timeline.token, seed], cdn);
      writeFileSync(list, JSON.stringify(urls));
      for (let run = 0; run < RUNS; run++) {
        const order = run % 2 === 0 ? ['ours', 'bare'] : ['bare', 'ours'];
        for (const name of order) {
          const work = join(dir, `${name}-${run}`);
          mkdirSync(work);
          if (name === 'ours') {
            copyFileSync(join(seed, 'statuses.json'), join(work, 'statuses.json'));
            samples.ours.push(await child(['ours', timeline.url, timeline.token, work], cdn));
            // Again, with nothing new: what the action costs besides the media.
            samples.nothingNew.push(await child(['ours', timeline.url, timeline.token, work], cdn));
          } else {
            samples.bare.push(await child(['bare', list, work], cdn));
          }
        }
      }
    } finally {
      await close();
      rmSync(dir, { recursive: true, force: true });
    }
    const pick = (list) => ({
      requests: median(list.map((sample) => sample.requests)),
      wallMs: median(list.map((sample) => sample.wallMs)),
      rss: median(list.map((sample) => sample.maxRssMiB)),
    });
    return {
      ours: pick(samples.ours),
      bare: pick(samples.bare),
      nothingNew: pick(samples.nothingNew),
    };
  };

  const single = await measure(SIZE);
  const double = await measure(SIZE * 2);
  const kB = (bytes) => `~${Math.round(bytes / 1024)} kB`;
  console.log(
    `Media mirror: ${FILES} new attachments of ${kB(SIZE)}, ${LATENCY_MS} ms latency per request, ` +
      `concurrency ${CONCURRENCY}, median of ${RUNS} runs`,
  );
  console.log(
    'side                                           media requests   wall ms   peak RSS MiB',
  );
  const row = (name, r) =>
    console.log(
      `${name.padEnd(48)}${String(r.requests).padStart(14)}${r.wallMs.toFixed(1).padStart(10)}${r.rss.toFixed(1).padStart(15)}`,
    );
  row(`fedi-token snapshot, media-path (${kB(SIZE)})`, single.ours);
  row(`bare concurrent download loop (${kB(SIZE)})`, single.bare);
  row(`fedi-token snapshot, media-path (${kB(SIZE * 2)})`, double.ours);
  row(`bare concurrent download loop (${kB(SIZE * 2)})`, double.bare);
  row('fedi-token snapshot, media-path, nothing new', single.nothingNew);
  const marginal = single.ours.wallMs - single.nothingNew.wallMs;
  console.log(
    `wall: ${(single.ours.wallMs / single.bare.wallMs).toFixed(2)}× the bare loop for the whole ` +
      `step, ${(marginal / single.bare.wallMs).toFixed(2)}× for what the ${FILES} attachments add ` +
      `to a run with nothing new (${marginal.toFixed(0)} ms; target ≤ 1.2)`,
  );
  console.log(
    `peak RSS with twice the bytes: ${single.ours.rss.toFixed(1)} → ${double.ours.rss.toFixed(1)} MiB ` +
      `(target flat); nothing new: ${single.nothingNew.requests} media requests (target 0)`,
  );
}
