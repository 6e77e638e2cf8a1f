/**
 * A step always ends (issue 12): each entry point, run as the runner runs it, against each way a
 * server can stall (servers/stalls.ts), ends within its budget with the usual message; the CLI
 * also on Ctrl-C. In process, the HTTP layer is checked to leave no socket of its own open after
 * a request failed, which is what kept the process alive.
 *
 * Budget: timeout-seconds × attempts, plus the back-off's ceiling before each retry (src/http.ts:
 * 500 ms, doubling). A run fails when its process is still alive GRACE_MS past the budget,
 * counted from the first byte the server saw; the harness kills it a little later so that a
 * regression fails the test rather than hanging the suite.
 */
import { afterEach, describe, expect, it } from '@jest/globals';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runAction, type ActionRun } from './harness/action.ts';
import { startCli } from './harness/cli.ts';
import { NetworkError } from '../src/errors.ts';
import { Http } from '../src/http.ts';
import {
  REDIRECT_HOPS,
  STALLS,
  startStallServer,
  type Stall,
  type StallServer,
} from './servers/stalls.ts';

const TIMEOUT_SECONDS = 1;
/** Past its budget, this long is allowed for the process to flush its log and exit. */
const GRACE_MS = 3000;
/** Node and the bundle starting on a busy machine: only the harness's kill waits for it. */
const STARTUP_MS = 10_000;
const TOKEN = 'stalled-token-0123456789abcdef';
const CLIENT_SECRET = 'stalled-client-secret-0123456789';
/** A public status as Mastodon serves it, trimmed to what the snapshot reads. */
const SAVED_STATUS = {
  id: '113406148396826700',
  created_at: '2026-11-30T12:00:00.000Z',
  visibility: 'public',
  in_reply_to_id: null,
  in_reply_to_account_id: null,
  reblog: null,
  media_attachments: [],
  content: '<p>saved</p>',
  account: { id: '113406148396826625', username: 'alice', acct: 'alice' },
};

function budgetMs(attempts: number): number {
  let ms = attempts * TIMEOUT_SECONDS * 1000;
  for (let retry = 1; retry < attempts; retry++) ms += Math.min(8000, 500 * 2 ** (retry - 1));
  return ms;
}

/** What the failure says, as it said before issue 12 (the dribble is new: cut like a stall). */
function detailOf(stall: Stall): string {
  return stall === 'headers-then-stalls' || stall === 'dribbles'
    ? `the answer stalled: not complete within ${TIMEOUT_SECONDS} s`
    : `no answer within ${TIMEOUT_SECONDS} s`;
}

/** The path of the request that stalled: the chain's last hop for `redirect-chain`. */
function stalledPath(stall: Stall, path: string): string {
  return stall === 'redirect-chain' ? `/hop/${REDIRECT_HOPS}${path}` : path;
}

/** Requests the server must have seen for `attempts` attempts (connections, for one that never reads). */
function expectAttempts(server: StallServer, attempts: number): void {
  if (server.stall === 'never-reads') {
    expect(server.connections).toBe(attempts);
  } else {
    const perAttempt = server.stall === 'redirect-chain' ? REDIRECT_HOPS + 1 : 1;
    expect(server.requests).toHaveLength(attempts * perAttempt);
  }
}

/** Milliseconds from the first byte the server saw to `endedAt`. */
function sinceFirstByte(server: StallServer, endedAt: number): number {
  expect(server.firstByteAt).toBeDefined();
  return endedAt - (server.firstByteAt ?? endedAt);
}

function lineStarting(run: ActionRun, prefix: string): string {
  return run.stdout.split('\n').find((line) => line.startsWith(prefix)) ?? '';
}

let server: StallServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

