/**
 * The HTTP policy as a user meets it: the bundle runs against the loopback server with faults
 * injected, and each test checks what was sent (server.requests) and what the log says.
 */
import { readFileSync } from 'node:fs';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from '@jest/globals';
import { findLeaks, runAction, type ActionRun } from './harness/action.ts';
import { startRecorder, type Recorder } from './servers/faults.ts';
import {
  OOB,
  startMastodonServer,
  type MastodonServer,
  type RegisteredApp,
} from './servers/mastodon.ts';
import { startTlsFront, TEST_CERT_PATH, TEST_KEY_PATH } from './servers/tls.ts';

const TOKEN_PATH = '/oauth/token';
const ME_PATH = '/api/v1/accounts/verify_credentials';

let server: MastodonServer;
let app: RegisteredApp;
let secrets: string[];

beforeEach(async () => {
  server = await startMastodonServer({ flavour: 'mastodon' });
  app = server.registerApp();
  secrets = [app.clientSecret];
});
afterEach(() => server.close());

function errorLine(run: ActionRun): string {
  return run.stdout.split('\n').find((line) => line.startsWith('::error::')) ?? '';
}

function count(path: string): number {
  return server.requests.filter((r) => r.path === path).length;
}

function exchange(extra: Record<string, string> = {}): Promise<ActionRun> {
  const code = server.issueCode({ clientId: app.clientId, redirectUri: OOB });
  secrets.push(code);
  return runAction('main', {
    instance: server.url,
    platform: 'mastodon',
    operation: 'exchange',
    'client-id': app.clientId,
    'client-secret': app.clientSecret,
    code,
    ...extra,
  });
}

function validate(
  extra: Record<string, string> = {},
  env: Record<string, string> = {},
): Promise<ActionRun> {
  const token = server.issueToken({ clientId: app.clientId });
  secrets.push(token);
  return runAction(
    'main',
    {
      instance: server.url,
      platform: 'mastodon',
      operation: 'validate',
      'access-token': token,
      ...extra,
    },
    { env },
  );
}

