// `npm run demo`: the bundled action against embedded loopback servers — no account needed.
// Each step runs `node dist/<entry>/index.js` exactly as the runner would, and prints the log as a
// workflow log shows it (secrets masked by the runner's rules). runAction checks every run for
// secrets left visible and throws a LeakError naming them; the demo then stops, prints no log that
// could hold the secret, and exits non-zero.
import { randomUUID } from 'node:crypto';
import { startMastodonServer } from '../__tests__/servers/mastodon.ts';
import { startMisskey } from '../__tests__/servers/misskey.ts';
import { LeakError, runAction } from '../__tests__/harness/action.ts';

const step = async (title, entry, inputs, options) => {
  console.log(`\n── ${title}`);
  const run = await runAction(entry, inputs, options);
  const log = run.maskedLog
    .split('\n')
    .filter((line) => line && !line.startsWith('::add-mask::'))
    .map((line) => `   ${line}`)
    .join('\n');
  console.log(log || '   (no log lines)');
  const shown = Object.entries(run.outputs)
    .filter(([, value]) => value !== '')
    .map(([name, value]) => `${name}=${run.masks.includes(value) ? '***' : value}`);
  console.log(`   outputs: ${shown.join(', ') || '(none)'}   exit code: ${run.exitCode}`);
  return run;
};

async function demo() {
  const server = await startMastodonServer({ flavour: 'mastodon' });
  try {
    console.log(`Embedded Mastodon-API server at ${server.url}`);
    const app = server.registerApp({ name: 'fedi-token demo', scopes: ['read', 'write'] });
    // Stands in for the person who opens /oauth/authorize and approves the app.
    const code = server.issueCode({
      clientId: app.clientId,
      redirectUri: app.redirectUris[0] ?? '',
    });
    const client = { 'client-id': app.clientId, 'client-secret': app.clientSecret };
    const common = { instance: server.url };

    const exchanged = await step('exchange: the approval code becomes a token', 'main', {
      ...common,
      operation: 'exchange',
      code,
      ...client,
    });
    const token = exchanged.outputs['access-token'] ?? '';
    await step('validate: is the stored token still good? (platform: auto)', 'main', {
      ...common,
      operation: 'validate',
      'access-token': token,
    });
    await step('revoke', 'main', {
      ...common,
      operation: 'revoke',
      'access-token': token,
      ...client,
    });
    await step('validate after revoke (fail-on-invalid: false)', 'main', {
      ...common,
      operation: 'validate',
      'access-token': token,
      'fail-on-invalid': 'false',
    });
    await step('bad input: fails before any request', 'main', { ...common, operation: 'refesh' });
    console.log(`\nThe Mastodon server saw ${server.requests.length} requests.`);
  } finally {
    await server.close();
  }

  const misskey = await startMisskey();
  try {
    console.log(`\nEmbedded Misskey server at ${misskey.url}`);
    // MiAuth: the app picks a session id and sends the user to /miauth/<session>; they approve.
    const session = randomUUID();
    misskey.approveMiAuth(session, { permission: ['read:account', 'write:notes'] });
    const checked = await step('exchange a MiAuth session (platform: auto)', 'main', {
      instance: misskey.url,
      operation: 'exchange',
      code: session,
    });
    await step('the same session again: MiAuth hands a token out once', 'main', {
      instance: misskey.url,
      operation: 'exchange',
      code: session,
    });
    await step('validate the Misskey token', 'main', {
      instance: misskey.url,
      operation: 'validate',
      'access-token': checked.outputs['access-token'] ?? '',
    });
    await step('revoke: Misskey does not let an app revoke its token', 'main', {
      instance: misskey.url,
      platform: 'misskey',
      operation: 'revoke',
      'access-token': checked.outputs['access-token'] ?? '',
    });
  } finally {
    await misskey.close();
  }
}

try {
  await demo();
  console.log('\nEvery secret above was masked before it could be printed.');
} catch (error) {
  if (!(error instanceof LeakError)) throw error;
  console.error(`\n${error.message}`);
  process.exitCode = 1;
}
