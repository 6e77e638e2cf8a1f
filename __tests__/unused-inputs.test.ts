/**
 * Inputs that do nothing in a run are named in a warning, never dropped in silence, and
 * `export-env` exports the token the step ends with, `validate` included: in-process through the
 * table in src/inputs.ts, and through the bundle as the runner runs it.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { Platform } from '../src/config.ts';
import { inputsWithoutEffect, parseTokenInputs } from '../src/inputs.ts';
import { ROOT, findLeaks, runAction } from './harness/action.ts';
import { startMastodonServer, type MastodonServer } from './servers/mastodon.ts';
import { startMisskey, type MisskeyServer } from './servers/misskey.ts';

function warningsFor(inputs: Record<string, string>, platform: Platform): string[] {
  const config = parseTokenInputs({
    get: (name) => ({ instance: 'https://social.example', ...inputs })[name] ?? '',
    mask: () => {},
  });
  return inputsWithoutEffect(config, platform);
}

const warningLines = (stdout: string): string[] =>
  stdout.split('\n').filter((line) => line.startsWith('::warning::'));

/** action.yml's defaults, which the runner passes as inputs when a workflow gives nothing. */
function actionDefaults(): Record<string, string> {
  const yml = readFileSync(join(ROOT, 'action.yml'), 'utf8');
  const inputs = yml.slice(yml.indexOf('\ninputs:'), yml.indexOf('\noutputs:'));
  const defaults: Record<string, string> = {};
  for (const match of inputs.matchAll(/^ {2}([a-z-]+):\n(?: {4}.*\n)*? {4}default: (.*)$/gm)) {
    defaults[match[1] ?? ''] = (match[2] ?? '').replace(/^'(.*)'$/, '$1');
  }
  return defaults;
}

describe('the table of inputs and what they affect', () => {
  it('names an input the operation never reads', () => {
    expect(
      warningsFor({ operation: 'validate', 'access-token': 't', code: 'c' }, 'mastodon'),
    ).toEqual(["Input 'code' has no effect on operation 'validate'; it was ignored"]);
    expect(
      warningsFor(
        { operation: 'exchange', code: 'c', 'refresh-token': 'r', 'fail-on-invalid': 'false' },
        'oauth2',
      ),
    ).toEqual([
      "Input 'refresh-token' has no effect on operation 'exchange'; it was ignored",
      "Input 'fail-on-invalid' has no effect on operation 'exchange'; it was ignored",
    ]);
    expect(
      warningsFor({ operation: 'revoke', 'access-token': 't', 'export-env': 'TOKEN' }, 'mastodon'),
    ).toEqual(["Input 'export-env' has no effect on operation 'revoke'; it was ignored"]);
  });

  it('names the platform when another platform would read the input', () => {
    const miauth = { operation: 'exchange', code: 'session', 'client-id': 'id', scope: 'read' };
    expect(warningsFor(miauth, 'misskey')).toEqual([
      "Input 'client-id' has no effect on operation 'exchange' on misskey; it was ignored",
      "Input 'scope' has no effect on operation 'exchange' on misskey; it was ignored",
    ]);
    expect(warningsFor(miauth, 'mastodon')).toEqual([]);
    const endpoint = {
      operation: 'validate',
      'access-token': 't',
      'token-endpoint-auth-method': 'client_secret_post',
    };
    expect(warningsFor(endpoint, 'mastodon')).toEqual([
      "Input 'token-endpoint-auth-method' has no effect on operation 'validate' on mastodon; it was ignored",
    ]);
    expect(warningsFor({ ...endpoint, 'client-secret': 's', 'client-id': 'i' }, 'oauth2')).toEqual(
      [],
    );
  });

  it('counts what the post step reads for revoke-on-exit, and a companion input', () => {
    const exchange = {
      operation: 'exchange',
      code: 'c',
      'client-id': 'i',
      'client-secret': 's',
      'revocation-endpoint': 'https://social.example/revoke',
    };
    expect(warningsFor(exchange, 'oauth2')).toEqual([
      "Input 'revocation-endpoint' has no effect on operation 'exchange'; it was ignored",
    ]);
    expect(warningsFor({ ...exchange, 'revoke-on-exit': 'true' }, 'oauth2')).toEqual([]);
    const refresh = { operation: 'refresh', 'refresh-token': 'r', 'github-token': 'g' };
    expect(warningsFor(refresh, 'anyweb')).toEqual([
      "Input 'github-token' has no effect without 'secret-name'; it was ignored",
    ]);
    expect(warningsFor({ ...refresh, 'secret-name': 'REFRESH' }, 'anyweb')).toEqual([]);
  });

  it('takes the defaults the runner passes for no choice at all', () => {
    const defaults = actionDefaults();
    // Every input action.yml gives a default for, so a new default cannot slip past this test.
    expect(Object.keys(defaults).sort()).toEqual(
      [
        'fail-on-invalid',
        'max-attempts',
        'platform',
        'redirect-uri',
        'revoke-on-exit',
        'timeout-seconds',
        'token-endpoint-auth-method',
      ].sort(),
    );
    for (const operation of ['exchange', 'client-credentials', 'refresh', 'validate', 'revoke']) {
      for (const platform of ['mastodon', 'misskey', 'anyweb', 'oauth2'] as const) {
        expect(warningsFor({ ...defaults, operation }, platform)).toEqual([]);
      }
    }
    // A value other than the default is a choice, and so is warned about where it does nothing.
    expect(
      warningsFor(
        { ...defaults, operation: 'revoke', 'redirect-uri': 'https://site.example/cb' },
        'mastodon',
      ),
    ).toEqual(["Input 'redirect-uri' has no effect on operation 'revoke'; it was ignored"]);
  });
});

