/**
 * Bad input fails before any request and says which input is wrong and what it accepts: through
 * the bundle as the runner runs it, and in-process through parseTokenInputs with an InputSource.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { InputError } from '../src/errors.ts';
import { parseTokenInputs, type InputSource } from '../src/inputs.ts';
import { ROOT, findLeaks, runAction } from './harness/action.ts';
import { startMastodonServer, type MastodonServer } from './servers/mastodon.ts';

function source(values: Record<string, string>): InputSource & { masked: string[] } {
  const masked: string[] = [];
  return { get: (name) => values[name] ?? '', mask: (s) => masked.push(s), masked };
}

function inputError(values: Record<string, string>): InputError {
  try {
    parseTokenInputs(source(values));
  } catch (error) {
    if (error instanceof InputError) return error;
    throw error;
  }
  throw new Error('parseTokenInputs accepted the inputs');
}

describe('bad inputs through the bundle', () => {
  let server: MastodonServer;
  beforeAll(async () => {
    server = await startMastodonServer();
  });
  afterAll(() => server.close());

  const secret = 'sEcReT-token-value-0123456789';
  const cases: [string, Record<string, string>, RegExp][] = [
    [
      'unknown operation',
      { operation: 'renew', 'access-token': secret },
      /Input 'operation': got "renew"; allowed values: exchange, client-credentials, refresh, validate, revoke/,
    ],
    [
      'missing operation',
      { 'access-token': secret },
      /Input 'operation': is required; allowed values: exchange, client-credentials/,
    ],
    [
      'missing input for the operation',
      { operation: 'validate' },
      /Input 'access-token': is required for operation 'validate'/,
    ],
    [
      'missing client for a Mastodon exchange',
      { operation: 'exchange', code: secret, platform: 'mastodon' },
      /Input 'client-id': is required by Mastodon-API servers/,
    ],
    [
      'malformed URL',
      { operation: 'validate', 'access-token': secret, instance: 'social example' },
      /Input 'instance': got "social example"; expected an https:\/\/ URL/,
    ],
    [
      'http:// to a non-loopback host',
      { operation: 'validate', 'access-token': secret, instance: 'http://social.example' },
      /Input 'instance': plain http:\/\/ is allowed only for loopback addresses/,
    ],
    [
      'non-boolean boolean',
      { operation: 'validate', 'access-token': secret, 'fail-on-invalid': 'yes' },
      /Input 'fail-on-invalid': got "yes"; allowed values: true, false/,
    ],
    [
      'unknown platform',
      { operation: 'validate', 'access-token': secret, platform: 'diaspora' },
      /Input 'platform': got "diaspora"; allowed values: auto, mastodon, misskey, anyweb, oauth2/,
    ],
    [
      'out-of-range number',
      { operation: 'validate', 'access-token': secret, 'max-attempts': '0' },
      /Input 'max-attempts': got "0"; expected a whole number from 1 to 10/,
    ],
  ];

  it('fails each case with a message naming the input, and sends nothing', async () => {
    const runs = await Promise.all(
      cases.map(([, inputs]) =>
        runAction('main', { instance: server.url, ...inputs } as Record<string, string>),
      ),
    );
    runs.forEach((run, i) => {
      const [name, , expected] = cases[i] ?? ['', {}, /$^/];
      expect({ name, exitCode: run.exitCode }).toEqual({ name, exitCode: 1 });
      const error = run.stdout.split('\n').find((l) => l.startsWith('::error::')) ?? '';
      expect(error).toMatch(expected);
      expect(run.log).not.toMatch(/\n\s+at /);
      expect(findLeaks(run, [secret])).toEqual([]);
    });
    expect(server.requests).toEqual([]);
  });

  // The operation's own inputs are left out: the platform's answer is the useful one.
  const unsupported: [string, Record<string, string>, RegExp][] = [
    [
      'misskey refresh',
      { platform: 'misskey', operation: 'refresh' },
      /^::error::Misskey tokens do not expire and have no refresh token; keep using the token/,
    ],
    [
      'misskey client-credentials',
      { platform: 'misskey', operation: 'client-credentials' },
      /^::error::Misskey has no app-only tokens; get a user token with 'exchange'/,
    ],
    [
      'misskey revoke',
      { platform: 'misskey', operation: 'revoke' },
      /^::error::Misskey does not let an app revoke its own token; revoke it in the Misskey web UI/,
    ],
    [
      'anyweb client-credentials',
      { platform: 'anyweb', operation: 'client-credentials' },
      /^::error::AnyWeb issues user tokens only; use 'exchange' with a code/,
    ],
    [
      'anyweb revoke',
      { platform: 'anyweb', operation: 'revoke' },
      /^::error::AnyWeb has no token revocation; access tokens expire on their own/,
    ],
  ];

  it('names the platform and the alternative for an unsupported operation before any input it lacks', async () => {
    const runs = await Promise.all(
      unsupported.map(([, inputs]) => runAction('main', { instance: server.url, ...inputs })),
    );
    runs.forEach((run, i) => {
      const [name, , expected] = unsupported[i] ?? ['', {}, /$^/];
      const error = run.stdout.split('\n').find((l) => l.startsWith('::error::')) ?? '';
      expect({ name, exitCode: run.exitCode, error }).toEqual({
        name,
        exitCode: 1,
        error: expect.stringMatching(expected),
      });
      expect(error).not.toContain("Input '");
    });
    expect(server.requests).toEqual([]);
  });
});

describe('parseTokenInputs', () => {
  it('masks every secret before it reports an error about another input', () => {
    const values = {
      operation: 'nope',
      'client-secret': 'cs',
      code: 'line one\nline two',
      'access-token': 'at',
      'refresh-token': 'rt',
      'code-verifier': 'cv',
      'github-token': 'gt',
    };
    const src = source(values);
    expect(() => parseTokenInputs(src)).toThrow(InputError);
    expect(src.masked.sort()).toEqual(['at', 'cs', 'cv', 'gt', 'line one\nline two', 'rt']);
  });

  it('reads a full config with defaults', () => {
    const config = parseTokenInputs(
      source({
        operation: 'Exchange',
        instance: 'https://social.example',
        code: ' abc ',
        'client-id': 'id',
        'client-secret': 'secret',
        scope: 'read, write\nfollow',
        'revoke-on-exit': 'True',
        'timeout-seconds': '1.5',
      }),
    );
    expect(config).toMatchObject({
      operation: 'exchange',
      platform: 'auto',
      code: 'abc',
      redirectUri: 'urn:ietf:wg:oauth:2.0:oob',
      scope: 'read write follow',
      revokeOnExit: true,
      failOnInvalid: true,
      timeoutMs: 1500,
      maxAttempts: 3,
    });
    expect(config.instance?.href).toBe('https://social.example/');
  });

  it('accepts http:// only for loopback hosts', () => {
    for (const host of ['127.0.0.1:8080', 'localhost', '[::1]:3000', '127.1.2.3']) {
      const config = parseTokenInputs(
        source({ operation: 'validate', 'access-token': 't', instance: `http://${host}` }),
      );
      expect(config.instance?.protocol).toBe('http:');
    }
    for (const host of ['127.0.0.1.nip.io', 'localhost.example', '10.0.0.1', '[::2]']) {
      expect(
        inputError({ operation: 'validate', 'access-token': 't', instance: `http://${host}` })
          .input,
      ).toBe('instance');
    }
  });

  it('rejects URLs with credentials, queries, fragments or other schemes', () => {
    for (const instance of [
      'https://user:pw@social.example',
      'https://social.example/?x=1',
      'https://social.example/#top',
      'ftp://social.example',
      'javascript:alert(1)',
    ]) {
      expect(inputError({ operation: 'validate', 'access-token': 't', instance }).input).toBe(
        'instance',
      );
    }
  });

  it('checks inputs that only make sense together', () => {
    const base = { instance: 'https://social.example' };
    expect(
      inputError({ ...base, operation: 'validate', 'access-token': 't', 'revoke-on-exit': 'true' })
        .message,
    ).toMatch(/revoke-on-exit.*exchange, client-credentials, refresh/);
    expect(
      inputError({ ...base, operation: 'validate', 'access-token': 't', 'secret-name': 'X' }).input,
    ).toBe('secret-name');
    expect(
      inputError({ ...base, operation: 'refresh', 'refresh-token': 'r', 'secret-name': 'X' }).input,
    ).toBe('github-token');
    expect(
      inputError({ ...base, operation: 'validate', 'access-token': 't', 'export-env': 'GITHUB_X' })
        .input,
    ).toBe('export-env');
    expect(
      inputError({ ...base, operation: 'exchange', code: 'c', 'redirect-uri': 'not a uri' }).input,
    ).toBe('redirect-uri');
    expect(
      inputError({ ...base, operation: 'validate', 'access-token': 't', scope: 'read "x"' }).input,
    ).toBe('scope');
  });

  it('reads YAML booleans only', () => {
    for (const [value, expected] of [
      ['true', true],
      ['TRUE', true],
      ['False', false],
      ['', true],
    ] as const) {
      const config = parseTokenInputs(
        source({
          instance: 'https://s.example',
          operation: 'validate',
          'access-token': 't',
          'fail-on-invalid': value,
        }),
      );
      expect(config.failOnInvalid).toBe(expected);
    }
    for (const value of ['yes', '1', 'on', 'tRUE']) {
      expect(
        inputError({
          instance: 'https://s.example',
          operation: 'validate',
          'access-token': 't',
          'fail-on-invalid': value,
        }).message,
      ).toMatch(/allowed values: true, false/);
    }
  });

  it('lets anyweb default its instance and oauth2 use a token endpoint instead', () => {
    expect(
      parseTokenInputs(source({ platform: 'anyweb', operation: 'exchange', code: 'c' })).instance
        ?.origin,
    ).toBe('https://api.anyweb.cc');
    const oauth2 = parseTokenInputs(
      source({
        platform: 'oauth2',
        operation: 'client-credentials',
        'client-id': 'i',
        'client-secret': 's',
        'token-endpoint': 'https://auth.example/token',
      }),
    );
    expect(oauth2.instance).toBeUndefined();
    expect(inputError({ operation: 'validate', 'access-token': 't' }).message).toMatch(
      /Input 'instance': is required/,
    );
  });
});

describe('action.yml', () => {
  const yml = readFileSync(join(ROOT, 'action.yml'), 'utf8');
  const declared = (from: string, to: string): string[] => {
    const section = yml.slice(yml.indexOf(`\n${from}:`), to ? yml.indexOf(`\n${to}:`) : undefined);
    return [...section.matchAll(/^ {2}([a-z-]+):$/gm)].map((m) => m[1] ?? '').sort();
  };
  // A valid value for every input, so no early error hides a later read.
  const plausible: Record<string, string> = {
    instance: 'https://social.example',
    'client-id': 'id',
    'client-secret': 'secret',
    code: 'code',
    'code-verifier': 'v'.repeat(43),
    'access-token': 'token',
    'refresh-token': 'refresh',
    'secret-name': 'FEDI_REFRESH_TOKEN',
    'github-token': 'ghp_x',
    'export-env': 'FEDI_TOKEN',
  };

  it('declares exactly the inputs the action reads', () => {
    const read = new Set<string>();
    for (const operation of ['exchange', 'client-credentials', 'refresh', 'validate', 'revoke']) {
      for (const platform of ['mastodon', 'misskey', 'anyweb', 'oauth2', 'auto']) {
        try {
          parseTokenInputs({
            get: (name) => {
              read.add(name);
              return { operation, platform, ...plausible }[name] ?? '';
            },
            mask: () => {},
          });
        } catch (error) {
          if (!(error instanceof InputError)) throw error;
        }
      }
    }
    expect(declared('inputs', 'outputs')).toEqual([...read].sort());
  });

  it('declares exactly the outputs a run writes', async () => {
    const server = await startMastodonServer();
    try {
      const run = await runAction('main', {
        instance: server.url,
        platform: 'mastodon',
        operation: 'validate',
        'access-token': server.issueToken(),
      });
      expect(run.exitCode).toBe(0);
      expect(declared('outputs', '')).toEqual(Object.keys(run.outputs).sort());
    } finally {
      await server.close();
    }
  });
});