describe.each(STALLS)('a server that %s', (stall) => {
  it('main (validate, max-attempts 2) fails within its budget, naming server and endpoint', async () => {
    server = await startStallServer(stall);
    const attempts = 2;
    const run = await runAction(
      'main',
      {
        instance: server.url,
        platform: 'mastodon',
        operation: 'validate',
        'access-token': TOKEN,
        'timeout-seconds': String(TIMEOUT_SECONDS),
        'max-attempts': String(attempts),
      },
      { timeoutMs: STARTUP_MS + budgetMs(attempts) + GRACE_MS },
    );
    const endedAt = Date.now();
    expect(run.exitCode).toBe(1);
    expect(lineStarting(run, '::error::')).toBe(
      `::error::${server.url} GET ${stalledPath(stall, '/api/v1/accounts/verify_credentials')}: ${detailOf(stall)}`,
    );
    expectAttempts(server, attempts);
    expect(sinceFirstByte(server, endedAt)).toBeLessThan(budgetMs(attempts) + GRACE_MS);
  });

  it('main with platform auto: detection (each request sent once) fails within its budget', async () => {
    server = await startStallServer(stall);
    const attempts = 1;
    const run = await runAction(
      'main',
      {
        instance: server.url,
        operation: 'validate',
        'access-token': TOKEN,
        'timeout-seconds': String(TIMEOUT_SECONDS),
        'max-attempts': '3',
      },
      { timeoutMs: STARTUP_MS + budgetMs(attempts) + GRACE_MS },
    );
    const endedAt = Date.now();
    expect(run.exitCode).toBe(1);
    expect(lineStarting(run, '::error::')).toBe(
      `::error::${server.url} GET ${stalledPath(stall, '/.well-known/nodeinfo')}: ${detailOf(stall)}`,
    );
    expectAttempts(server, attempts);
    expect(sinceFirstByte(server, endedAt)).toBeLessThan(budgetMs(attempts) + GRACE_MS);
  });

  it('post (revoke-on-exit, max-attempts 2) warns and ends with exit code 0 within its budget', async () => {
    server = await startStallServer(stall);
    const attempts = 2;
    const run = await runAction(
      'post',
      {
        instance: server.url,
        platform: 'mastodon',
        operation: 'client-credentials',
        'client-id': 'stalled-client',
        'client-secret': CLIENT_SECRET,
        'revoke-on-exit': 'true',
        'timeout-seconds': String(TIMEOUT_SECONDS),
        'max-attempts': String(attempts),
      },
      {
        state: { 'revoke-token': TOKEN, 'revoke-platform': 'mastodon', 'revoke-expires-at': '' },
        timeoutMs: STARTUP_MS + budgetMs(attempts) + GRACE_MS,
      },
    );
    const endedAt = Date.now();
    expect(run.exitCode).toBe(0);
    expect(lineStarting(run, '::error::')).toBe('');
    expect(lineStarting(run, '::warning::')).toBe(
      `::warning::Could not revoke the token this job obtained: ${server.url} POST ${stalledPath(stall, '/oauth/revoke')}: ${detailOf(stall)}`,
    );
    expectAttempts(server, attempts);
    expect(sinceFirstByte(server, endedAt)).toBeLessThan(budgetMs(attempts) + GRACE_MS);
  });

  it('snapshot, full walk: the nodeinfo probe (sent once) ends the step within one timeout', async () => {
    server = await startStallServer(stall);
    // With platform mastodon and no saved file, the walk first asks nodeinfo which server it is
    // (src/snapshot/run.ts); a server that never answers that would stall the walk too.
    const attempts = 1;
    const run = await runAction(
      'snapshot',
      {
        instance: server.url,
        platform: 'mastodon',
        'access-token': TOKEN,
        path: 'statuses.json',
        'timeout-seconds': String(TIMEOUT_SECONDS),
        'max-attempts': '2',
      },
      { timeoutMs: STARTUP_MS + budgetMs(attempts) + GRACE_MS },
    );
    const endedAt = Date.now();
    expect(run.exitCode).toBe(1);
    expect(lineStarting(run, '::error::')).toBe(
      `::error::${server.url} GET ${stalledPath(stall, '/.well-known/nodeinfo')}: ${detailOf(stall)}`,
    );
    expect(run.outputs).toEqual({});
    expectAttempts(server, attempts);
    expect(sinceFirstByte(server, endedAt)).toBeLessThan(budgetMs(attempts) + GRACE_MS);
  });

  it('snapshot, incremental (max-attempts 2) fails within its budget and keeps the file', async () => {
    server = await startStallServer(stall);
    const attempts = 2;
    const cwd = mkdtempSync(join(tmpdir(), 'stalls-snapshot-'));
    // A saved status names the account, so the first request is the listing itself.
    const saved = `${JSON.stringify([SAVED_STATUS], null, 2)}\n`;
    writeFileSync(join(cwd, 'statuses.json'), saved);
    try {
      const run = await runAction(
        'snapshot',
        {
          instance: server.url,
          platform: 'mastodon',
          'access-token': TOKEN,
          path: 'statuses.json',
          'timeout-seconds': String(TIMEOUT_SECONDS),
          'max-attempts': String(attempts),
        },
        { cwd, timeoutMs: STARTUP_MS + budgetMs(attempts) + GRACE_MS },
      );
      const endedAt = Date.now();
      expect(run.exitCode).toBe(1);
      expect(lineStarting(run, '::error::')).toBe(
        `::error::${server.url} GET ${stalledPath(stall, `/api/v1/accounts/${SAVED_STATUS.account.id}/statuses`)}: ${detailOf(stall)}`,
      );
      expect(run.outputs).toEqual({});
      expect(readFileSync(join(cwd, 'statuses.json'), 'utf8')).toBe(saved);
      expectAttempts(server, attempts);
      expect(sinceFirstByte(server, endedAt)).toBeLessThan(budgetMs(attempts) + GRACE_MS);
    } finally {
      rmSync(cwd, { recursive: true, force: true });
    }
  });

  it('the CLI (--timeout 1: one attempt at the app registration) ends with exit code 1 within its budget', async () => {
    server = await startStallServer(stall);
    // POST /api/v1/apps is not idempotent: a timeout is not retried (src/http.ts).
    const attempts = 1;
    const cli = startCli(
      ['login', server.url, '--platform', 'mastodon', '--timeout', String(TIMEOUT_SECONDS)],
      { deadlineMs: STARTUP_MS + budgetMs(attempts) + GRACE_MS },
    );
    const exit = await cli.exited;
    const endedAt = Date.now();
    expect(exit.signal).toBeNull();
    expect(exit.code).toBe(1);
    expect(exit.stderr).toContain(
      `Error: ${server.url} POST ${stalledPath(stall, '/api/v1/apps')}: ${detailOf(stall)}`,
    );
    expect(exit.stdout).toBe('');
    expectAttempts(server, attempts);
    expect(sinceFirstByte(server, endedAt)).toBeLessThan(budgetMs(attempts) + GRACE_MS);
  });

  it('the CLI ends on Ctrl-C while the request stalls, with exit code 130', async () => {
    server = await startStallServer(stall);
    // --timeout 30: the request would wait 30 s; only Ctrl-C can end it this early.
    const cli = startCli(['login', server.url, '--platform', 'mastodon', '--timeout', '30'], {
      deadlineMs: STARTUP_MS + GRACE_MS,
    });
    await server.connected(stall === 'redirect-chain' ? REDIRECT_HOPS + 1 : 1);
    const interruptedAt = Date.now();
    cli.child.kill('SIGINT');
    const exit = await cli.exited;
    expect(exit.signal).toBeNull();
    expect(exit.code).toBe(130);
    expect(exit.stderr).toMatch(/Interrupted \(Ctrl-C\); nothing was stored/);
    expect(Date.now() - interruptedAt).toBeLessThan(GRACE_MS);
  });
});

