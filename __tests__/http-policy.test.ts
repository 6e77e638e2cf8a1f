import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import * as z from 'zod/mini';
import { ServerError } from '../src/errors.ts';
import { Http, errorCodeOf, requestedWaitMs } from '../src/http.ts';
import { startMastodonServer, type MastodonServer } from './servers/mastodon.ts';

describe('requestedWaitMs', () => {
  const now = Date.parse('2026-01-01T00:00:00Z');
  it('reads Retry-After seconds and dates', () => {
    expect(requestedWaitMs({ 'retry-after': '3' }, 503, now)).toBe(3000);
    expect(requestedWaitMs({ 'retry-after': 'Thu, 01 Jan 2026 00:00:05 GMT' }, 503, now)).toBe(
      5000,
    );
  });
  it('reads X-RateLimit-Reset only on 429, as ISO 8601 or epoch seconds', () => {
    const reset = { 'x-ratelimit-reset': '2026-01-01T00:00:07.000Z' };
    expect(requestedWaitMs(reset, 429, now)).toBe(7000);
    expect(requestedWaitMs(reset, 503, now)).toBeUndefined();
    expect(requestedWaitMs({ 'x-ratelimit-reset': String(now / 1000 + 2) }, 429, now)).toBe(2000);
  });
});

describe('errorCodeOf', () => {
  it('understands OAuth, Mastodon, Misskey and AnyWeb error bodies', () => {
    expect(errorCodeOf('{"error":"invalid_grant","error_description":"bad code"}')).toEqual({
      code: 'invalid_grant',
      description: 'bad code',
    });
    expect(errorCodeOf('{"error":"The access token is invalid"}')).toEqual({
      description: 'The access token is invalid',
    });
    expect(errorCodeOf('{"error":{"code":"PERMISSION_DENIED","message":"no","id":"x"}}')).toEqual({
      code: 'PERMISSION_DENIED',
      description: 'no',
    });
    expect(errorCodeOf('{"code":"A107P007","message":"code invalid"}')).toEqual({
      code: 'A107P007',
      description: 'code invalid',
    });
    expect(errorCodeOf('<html>')).toEqual({});
  });
});

describe('Http in-process against the loopback server', () => {
  // Fake sleep: the policy's waits are recorded, not spent, so long Retry-After values are cheap.
  const make = (options: Partial<ConstructorParameters<typeof Http>[0]> = {}) => {
    const sleeps: number[] = [];
    const http = new Http({
      timeoutMs: 2000,
      maxAttempts: 3,
      sleep: async (ms) => {
        sleeps.push(ms);
      },
      random: () => 0.999,
      ...options,
    });
    return { http, sleeps };
  };
  let server: MastodonServer;
  beforeAll(async () => {
    server = await startMastodonServer();
  });
  afterAll(() => server.close());

  it('waits exactly what Retry-After asks, then succeeds', async () => {
    const { http, sleeps } = make();
    server.inject({ path: '/api/v1/instance', kind: 'status', status: 429, retryAfter: 30 });
    const response = await http.send({ method: 'GET', url: `${server.url}/api/v1/instance` });
    expect(response.status).toBe(200);
    expect(sleeps).toEqual([30_000]);
    expect(http.requestCount).toBe(2);
  });

  it('backs off with capped full jitter when the server names no wait', async () => {
    const { http, sleeps } = make({ maxAttempts: 4, baseDelayMs: 500 });
    server.inject({ path: '/api/v1/instance', kind: 'status', status: 503, times: 3 });
    await http.send({ method: 'GET', url: `${server.url}/api/v1/instance` });
    expect(sleeps).toEqual([499, 999, 1998]);
  });

  it('never repeats a POST after a bare 503 or 502, but does after 429', async () => {
    const url = `${server.url}/api/v1/apps`;
    const form = { client_name: 'x', redirect_uris: 'urn:ietf:wg:oauth:2.0:oob' };
    for (const status of [502, 503]) {
      const { http } = make();
      server.inject({ path: '/api/v1/apps', kind: 'status', status });
      await expect(http.send({ method: 'POST', url, form })).rejects.toMatchObject({ status });
      expect(http.requestCount).toBe(1);
    }
    const { http } = make();
    server.inject({ path: '/api/v1/apps', kind: 'status', status: 429 });
    expect((await http.send({ method: 'POST', url, form })).status).toBe(200);
    expect(http.requestCount).toBe(2);
  });

  it('treats accepted statuses as answers, not failures', async () => {
    const { http } = make();
    const response = await http.send({
      method: 'GET',
      url: `${server.url}/api/v1/accounts/verify_credentials`,
      bearer: 'unknown',
      accept: [401],
    });
    expect(response.status).toBe(401);
    expect(errorCodeOf(response.text)).toEqual({ description: 'The access token is invalid' });
  });

  it('names only fields, never values, when a JSON answer has the wrong shape', async () => {
    const { http } = make();
    server.inject({
      path: '/api/v1/instance',
      kind: 'status',
      status: 200,
      body: { version: 12345678, secretish: 'do-not-print-me' },
    });
    const error = await http
      .json(
        { method: 'GET', url: `${server.url}/api/v1/instance` },
        z.object({ version: z.string() }),
      )
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ServerError);
    expect(String(error)).toContain('missing or malformed version');
    expect(String(error)).not.toMatch(/12345678|do-not-print-me/);
  });
});