function expectClean(run: ActionRun): void {
  const outputs = Object.values(run.outputs).filter((v) => v.length > 8);
  expect(findLeaks(run, [...secrets, ...outputs.filter((v) => run.masks.includes(v))])).toEqual([]);
  expect(run.log).not.toMatch(/\n\s+at .*\(/);
}

describe('retries', () => {
  it('retries a code exchange after 429 with Retry-After, and succeeds', async () => {
    server.inject({ method: 'POST', path: TOKEN_PATH, kind: 'status', status: 429, retryAfter: 1 });
    const run = await exchange();
    expect(run.exitCode).toBe(0);
    expect(count(TOKEN_PATH)).toBe(2);
    expect(server.requests.filter((r) => r.path === TOKEN_PATH).map((r) => r.status)).toEqual([
      429, 200,
    ]);
    expectClean(run);
  });

  it('retries a code exchange after 503 with Retry-After', async () => {
    server.inject({ method: 'POST', path: TOKEN_PATH, kind: 'status', status: 503, retryAfter: 1 });
    const run = await exchange();
    expect(run.exitCode).toBe(0);
    expect(count(TOKEN_PATH)).toBe(2);
    expectClean(run);
  });

  it('waits for X-RateLimit-Reset on a 429 without Retry-After', async () => {
    server.inject({
      method: 'GET',
      path: ME_PATH,
      kind: 'status',
      status: 429,
      rateLimitReset: new Date(Date.now() + 1000).toISOString(),
    });
    const run = await validate();
    expect(run.exitCode).toBe(0);
    expect(run.outputs.valid).toBe('true');
    expect(count(ME_PATH)).toBe(2);
    expectClean(run);
  });

  it('fails at once when the server asks to wait longer than the step waits', async () => {
    server.inject({ method: 'GET', path: ME_PATH, kind: 'status', status: 429, retryAfter: 3600 });
    const run = await validate();
    expect(run.exitCode).toBe(1);
    expect(count(ME_PATH)).toBe(1);
    expect(errorLine(run)).toMatch(/HTTP 429.*asks to wait 3600 s/);
    expectClean(run);
  });

  it('does not retry a code exchange after 502: the code may be spent', async () => {
    server.inject({
      method: 'POST',
      path: TOKEN_PATH,
      kind: 'status',
      status: 502,
      body: { error: 'bad_gateway' },
    });
    const run = await exchange();
    expect(run.exitCode).toBe(1);
    expect(count(TOKEN_PATH)).toBe(1);
    expect(errorLine(run)).toContain(`${server.url} POST /oauth/token answered HTTP 502`);
    expectClean(run);
  });

  it('does not retry a code exchange after a bare 503 either', async () => {
    server.inject({ method: 'POST', path: TOKEN_PATH, kind: 'status', status: 503 });
    const run = await exchange();
    expect(run.exitCode).toBe(1);
    expect(count(TOKEN_PATH)).toBe(1);
    expectClean(run);
  });

  it('retries a GET after 502 up to max-attempts', async () => {
    server.inject({ method: 'GET', path: ME_PATH, kind: 'status', status: 502, times: 5 });
    const run = await validate({ 'max-attempts': '3' });
    expect(run.exitCode).toBe(1);
    expect(count(ME_PATH)).toBe(3);
    expect(errorLine(run)).toContain('GET /api/v1/accounts/verify_credentials answered HTTP 502');
    expectClean(run);
  });
});

describe('timeouts and resets', () => {
  it('a hung code exchange times out once and says the code may be used', async () => {
    server.inject({ method: 'POST', path: TOKEN_PATH, kind: 'hang' });
    const run = await exchange({ 'timeout-seconds': '1' });
    expect(run.exitCode).toBe(1);
    expect(count(TOKEN_PATH)).toBe(1);
    const message = errorLine(run);
    expect(message).toContain(`${server.url} POST /oauth/token`);
    expect(message).toMatch(/no answer within 1 s/);
    expect(message).toMatch(/may already have used the code/);
    expectClean(run);
  });

  it('a hung GET is retried up to max-attempts, then fails with a timeout', async () => {
    server.inject({ method: 'GET', path: ME_PATH, kind: 'hang', times: 2 });
    const run = await validate({ 'timeout-seconds': '1', 'max-attempts': '2' });
    expect(run.exitCode).toBe(1);
    expect(count(ME_PATH)).toBe(2);
    expect(errorLine(run)).toMatch(
      /GET \/api\/v1\/accounts\/verify_credentials: no answer within 1 s/,
    );
    expectClean(run);
  });

  it('a hung GET that answers on the next attempt succeeds', async () => {
    server.inject({ method: 'GET', path: ME_PATH, kind: 'hang' });
    const run = await validate({ 'timeout-seconds': '1' });
    expect(run.exitCode).toBe(0);
    expect(run.outputs.valid).toBe('true');
    expect(count(ME_PATH)).toBe(2);
    expectClean(run);
  });

  it('a token answer that stalls mid-body times out once and says the code may be used', async () => {
    server.inject({ method: 'POST', path: TOKEN_PATH, kind: 'stall' });
    const run = await exchange({ 'timeout-seconds': '1' });
    expect(run.exitCode).toBe(1);
    expect(count(TOKEN_PATH)).toBe(1);
    expect(errorLine(run)).toMatch(
      /POST \/oauth\/token: the answer stalled: not complete within 1 s\..*may already have used the code/,
    );
    expectClean(run);
  });

  it('a reset GET is retried; a reset exchange is not', async () => {
    server.inject({ method: 'GET', path: ME_PATH, kind: 'reset' });
    const ok = await validate();
    expect(ok.exitCode).toBe(0);
    expect(count(ME_PATH)).toBe(2);
    expectClean(ok);

    server.inject({ method: 'POST', path: TOKEN_PATH, kind: 'reset' });
    const failed = await exchange();
    expect(failed.exitCode).toBe(1);
    expect(count(TOKEN_PATH)).toBe(1);
    expect(errorLine(failed)).toMatch(/closed.*may already have used the code/);
    expectClean(failed);
  });

  it('a refused connection names the server', async () => {
    const url = server.url;
    await server.close();
    const run = await runAction('main', {
      instance: url,
      platform: 'mastodon',
      operation: 'validate',
      'access-token': 'some-token-value-123456',
      'max-attempts': '2',
    });
    expect(run.exitCode).toBe(1);
    expect(errorLine(run)).toContain(
      `${url} GET /api/v1/accounts/verify_credentials: connection refused`,
    );
    expect(findLeaks(run, ['some-token-value-123456'])).toEqual([]);
    server = await startMastodonServer();
  });
});

describe('bodies', () => {
  it('reports an HTML error page as such and never prints it', async () => {
    server.inject({ method: 'GET', path: ME_PATH, kind: 'html', times: 3 });
    const run = await validate({ 'max-attempts': '1' });
    expect(run.exitCode).toBe(1);
    expect(errorLine(run)).toContain(
      'GET /api/v1/accounts/verify_credentials answered HTTP 502: an HTML page, not JSON',
    );
    expect(run.log).not.toMatch(/<html|<title|nginx/i);
    expectClean(run);
  });

  it('reports an HTML page with status 200 on the token endpoint as not JSON', async () => {
    server.inject({ method: 'POST', path: TOKEN_PATH, kind: 'html', status: 200 });
    const run = await exchange();
    expect(run.exitCode).toBe(1);
    expect(errorLine(run)).toMatch(/POST \/oauth\/token answered HTTP 200: an HTML page/);
    expect(run.log).not.toMatch(/<html|nginx/i);
    expectClean(run);
  });

  it.each([true, false])(
    'refuses an oversized token answer (content-length announced: %s)',
    async (contentLength) => {
      server.inject({ method: 'POST', path: TOKEN_PATH, kind: 'oversized', contentLength });
      const run = await exchange();
      expect(run.exitCode).toBe(1);
      expect(count(TOKEN_PATH)).toBe(1);
      expect(errorLine(run)).toMatch(/POST \/oauth\/token: the answer is larger than 1024 KiB/);
      expect(run.log.length).toBeLessThan(20_000);
      expectClean(run);
    },
  );
});

describe('redirects', () => {
  let other: Recorder;
  beforeAll(async () => {
    other = await startRecorder();
  });
  afterAll(() => other.close());

  it('follows a GET to another origin without the Authorization header', async () => {
    other.hits.length = 0;
    server.inject({
      method: 'GET',
      path: ME_PATH,
      kind: 'redirect',
      status: 302,
      location: `${other.url}${ME_PATH}`,
    });
    const run = await validate();
    expect(other.hits).toHaveLength(1);
    expect(other.hits[0]?.authorization).toBeUndefined();
    // The recorder answers `{}`, which is no account: the step fails, naming the other origin.
    expect(run.exitCode).toBe(1);
    expect(errorLine(run)).toContain(other.url);
    expectClean(run);
  });

  it('follows a GET from http to https over TLS, with the right agent for each', async () => {
    // One client sends both hops. @actions/http-client keeps one agent for whichever protocol it
    // met first, so an https hop after an http one used to go out on an http agent and fail.
    const front = await startTlsFront({ '127.0.0.1': other.url });
    try {
      other.hits.length = 0;
      const secure = `https://127.0.0.1:${front.port}${ME_PATH}`;
      server.inject({
        method: 'GET',
        path: ME_PATH,
        kind: 'redirect',
        status: 301,
        location: secure,
      });
      const run = await validate({}, { NODE_EXTRA_CA_CERTS: front.certPath });
      expect(other.hits).toHaveLength(1);
      expect(other.hits[0]?.authorization).toBeUndefined();
      expect(run.exitCode).toBe(1);
      expect(errorLine(run)).toContain(`https://127.0.0.1:${front.port}`);
      expectClean(run);
    } finally {
      await front.close();
    }
  });

  it('refuses to resend a POST to another origin', async () => {
    other.hits.length = 0;
    server.inject({
      method: 'POST',
      path: TOKEN_PATH,
      kind: 'redirect',
      status: 307,
      location: `${other.url}${TOKEN_PATH}`,
    });
    const run = await exchange();
    expect(run.exitCode).toBe(1);
    expect(other.hits).toEqual([]);
    expect(errorLine(run)).toMatch(/refused to resend the request to another origin/);
    expectClean(run);
  });

  it('refuses a redirect from https to http, sending nothing over plain http', async () => {
    other.hits.length = 0;
    // A real TLS server on loopback with the committed test certificate, which the subprocess
    // trusts through NODE_EXTRA_CA_CERTS, so the bundle's own https stack does the handshake.
    const [key, cert] = [TEST_KEY_PATH, TEST_CERT_PATH];
    const tls = createServer({ key: readFileSync(key), cert: readFileSync(cert) }, (req, res) => {
      res.writeHead(302, { location: `${other.url}${req.url ?? '/'}` }).end();
    });
    await new Promise<void>((resolve) => tls.listen(0, '127.0.0.1', resolve));
    const { port } = tls.address() as AddressInfo;
    try {
      const token = 'tls-test-token-0123456789';
      const run = await runAction(
        'main',
        {
          instance: `https://127.0.0.1:${port}`,
          platform: 'mastodon',
          operation: 'validate',
          'access-token': token,
        },
        { env: { NODE_EXTRA_CA_CERTS: cert } },
      );
      expect(run.exitCode).toBe(1);
      expect(errorLine(run)).toContain('refused a redirect from https to http');
      expect(other.hits).toEqual([]);
      expect(findLeaks(run, [token])).toEqual([]);
    } finally {
      await new Promise((resolve) => tls.close(resolve));
    }
  });

  it('follows a same-origin 307 on a POST with its body', async () => {
    server.inject({ method: 'POST', path: '/old/oauth/token', kind: 'status', status: 500 });
    server.inject({
      method: 'POST',
      path: TOKEN_PATH,
      kind: 'redirect',
      status: 307,
      location: '/oauth/token',
    });
    const run = await exchange();
    expect(run.exitCode).toBe(0);
    expect(count(TOKEN_PATH)).toBe(2);
    expectClean(run);
  });
});

describe('error messages', () => {
  it('name origin, endpoint, status and the server code, never the secret', async () => {
    const code = server.issueCode({ clientId: app.clientId, redirectUri: OOB });
    const run = await runAction('main', {
      instance: server.url,
      platform: 'mastodon',
      operation: 'exchange',
      'client-id': app.clientId,
      'client-secret': 'wrong-secret-value-42',
      code,
    });
    expect(run.exitCode).toBe(1);
    expect(errorLine(run)).toContain(
      `${server.url} POST /oauth/token answered HTTP 401 (invalid_client)`,
    );
    expect(errorLine(run)).toContain("Check 'client-id' and 'client-secret'");
    expect(findLeaks(run, ['wrong-secret-value-42', code, app.clientSecret])).toEqual([]);
  });

  it('a message cut short through an echoed secret shows none of it', async () => {
    // The runner masks a secret only where it appears whole. A server that echoes the client
    // secret near the 200th character of its description would leave its start in a message cut
    // there, unless the known secrets are taken out first.
    server.inject({
      method: 'POST',
      path: TOKEN_PATH,
      kind: 'status',
      status: 401,
      body: { error: `${'x'.repeat(185)} ${app.clientSecret} and more` },
    });
    const run = await exchange();
    expect(run.exitCode).toBe(1);
    expect(errorLine(run)).toMatch(/x{185} \*\*\*/);
    expect(run.maskedLog).not.toContain(app.clientSecret.slice(0, 8));
    expectClean(run);
  });
});
