// `post` of .github/actions/e2e-servers: runs when the job ends, after the post step of every
// later action (post steps run in reverse order), so it sees what `revoke-on-exit` did. Fails the
// job if a token the workflow said must be revoked by then is still live, and stops the servers.
import { existsSync, readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';

const controlUrl = process.env['STATE_control-url'];
const pid = Number(process.env.STATE_pid);
const logFile = process.env.STATE_log;

async function control(path) {
  const response = await fetch(`${controlUrl}${path}`, { method: 'POST', body: '{}' });
  if (!response.ok) throw new Error(`control ${path} answered HTTP ${response.status}`);
  return response.json();
}

function alive(id) {
  try {
    process.kill(id, 0);
    return true;
  } catch {
    return false;
  }
}

if (!controlUrl) {
  console.log('The servers never started: nothing to check or stop.');
  process.exit(0);
}

let failed = false;
try {
  const { expected, live } = await control('/check');
  if (live > 0) {
    console.log(`::error::${live} of the ${expected} tokens to be revoked on exit are still live`);
    failed = true;
  } else {
    console.log(`All ${expected} tokens to be revoked on exit were revoked.`);
  }
} catch (error) {
  console.log(`::error::Could not ask the servers what was revoked: ${error.message}`);
  failed = true;
}

await control('/stop').catch(() => undefined);
for (let i = 0; i < 50 && alive(pid); i++) await sleep(100);
if (alive(pid)) process.kill(pid);
console.log('The loopback servers have stopped.');
if (failed && logFile && existsSync(logFile)) {
  console.log(`Their log:\n${readFileSync(logFile, 'utf8')}`);
}
process.exitCode = failed ? 1 : 0;