describe('through the bundle', () => {
  let server: MastodonServer;
  beforeAll(async () => {
    server = await startMastodonServer();
  });
  afterAll(() => server.close());

  it('validate with export-env exports the token it found valid', async () => {
    const token = server.issueToken();
    const run = await runAction('main', {
      ...actionDefaults(),
      instance: server.url,
      operation: 'validate',
      'access-token': token,
      'export-env': 'FEDI_TOKEN',
    });
    expect(run.exitCode).toBe(0);
    expect(run.outputs.valid).toBe('true');
    expect(run.env).toEqual({ FEDI_TOKEN: token });
    // The runner's own defaults for every other input are no reason to warn.
    expect(warningLines(run.stdout)).toEqual([]);
    expect(findLeaks(run, [token])).toEqual([]);
  });

  it('an invalid token is not exported, and the log says so', async () => {
    const token = server.issueToken();
    const revoked = `${token}-unknown`;
    const run = await runAction('main', {
      instance: server.url,
      platform: 'mastodon',
      operation: 'validate',
      'access-token': revoked,
      'export-env': 'FEDI_TOKEN',
      'fail-on-invalid': 'false',
    });
    expect(run.exitCode).toBe(0);
    expect(run.outputs.valid).toBe('false');
    expect(run.env).toEqual({});
    expect(run.stdout).toContain('FEDI_TOKEN was not exported: the token is not valid');
    expect(findLeaks(run, [revoked])).toEqual([]);
  });

  it('warns about each input the operation does not read, before any request, then runs', async () => {
    const token = server.issueToken();
    const code = 'a-code-that-validate-never-reads';
    const githubToken = 'ghp_not-used-without-secret-name';
    const sent = server.requests.length;
    const run = await runAction('main', {
      instance: server.url,
      platform: 'mastodon',
      operation: 'validate',
      'access-token': token,
      code,
      'client-id': 'an-app',
      'github-token': githubToken,
    });
    expect(run.exitCode).toBe(0);
    expect(warningLines(run.stdout)).toEqual([
      "::warning::Input 'client-id' has no effect on operation 'validate' on mastodon; it was ignored",
      "::warning::Input 'code' has no effect on operation 'validate'; it was ignored",
      "::warning::Input 'github-token' has no effect without 'secret-name'; it was ignored",
    ]);
    // Warned before the one request validate makes.
    const firstWarning = run.stdout.indexOf('::warning::');
    expect(firstWarning).toBeLessThan(run.stdout.indexOf('The access token is valid'));
    expect(server.requests.length - sent).toBe(1);
    expect(findLeaks(run, [token, code, githubToken])).toEqual([]);
  });

  it('the post step does not repeat the warnings', async () => {
    const app = server.registerApp();
    const inputs = {
      instance: server.url,
      platform: 'mastodon',
      operation: 'client-credentials',
      'client-id': app.clientId,
      'client-secret': app.clientSecret,
      'access-token': 'a-token-client-credentials-never-reads',
      'revoke-on-exit': 'true',
    };
    const main = await runAction('main', inputs);
    expect(main.exitCode).toBe(0);
    expect(warningLines(main.stdout)).toEqual([
      "::warning::Input 'access-token' has no effect on operation 'client-credentials'; it was ignored",
    ]);
    const post = await runAction('post', inputs, { state: main.state });
    expect(post.exitCode).toBe(0);
    expect(warningLines(post.stdout)).toEqual([]);
    expect(server.isRevoked(main.outputs['access-token'] ?? '')).toBe(true);
  });
});

describe('with platform auto, after detection', () => {
  let misskey: MisskeyServer;
  beforeAll(async () => {
    misskey = await startMisskey();
  });
  afterAll(() => misskey.close());

  it('names the detected platform for an input only another platform reads', async () => {
    const token = misskey.issueToken('alice', ['read:account']);
    const run = await runAction('main', {
      instance: misskey.url,
      operation: 'validate',
      'access-token': token,
      'client-id': 'an-app',
      'client-secret': 'an-app-secret-never-sent',
    });
    expect(run.exitCode).toBe(0);
    expect(warningLines(run.stdout)).toEqual([
      "::warning::Input 'client-id' has no effect on operation 'validate' on misskey; it was ignored",
      "::warning::Input 'client-secret' has no effect on operation 'validate' on misskey; it was ignored",
    ]);
    expect(run.stdout.indexOf('Detected misskey')).toBeLessThan(run.stdout.indexOf('::warning::'));
    expect(findLeaks(run, [token, 'an-app-secret-never-sent'])).toEqual([]);
  });
});
