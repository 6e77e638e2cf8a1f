// `main` of .github/actions/e2e-servers: starts scripts/e2e/serve.ts in the background, waits
// until it has written its addresses, registers every secret among them with the runner's
// masking before anything else is printed, and hands them to later steps as outputs. The server
// outlives this step (detached, its output in a log file, none of this process's handles: the
// runner would otherwise wait for it, on Windows above all); finish.mjs, the action's `post`,
// stops it when the job ends. It runs on the Node that runs the action (node24), which runs
// serve.ts as it is.
import { spawn } from 'node:child_process';
import { appendFileSync, existsSync, mkdirSync, openSync, readFileSync } from 'node:fs';
import { EOL } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';

const WAIT_MS = 30_000;
const here = dirname(fileURLToPath(import.meta.url));

function fileCommand(variable, name, value) {
  const file = process.env[variable];
  if (!file) throw new Error(`${variable} is not set: run this as a step of a workflow`);
  appendFileSync(file, `${name}=${value}${EOL}`);
}

const dir = join(resolve(process.env.RUNNER_TEMP ?? '.'), 'fedi-token-e2e');
mkdirSync(dir, { recursive: true });
const readyFile = join(dir, `servers-${process.pid}.json`);
const logFile = join(dir, `servers-${process.pid}.log`);
const log = openSync(logFile, 'a');

const child = spawn(process.execPath, [join(here, 'serve.ts'), readyFile], {
  detached: true,
  stdio: ['ignore', log, log],
  windowsHide: true,
});
let exited;
child.on('exit', (code, signal) => (exited = signal ?? `exit code ${code}`));
child.unref();

const deadline = Date.now() + WAIT_MS;
while (!existsSync(readyFile)) {
  if (exited !== undefined || Date.now() > deadline) {
    const why =
      exited === undefined ? `not ready within ${WAIT_MS / 1000} s` : `stopped (${exited})`;
    console.log(
      `::error::The loopback servers ${why}. Their log:${EOL}${readFileSync(logFile, 'utf8')}`,
    );
    if (exited === undefined) child.kill();
    process.exit(1);
  }
  await sleep(100);
}
const ready = JSON.parse(readFileSync(readyFile, 'utf8'));

// Test values, but secrets by kind: masked like real ones, before the first line that could show them.
for (const secret of [ready.clientSecret, ready.code, ready.timelineToken]) {
  console.log(`::add-mask::${secret}`);
}
const outputs = {
  'mastodon-url': ready.mastodonUrl,
  'client-id': ready.clientId,
  'client-secret': ready.clientSecret,
  code: ready.code,
  'timeline-url': ready.timelineUrl,
  'timeline-token': ready.timelineToken,
  'control-url': ready.controlUrl,
};
for (const [name, value] of Object.entries(outputs)) fileCommand('GITHUB_OUTPUT', name, value);
fileCommand('GITHUB_STATE', 'control-url', ready.controlUrl);
fileCommand('GITHUB_STATE', 'pid', String(ready.pid));
fileCommand('GITHUB_STATE', 'log', logFile);
console.log(`Loopback Mastodon server: ${ready.mastodonUrl}`);
console.log(`Loopback timeline server: ${ready.timelineUrl}`);
console.log(`Control: ${ready.controlUrl} (process ${ready.pid})`);
