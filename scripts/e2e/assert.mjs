// The last step of .github/workflows/e2e.yml: checks what the steps before it produced (the
// token action's outputs, the variable `export-env` exported, the snapshot's outputs and file),
// and tells the servers which token must be revoked by the time the job ends (`revoke-on-exit`
// revokes in the action's post step, after this one; the e2e-servers post step checks it).
// Reads STEPS (`toJSON(steps)`), the exported FEDI_E2E_TOKEN and, from the servers step's
// outputs, the control URL. Prints no secret: only which check passed or failed, and why.
import { existsSync, readFileSync } from 'node:fs';

const steps = JSON.parse(process.env.STEPS ?? '{}');
const failures = [];
let passed = 0;

function check(name, ok, why = '') {
  if (ok) {
    passed++;
    console.log(`ok   ${name}`);
  } else {
    failures.push(name);
    console.log(`::error::${name}${why ? `: ${why}` : ''}`);
  }
}

const outputs = (id) => steps[id]?.outputs ?? {};
const said = (value) => (value === undefined ? 'missing' : `got '${value}'`);

async function control(path, token) {
  const url = outputs('servers')['control-url'];
  const response = await fetch(`${url}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ token }),
  });
  if (!response.ok) throw new Error(`control ${path}: HTTP ${response.status}`);
  return response.json();
}

for (const id of [
  'servers',
  'exchange',
  'validate',
  'revoke',
  'after-revoke',
  'app',
  'full',
  'incremental',
]) {
  check(`step ${id} succeeded`, steps[id]?.outcome === 'success', said(steps[id]?.outcome));
}

// exchange: the approval code became a token for alice.
const exchange = outputs('exchange');
const token = exchange['access-token'] ?? '';
check('exchange: access-token is set', token.length >= 20, `${token.length} characters`);
check(
  'exchange: token-type is Bearer',
  exchange['token-type'] === 'Bearer',
  said(exchange['token-type']),
);
check('exchange: scope is read write', exchange.scope === 'read write', said(exchange.scope));
check('exchange: platform is mastodon', exchange.platform === 'mastodon', said(exchange.platform));
check('exchange: username is alice', exchange.username === 'alice', said(exchange.username));
check(
  'exchange: account-id is a string id',
  exchange['account-id'] === '113406148396826625',
  said(exchange['account-id']),
);

// validate, with export-env: the token is good, and the variable reached this later step.
const validate = outputs('validate');
check('validate: valid is true', validate.valid === 'true', said(validate.valid));
check('validate: username is alice', validate.username === 'alice', said(validate.username));
check(
  'validate: export-env set FEDI_E2E_TOKEN for later steps, to the token',
  process.env.FEDI_E2E_TOKEN === token && token !== '',
  process.env.FEDI_E2E_TOKEN === undefined ? 'not set' : 'set to another value',
);

// revoke: the server no longer knows the token; validate says so without failing.
check('revoke: the server revoked the token', (await control('/revoked', token)).revoked === true);
check(
  'validate after revoke: valid is false',
  outputs('after-revoke').valid === 'false',
  said(outputs('after-revoke').valid),
);

// client-credentials with revoke-on-exit: an app token, live until the job ends.
const appToken = outputs('app')['access-token'] ?? '';
check('client-credentials: access-token is set', appToken.length >= 20 && appToken !== token);
check(
  'client-credentials: no account for an app token',
  outputs('app')['account-id'] === '',
  said(outputs('app')['account-id']),
);
check(
  'client-credentials: token is live until the job ends',
  (await control('/revoked', appToken)).revoked === false,
);
if (appToken) await control('/expect-revoked', appToken);

// snapshot, full then incremental: the file, and nothing new the second time.
const full = outputs('full');
const incremental = outputs('incremental');
check('snapshot full: changed is true', full.changed === 'true', said(full.changed));
check(
  'snapshot full: every item is new',
  full['new-count'] === full.count,
  `${full['new-count']} of ${full.count}`,
);
check(
  'snapshot incremental: changed is false',
  incremental.changed === 'false',
  said(incremental.changed),
);
check(
  'snapshot incremental: new-count is 0',
  incremental['new-count'] === '0',
  said(incremental['new-count']),
);
check(
  'snapshot incremental: same count',
  incremental.count === full.count,
  `${incremental.count} and ${full.count}`,
);
check('snapshot incremental: same newest-id', incremental['newest-id'] === full['newest-id']);
check(
  'snapshot: both runs name the same file',
  full.path !== undefined && incremental.path === full.path,
);

const path = full.path ?? '';
check('snapshot: the file exists', path !== '' && existsSync(path), path);
if (path && existsSync(path)) {
  const text = readFileSync(path, 'utf8');
  check('snapshot file: LF line ends only', !text.includes('\r'));
  check('snapshot file: ends with a newline', text.endsWith('\n'));
  let items = [];
  try {
    items = JSON.parse(text);
  } catch (error) {
    check('snapshot file: valid JSON', false, error.message);
  }
  check('snapshot file: a JSON array', Array.isArray(items));
  if (Array.isArray(items)) {
    check(
      'snapshot file: holds count items',
      String(items.length) === full.count,
      `${items.length} items`,
    );
    check('snapshot file: newest-id first', items[0]?.id === full['newest-id']);
    check(
      'snapshot file: only public statuses',
      items.every((item) => item.visibility === 'public'),
    );
    const ids = items.map((item) => BigInt(item.id));
    check(
      'snapshot file: newest first, no repeats',
      ids.every((id, i) => i === 0 || id < ids[i - 1]),
    );
  }
}

if (failures.length > 0) {
  console.log(`${passed} passed, ${failures.length} failed`);
  process.exitCode = 1;
} else {
  console.log(`All ${passed} checks passed.`);
}
