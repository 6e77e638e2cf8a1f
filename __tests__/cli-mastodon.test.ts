/**
 * The CLI where Mastodon and Akkoma differ by their source (issue 10): Doorkeeper's loopback-port
 * rule lets an existing app log in through the loopback listener on Mastodon, where Akkoma needs
 * copy-paste; Mastodon's app-registration throttle is reported with the time to try again.
 * Through the bundle, the user's click over plain HTTP.
 */
import { describe, expect, it } from '@jest/globals';
import { EXIT } from '../src/cli/exit.ts';
import { answerAuthorize, startCli } from './harness/cli.ts';
import { OOB, startMastodonServer } from './servers/mastodon.ts';

const printed = (stdout: string): Record<string, string> =>
  Object.fromEntries([...stdout.matchAll(/^([A-Z_]+)=(\S+)$/gm)].map((m) => [m[1], m[2]]));

describe('--client-id without --port', () => {
  it('on Mastodon: the loopback listener on any port, for an app registered with http://127.0.0.1/callback', async () => {
    const upstream = await startMastodonServer({ flavour: 'mastodon' });
    try {
      const app = upstream.registerApp({ redirectUris: ['http://127.0.0.1/callback', OOB] });
      const cli = startCli(['login', upstream.url, '--client-id', app.clientId], {
        env: { FEDI_TOKEN_CLIENT_SECRET: app.clientSecret },
      });
      const url = new URL(await cli.waitForUrl());
      expect(cli.stderr).toContain('Mastodon accepts a loopback redirect on any port');
      expect(url.searchParams.get('redirect_uri')).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/callback$/);
      expect((await answerAuthorize(url.href)).text).toMatch(/close this tab/);
      const exit = await cli.exited;
      expect(exit.code).toBe(0);
      expect(exit.stderr).not.toMatch(/copy-paste/);
      expect(Object.keys(printed(exit.stdout))).toEqual(['FEDI_TOKEN']);
      expect(upstream.requests.filter((r) => r.path === '/api/v1/apps')).toEqual([]);
      expect(exit.stdout + exit.stderr).not.toContain(app.clientSecret);
    } finally {
      await upstream.close();
    }
  });

  it('on Akkoma, which matches redirect URIs exactly: copy-paste', async () => {
    const upstream = await startMastodonServer({ flavour: 'pleroma', software: 'akkoma' });
    try {
      const app = upstream.registerApp({ redirectUris: [OOB] });
      const cli = startCli(['login', upstream.url, '--client-id', app.clientId], {
        env: { FEDI_TOKEN_CLIENT_SECRET: app.clientSecret },
      });
      const url = new URL(await cli.waitForUrl());
      expect(cli.stderr).toMatch(/Detected akkoma \(mastodon\)/);
      expect(cli.stderr).toContain('this login uses copy-paste');
      expect(url.searchParams.get('redirect_uri')).toBe(OOB);
      await cli.waitForStderr(/Paste the code/);
      const code = upstream.issueCode({ clientId: app.clientId, redirectUri: OOB });
      cli.child.stdin.end(`${code}\n`);
      const exit = await cli.exited;
      expect(exit.code).toBe(0);
      expect(Object.keys(printed(exit.stdout))).toEqual(['FEDI_TOKEN', 'FEDI_REFRESH_TOKEN']);
      expect(exit.stderr).not.toContain(code);
    } finally {
      await upstream.close();
    }
  });
});

describe('app registration throttled (Mastodon: 5 per 10 minutes per address)', () => {
  it('says when to try again, and registers once', async () => {
    const upstream = await startMastodonServer({
      flavour: 'mastodon',
      // A window whose end is days away: the HTTP layer does not wait for it.
      throttleAppRegistrations: { limit: 0, periodSeconds: 1_000_000 },
    });
    try {
      const exit = await startCli(['login', upstream.url, '--platform', 'mastodon']).exited;
      expect(exit.code).toBe(EXIT.failure);
      expect(exit.stderr).toMatch(/POST \/api\/v1\/apps answered HTTP 429: Too many requests/);
      const when = /Try again after (\S+) \(in (\d+) (s|min|h)\)/.exec(exit.stderr);
      expect(when).not.toBeNull();
      const reset = Date.parse(when?.[1] ?? '');
      expect(reset % 1_000_000_000).toBe(0);
      expect(reset).toBeGreaterThan(Date.now());
      expect(exit.stderr).toContain('--client-id and --client-secret');
      expect(upstream.requests.filter((r) => r.path === '/api/v1/apps')).toHaveLength(1);
    } finally {
      await upstream.close();
    }
  });
});
