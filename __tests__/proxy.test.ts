/**
 * Proxies as a self-hosted runner behind one meets them: `https_proxy` and `no_proxy` in the
 * environment, honoured by @actions/http-client. It never proxies loopback hosts, so the servers
 * here sit behind public-looking names that do not resolve (servers/tls.ts): a run that succeeds
 * can only have gone through the proxy.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from '@jest/globals';
import { runAction, type ActionRun } from './harness/action.ts';
import { startAnyWeb, type AnyWebServer } from './servers/anyweb.ts';
import { startMastodonServer, type MastodonServer } from './servers/mastodon.ts';
import {
  startConnectProxy,
  startTlsFront,
  type ConnectProxy,
  type TlsFront,
} from './servers/tls.ts';

const SOCIAL = 'social.example';
/** The AnyWeb default instance (src/inputs.ts ANYWEB_INSTANCE), spelled out to test it. */
const ANYWEB = 'api.anyweb.cc';

let mastodon: MastodonServer;
let anyweb: AnyWebServer;
let front: TlsFront;
let proxy: ConnectProxy;

beforeAll(async () => {
  [mastodon, anyweb] = await Promise.all([startMastodonServer(), startAnyWeb()]);
  front = await startTlsFront({ [SOCIAL]: mastodon.url, [ANYWEB]: anyweb.url });
  proxy = await startConnectProxy(front);
});
afterAll(async () => {
  await Promise.all([proxy.close(), front.close(), mastodon.close(), anyweb.close()]);
});
beforeEach(() => {
  proxy.connects.length = 0;
  proxy.others.length = 0;
});

function proxied(inputs: Record<string, string>, env: Record<string, string> = {}) {
  return runAction('main', inputs, {
    env: { https_proxy: proxy.url, NODE_EXTRA_CA_CERTS: front.certPath, ...env },
  });
}

function errorLine(run: ActionRun): string {
  return run.stdout.split('\n').find((line) => line.startsWith('::error::')) ?? '';
}

const STACK_TRACE = /\n\s+at \S+ \(|\n\s+at (file|node):/;

describe('https_proxy', () => {
  it('reaches an instance only the proxy can resolve, tunnelling with CONNECT host:443', async () => {
    const token = mastodon.issueToken();
    const before = mastodon.requests.length;
    const run = await proxied({
      instance: `https://${SOCIAL}`,
      platform: 'mastodon',
      operation: 'validate',
      'access-token': token,
    });
    expect(errorLine(run)).toBe('');
    expect(run.exitCode).toBe(0);
    expect(run.outputs).toMatchObject({ valid: 'true', username: 'alice' });
    expect(proxy.connects.length).toBeGreaterThan(0);
    expect(new Set(proxy.connects)).toEqual(new Set([`${SOCIAL}:443`]));
    expect(proxy.others).toEqual([]);
    expect(mastodon.requests.slice(before).map((r) => r.path)).toContain(
      '/api/v1/accounts/verify_credentials',
    );
  });

  it('goes direct for a host in no_proxy, and then says the name does not resolve', async () => {
    const run = await proxied(
      {
        instance: `https://${SOCIAL}`,
        platform: 'mastodon',
        operation: 'validate',
        'access-token': 'no-proxy-token-0123456789',
        'max-attempts': '1',
      },
      { no_proxy: SOCIAL },
    );
    expect(run.exitCode).toBe(1);
    expect(proxy.connects).toEqual([]);
    expect(errorLine(run)).toBe(
      `::error::https://${SOCIAL} GET /api/v1/accounts/verify_credentials: ` +
        'the host name could not be resolved',
    );
    expect(run.log).not.toMatch(STACK_TRACE);
  });

  it("uses AnyWeb's default instance when none is given, end to end", async () => {
    const app = anyweb.registerApp();
    const unionid = randomUUID();
    const code = anyweb.mintCode(app.appid, { unionid });
    const credentials = { 'client-id': app.appid, 'client-secret': app.secret };
    const before = anyweb.requests.length;

    const exchanged = await proxied({
      platform: 'anyweb',
      operation: 'exchange',
      code,
      ...credentials,
    });
    expect(errorLine(exchanged)).toBe('');
    expect(exchanged.exitCode).toBe(0);
    expect(exchanged.outputs).toMatchObject({ platform: 'anyweb', 'account-id': unionid });

    // With the app credentials, validate asks the server too rather than reading the JWT.
    const validated = await proxied({
      platform: 'anyweb',
      operation: 'validate',
      'access-token': exchanged.outputs['access-token'] ?? '',
      ...credentials,
    });
    expect(validated.exitCode).toBe(0);
    expect(validated.outputs).toMatchObject({ valid: 'true', 'account-id': unionid });

    expect(anyweb.requests.slice(before).map((r) => r.path)).toEqual([
      '/oauth/accessToken',
      '/oauth/userInfo',
    ]);
    expect(new Set(proxy.connects)).toEqual(new Set([`${ANYWEB}:443`]));
    expect(proxy.others).toEqual([]);
  });
});
