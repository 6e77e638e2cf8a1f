import { describe, expect, it } from '@jest/globals';
import { errorCodeOf, requestedWaitMs } from '../src/http.ts';

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
