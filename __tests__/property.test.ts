/**
 * Property tests over inputs: whatever strings a workflow passes, parsing either yields a config or
 * an InputError (never a crash), secrets are masked before anything can fail, and the bundle
 * always ends with success or one `::error::` line, no stack trace and no secret in its log.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { InputError } from '../src/errors.ts';
import { parseTokenInputs } from '../src/inputs.ts';
import { findLeaks, runAction } from './harness/action.ts';
import { startMastodonServer, type MastodonServer } from './servers/mastodon.ts';

const SECRET_INPUTS = [
  'client-secret',
  'code',
  'code-verifier',
  'access-token',
  'refresh-token',
  'github-token',
] as const;
const OTHER_INPUTS = [
  'operation',
  'instance',
  'platform',
  'client-id',
  'redirect-uri',
  'scope',
  'export-env',
  'revoke-on-exit',
  'fail-on-invalid',
  'secret-name',
  'timeout-seconds',
  'max-attempts',
  'token-endpoint',
] as const;

/** Text the action prints whatever the secrets are; a "secret" equal to part of it proves nothing. */
const FIXED_TEXT =
  '::add-mask::*** fedi-token: exchange client-credentials refresh validate revoke mastodon ' +
  'Operation Platform Software Account Scopes Expires never Valid yes no true false';

/** A secret whose presence in the log would mean a leak rather than a coincidence. */
function checkable(secret: string, others: (string | undefined)[]): boolean {
  return (
    secret.length >= 4 &&
    !secret.includes('*') &&
    !FIXED_TEXT.includes(secret) &&
    !others.some((other) => other?.includes(secret))
  );
}

/** Any text a YAML value can carry: odd unicode, control characters, several lines. */
const anyText = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.string({ unit: 'grapheme', maxLength: 20 }),
  fc
    .array(fc.string({ unit: 'binary', maxLength: 12 }), { minLength: 2, maxLength: 4 })
    .map((lines) => lines.join('\n')),
  fc.constantFrom('true', 'false', 'TRUE', '1', '0', '  ', '\t', 'validate', 'exchange'),
);

/** A value that can sit in an environment variable (no NUL), as the runner passes inputs. */
const envText = anyText.map((s) => s.replace(/\0/g, ''));

const inputValues = fc.record(
  Object.fromEntries(
    [...SECRET_INPUTS, ...OTHER_INPUTS].map((name) => [
      name,
      fc.option(anyText, { nil: undefined }),
    ]),
  ) as Record<string, fc.Arbitrary<string | undefined>>,
);

describe('parseTokenInputs over any strings', () => {
  it('returns a config or throws an InputError with a one-line message, masking secrets first', () => {
    fc.assert(
      fc.property(inputValues, (values) => {
        const masked: string[] = [];
        const source = {
          get: (name: string) => values[name] ?? '',
          mask: (s: string) => masked.push(s),
        };
        try {
          const config = parseTokenInputs(source);
          expect(['exchange', 'client-credentials', 'refresh', 'validate', 'revoke']).toContain(
            config.operation,
          );
          expect(config.timeoutMs).toBeGreaterThanOrEqual(1000);
          expect(config.maxAttempts).toBeGreaterThanOrEqual(1);
        } catch (error) {
          expect(error).toBeInstanceOf(InputError);
          const message = (error as InputError).message;
          expect(message).not.toMatch(/[\r\n]/);
          expect(message.length).toBeLessThan(400);
        }
        for (const name of SECRET_INPUTS) {
          const value = values[name];
          if (value) expect(masked).toContain(value);
        }
      }),
      { numRuns: 1500 },
    );
  });

  it('never quotes a secret input in an error message', () => {
    const marked = fc.string({ unit: 'binary', maxLength: 20 }).map((s) => `Sx7q${s}`);
    fc.assert(
      fc.property(
        inputValues,
        fc.record(
          Object.fromEntries(SECRET_INPUTS.map((n) => [n, fc.option(marked, { nil: undefined })])),
        ),
        (values, secrets) => {
          const all = { ...values, ...secrets } as Record<string, string | undefined>;
          try {
            parseTokenInputs({ get: (name) => all[name] ?? '', mask: () => undefined });
          } catch (error) {
            expect((error as Error).message).not.toContain('Sx7q');
          }
        },
      ),
      { numRuns: 1000 },
    );
  });
});

