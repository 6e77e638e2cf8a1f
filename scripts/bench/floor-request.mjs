// The least a `validate` can cost: one GET to verify_credentials with Node's own http module and
// one line appended to GITHUB_OUTPUT, no dependencies. startup.mjs measures it beside the bundle
// to show how much of the bundle's cost any implementation would pay. With FLOOR_TLS set it also
// loads `https`, as every real (https) instance needs.
import { appendFileSync } from 'node:fs';
import { createRequire } from 'node:module';

// createRequire, as the bundle loads built-ins: an ESM `import 'node:http'` builds the module's
// namespace, which loads its lazy WebSocket exports (undici) and costs more than the request.
const require = createRequire(import.meta.url);
const http = require('node:http');
if (process.env.FLOOR_TLS) require('node:https');

const url = new URL('api/v1/accounts/verify_credentials', `${process.env['INPUT_INSTANCE']}/`);
const request = http.get(
  url,
  { headers: { authorization: `Bearer ${process.env['INPUT_ACCESS-TOKEN']}` } },
  (response) => {
    let body = '';
    response.setEncoding('utf8');
    response.on('data', (chunk) => (body += chunk));
    response.on('end', () => {
      appendFileSync(process.env.GITHUB_OUTPUT, `username=${JSON.parse(body).username}\n`);
    });
  },
);
request.on('error', (error) => {
  console.error(error.message);
  process.exitCode = 1;
});