describe('a proxy that never answers CONNECT', () => {
  it('main ends within its budget: the tunnel it cannot reach does not hold the process', async () => {
    // @actions/http-client never proxies loopback hosts: the instance has a name only a proxy
    // could resolve, and this proxy reads the CONNECT and never answers.
    server = await startStallServer('never-answers');
    const attempts = 2;
    const run = await runAction(
      'main',
      {
        instance: 'https://social.example',
        platform: 'mastodon',
        operation: 'validate',
        'access-token': TOKEN,
        'timeout-seconds': String(TIMEOUT_SECONDS),
        'max-attempts': String(attempts),
      },
      {
        env: { https_proxy: server.url },
        timeoutMs: STARTUP_MS + budgetMs(attempts) + GRACE_MS,
      },
    );
    const endedAt = Date.now();
    expect(run.exitCode).toBe(1);
    expect(lineStarting(run, '::error::')).toBe(
      `::error::https://social.example GET /api/v1/accounts/verify_credentials: no answer within ${TIMEOUT_SECONDS} s`,
    );
    expect(server.requests).toEqual([
      'CONNECT social.example:443 HTTP/1.1',
      'CONNECT social.example:443 HTTP/1.1',
    ]);
    expect(sinceFirstByte(server, endedAt)).toBeLessThan(budgetMs(attempts) + GRACE_MS);
  });
});

describe('Http in process: a failed request leaves no socket of its own open', () => {
  /** Open TCP sockets of this process: the stall server's and the client's. */
  const openSockets = (): number =>
    process.getActiveResourcesInfo().filter((name) => name === 'TCPSocketWrap').length;

  it.each(STALLS)('a server that %s', async (stall) => {
    server = await startStallServer(stall);
    const before = openSockets();
    const http = new Http({ timeoutMs: TIMEOUT_SECONDS * 1000, maxAttempts: 1 });
    const error = await http
      .send({ method: 'GET', url: `${server.url}/api/v1/instance` })
      .catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(NetworkError);
    expect(error).toMatchObject({ failure: 'timeout' });
    expect(String(error)).toContain(
      `${server.url} GET ${stalledPath(stall, '/api/v1/instance')}: ${detailOf(stall)}`,
    );
    // A socket is released on the next turns of the event loop, not synchronously.
    await new Promise((resolve) => setTimeout(resolve, 100));
    // Every socket left is the server's end, which a stalled server never closes: a half-closed
    // client socket (socket.end() without destroy) would be one more.
    expect(openSockets() - before).toBe(server.openSockets);
  });
});