describe('the main bundle over any inputs', () => {
  let server: MastodonServer;
  beforeAll(async () => {
    server = await startMastodonServer();
  });
  afterAll(() => server.close());

  it('exits 0 or 1 with an ::error:: line, no stack trace, no visible secret', async () => {
    const maybe = (arb: fc.Arbitrary<string>) => fc.option(arb, { nil: undefined });
    const inputs = fc.record({
      operation: maybe(
        fc.oneof(
          fc.constantFrom('exchange', 'client-credentials', 'refresh', 'validate', 'revoke'),
          envText,
        ),
      ),
      // Never a real host: only the loopback server or text that is not an http(s) URL.
      instance: fc.oneof(
        fc.constant(server.url),
        envText.filter((s) => s.trim() !== '' && !/^\s*https?:/i.test(s)),
      ),
      platform: maybe(fc.oneof(fc.constantFrom('auto', 'mastodon'), envText)),
      'client-id': maybe(envText),
      'client-secret': maybe(envText),
      code: maybe(envText),
      'code-verifier': maybe(envText),
      'access-token': maybe(envText),
      'refresh-token': maybe(envText),
      'redirect-uri': maybe(envText),
      scope: maybe(envText),
      'export-env': maybe(envText),
      'revoke-on-exit': maybe(envText),
      'fail-on-invalid': maybe(envText),
      'timeout-seconds': maybe(fc.oneof(fc.constantFrom('2'), envText)),
      'max-attempts': maybe(fc.oneof(fc.constantFrom('1'), envText)),
    });
    await fc.assert(
      fc.asyncProperty(inputs, async (values) => {
        const given = Object.fromEntries(
          Object.entries(values).filter((e): e is [string, string] => e[1] !== undefined),
        );
        const run = await runAction('main', given, { timeoutMs: 20_000 });
        expect([0, 1]).toContain(run.exitCode);
        if (run.exitCode === 1) expect(run.stdout).toMatch(/^::error::/m);
        expect(run.log).not.toMatch(/\n\s+at \S+ \(|\n\s+at (file|node):/);
        expect(run.stderr).toBe('');
        // Checkable secrets: what the runner sees (trimmed), long enough not to collide with
        // the masking's own `***` and command text.
        const others = OTHER_INPUTS.map((name) => given[name]);
        const secrets = SECRET_INPUTS.map((name) => (given[name] ?? '').trim()).filter((s) =>
          checkable(s, others),
        );
        expect(findLeaks(run, secrets)).toEqual([]);
      }),
      { numRuns: 25 },
    );
  });

  it('sends any access-token text to the server without crashing or leaking it', async () => {
    const before = server.requests.length;
    await fc.assert(
      fc.asyncProperty(
        envText.filter((s) => s.trim() !== ''),
        fc.constantFrom('true', 'false'),
        async (token, failOnInvalid) => {
          const run = await runAction('main', {
            instance: server.url,
            platform: 'mastodon',
            operation: 'validate',
            'access-token': token,
            'fail-on-invalid': failOnInvalid,
            'max-attempts': '1',
          });
          expect([0, 1]).toContain(run.exitCode);
          if (run.exitCode === 0) expect(run.outputs.valid).toBe('false');
          else expect(run.stdout).toMatch(/^::error::/m);
          expect(run.log).not.toMatch(/\n\s+at \S+ \(|\n\s+at (file|node):/);
          const secret = token.trim();
          if (checkable(secret, [server.url])) {
            expect(findLeaks(run, [secret])).toEqual([]);
          }
        },
      ),
      { numRuns: 15 },
    );
    // Tokens that are valid header text reached the server.
    expect(server.requests.length).toBeGreaterThan(before);
  });
});
