/**
 * `fedi-token login` end to end, as a user runs it: the bundled CLI waits on its loopback listener
 * while a real headless Chromium opens the URL the CLI printed and clicks through the server's own
 * pages. The CLI's own browser opening is off (FEDI_TOKEN_BROWSER=none); the test is the user.
 * (The browser command itself is run, with a stub, in cli.test.ts, and so is the check that the
 * listener is closed: that needs the login's process still running, so it is done in process.)
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { Browser } from 'playwright-core';
import { closeBrowser, launchBrowser, withContext } from './harness/browser.ts';
import { ghStub, startCli, type CliExit } from './harness/cli.ts';
import { startMastodonServer, type MastodonServer } from './servers/mastodon.ts';
import { startMisskey, type MisskeyServer } from './servers/misskey.ts';
import { startOidc, type OidcServer } from './servers/oidc.ts';

let browser: Browser | undefined;

beforeAll(async () => {
  browser = await launchBrowser();
});

afterAll(async () => {
  await closeBrowser(browser);
});

/** Each secret printed once on stdout, and never on stderr. */
function expectPrintedOnce(exit: CliExit, secrets: string[]): void {
  for (const secret of secrets) {
    expect(secret.length).toBeGreaterThan(0);
    expect(exit.stderr).not.toContain(secret);
    expect(exit.stdout.split(secret).length - 1).toBe(1);
  }
}

function secretLines(stdout: string): Record<string, string> {
  const found: Record<string, string> = {};
  for (const match of stdout.matchAll(/^([A-Z_]+)=(.+)$/gm)) found[match[1] ?? ''] = match[2] ?? '';
  return found;
}

async function approveIn(url: string, button: '#approve' | '#deny'): Promise<string> {
  return withContext(requireBrowser(), async (context) => {
    const page = await context.newPage();
    await page.goto(url);
    await Promise.all([page.waitForURL(/127\.0\.0\.1:\d+\/callback/), page.click(button)]);
    return (await page.textContent('#message')) ?? '';
  });
}

describe.each(['mastodon', 'gotosocial'] as const)('login on %s with a real browser', (flavour) => {
  let server: MastodonServer;
  beforeAll(async () => {
    server = await startMastodonServer({ flavour });
  });
  afterAll(async () => {
    await server.close();
  });

  it('registers an app, receives the code on the loopback listener, exchanges and verifies', async () => {
    const cli = startCli(['login', server.url, '--platform', 'mastodon', '--scope', 'read write']);
    const url = new URL(await cli.waitForUrl());
    expect(url.pathname).toBe('/oauth/authorize');
    const redirectUri = url.searchParams.get('redirect_uri') ?? '';
    expect(redirectUri).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/callback$/);
    expect(url.searchParams.get('code_challenge_method')).toBe('S256');
    expect(url.searchParams.get('code_challenge')).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(url.searchParams.get('state')?.length).toBeGreaterThanOrEqual(32);

    const page = await approveIn(url.href, '#approve');
    expect(page).toMatch(/close this tab/);
    const exit = await cli.exited;
    expect(exit.stderr).toMatch(/Logged in as @alice/);
    expect(exit.code).toBe(0);

    const printed = secretLines(exit.stdout);
    expect(Object.keys(printed).sort()).toEqual([
      'FEDI_CLIENT_ID',
      'FEDI_CLIENT_SECRET',
      'FEDI_TOKEN',
    ]);
    // The client id is public (it is in the authorize URL); the token and app secret are not.
    expectPrintedOnce(exit, [printed.FEDI_TOKEN ?? '', printed.FEDI_CLIENT_SECRET ?? '']);
    expect(exit.stdout).toContain(`FEDI_CLIENT_ID=${url.searchParams.get('client_id')}\n`);
    // One registration, holding the loopback URI and the OOB fallback (the wire format, one
    // newline-separated string, is checked in cli.test.ts: this server keeps no bodies).
    const registration = server.requests.filter((r) => r.path === '/api/v1/apps');
    expect(registration).toHaveLength(1);
    // The loopback URI was just used; the server's own authorize page takes the OOB one too.
    const oob = new URL(url);
    oob.searchParams.set('redirect_uri', 'urn:ietf:wg:oauth:2.0:oob');
    expect((await fetch(oob)).status).toBe(200);
    oob.searchParams.set('redirect_uri', 'http://127.0.0.1:1/unregistered');
    expect((await fetch(oob)).status).toBe(400);
    // The token works.
    const check = await fetch(`${server.url}/api/v1/accounts/verify_credentials`, {
      headers: { authorization: `Bearer ${printed.FEDI_TOKEN}` },
    });
    expect(check.status).toBe(200);
    expect(exit.stdout + exit.stderr).not.toContain('\u001b[');
  });

  it('reports a denied authorization clearly, with exit code 3', async () => {
    const cli = startCli(['login', server.url, '--platform', 'mastodon']);
    const url = await cli.waitForUrl();
    const page = await approveIn(url, '#deny');
    expect(page).toMatch(/denied/);
    const exit = await cli.exited;
    expect(exit.code).toBe(3);
    expect(exit.stderr).toMatch(
      /Error: The authorization was denied in the browser \(access_denied\)/,
    );
    expect(exit.stdout).toBe('');
  });
});

describe('login safety with a real browser', () => {
  let server: MastodonServer;
  beforeAll(async () => {
    server = await startMastodonServer({ flavour: 'mastodon' });
  });
  afterAll(async () => {
    await server.close();
  });

  it('refuses an answer whose state is not its own, and exchanges nothing', async () => {
    const cli = startCli(['login', server.url, '--platform', 'mastodon', '--json']);
    const url = new URL(await cli.waitForUrl());
    url.searchParams.set('state', 'forged-by-another-site');
    const page = await approveIn(url.href, '#approve');
    expect(page).toMatch(/does not match this login/);
    const exit = await cli.exited;
    expect(exit.code).toBe(3);
    expect(exit.stderr).toMatch(/state does not match this login/);
    expect(JSON.parse(exit.stdout)).toEqual({ error: expect.stringMatching(/state/), exitCode: 3 });
    expect(server.requests.filter((r) => r.path === '/oauth/token')).toHaveLength(0);
  });
});

describe('copy-paste (OOB) with a real browser', () => {
  it.each(['mastodon', 'gotosocial'] as const)(
    'on %s: the user pastes what the server shows, and the login completes',
    async (flavour) => {
      const server = await startMastodonServer({ flavour });
      try {
        const cli = startCli(['login', server.url, '--platform', 'mastodon', '--oob', '--json']);
        const url = new URL(await cli.waitForUrl());
        expect(url.searchParams.get('redirect_uri')).toBe('urn:ietf:wg:oauth:2.0:oob');
        await cli.waitForStderr(/Paste the code/);
        const pasted = await withContext(requireBrowser(), async (context) => {
          const page = await context.newPage();
          await page.goto(url.href);
          await Promise.all([page.waitForLoadState(), page.click('#approve')]);
          // Mastodon shows the code in a field; GoToSocial redirects to /oauth/oob?code=…, and
          // users paste that address whole.
          return flavour === 'mastodon' ? page.inputValue('#code') : page.url();
        });
        cli.child.stdin.end(`${pasted}\n`);
        const exit = await cli.exited;
        expect(exit.code).toBe(0);
        const result = JSON.parse(exit.stdout) as {
          platform: string;
          account: { id: string; username: string };
          expiresAt: string | null;
          secrets: Record<string, string>;
        };
        expect(result.platform).toBe('mastodon');
        expect(result.account.username).toBe('alice');
        expect(typeof result.account.id).toBe('string');
        expect(result.expiresAt).toBeNull();
        expect(Object.keys(result.secrets).sort()).toEqual([
          'FEDI_CLIENT_ID',
          'FEDI_CLIENT_SECRET',
          'FEDI_TOKEN',
        ]);
        for (const name of ['FEDI_TOKEN', 'FEDI_CLIENT_SECRET']) {
          expect(exit.stderr).not.toContain(result.secrets[name]);
        }
      } finally {
        await server.close();
      }
    },
  );

  it('falls back to copy-paste when the server refuses the loopback redirect URI', async () => {
    // Doorkeeper forcing https redirect URIs, as some Mastodon-API servers are configured.
    const server = await startMastodonServer({ flavour: 'mastodon', httpsRedirectsOnly: true });
    try {
      const cli = startCli(['login', server.url, '--platform', 'mastodon']);
      const url = new URL(await cli.waitForUrl());
      expect(cli.stderr).toMatch(
        /refused the loopback redirect .*HTTP 422: Validation failed: Redirect URI must be an HTTPS\/SSL URI\..*using copy-paste/,
      );
      expect(url.searchParams.get('redirect_uri')).toBe('urn:ietf:wg:oauth:2.0:oob');
      const code = await withContext(requireBrowser(), async (context) => {
        const page = await context.newPage();
        await page.goto(url.href);
        await page.click('#approve');
        return page.inputValue('#code');
      });
      cli.child.stdin.end(`${code}\n`);
      const exit = await cli.exited;
      expect(exit.code).toBe(0);
      expect(exit.stderr).not.toContain(code);
      expect(server.requests.filter((r) => r.path === '/api/v1/apps')).toHaveLength(2);
    } finally {
      await server.close();
    }
  });
});

describe('Misskey MiAuth with a real browser', () => {
  let server: MisskeyServer;
  beforeAll(async () => {
    server = await startMisskey();
  });
  afterAll(async () => {
    await server.close();
  });

  it('detects Misskey, sends the user to /miauth/{uuid} with the loopback callback, then checks', async () => {
    const cli = startCli(['login', server.url, '--scope', 'read:account,write:notes']);
    const url = new URL(await cli.waitForUrl());
    expect(cli.stderr).toMatch(/Detected misskey \(misskey\)/);
    const session = /^\/miauth\/([0-9a-f-]{36})$/.exec(url.pathname)?.[1] ?? '';
    expect(session).not.toBe('');
    expect(url.searchParams.get('permission')).toBe('read:account,write:notes');
    expect(url.searchParams.get('callback')).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/callback$/);
    const page = await approveIn(url.href, '#approve');
    expect(page).toMatch(/close this tab/);
    const exit = await cli.exited;
    expect(exit.code).toBe(0);
    const printed = secretLines(exit.stdout);
    // MiAuth needs no app: the token is the only secret.
    expect(Object.keys(printed)).toEqual(['FEDI_TOKEN']);
    expectPrintedOnce(exit, [printed.FEDI_TOKEN ?? '']);
    expect(exit.stderr).toMatch(/Logged in as @\S+ on .*\(misskey\)/);
    // The check hands a token out once: a second check of the same session gets {ok:false}.
    const again = await fetch(`${server.url}/api/miauth/${session}/check`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{}',
    });
    expect(await again.json()).toEqual({ ok: false });
  });
});

describe('--gh stores the secrets with the GitHub CLI', () => {
  let server: MastodonServer;
  const gh = ghStub();
  beforeAll(async () => {
    server = await startMastodonServer({ flavour: 'mastodon' });
  });
  afterAll(async () => {
    await server.close();
    gh.remove();
  });

  // gh's failures (before the login and part way) are in cli.test.ts, without a browser.
  it('checks gh first, then passes each value on stdin, never in argv or in the output', async () => {
    const env = gh.env();
    const cli = startCli(
      [
        'login',
        server.url,
        '--platform',
        'mastodon',
        '--gh',
        '--repo',
        'octo/site',
        '--prefix',
        'social',
      ],
      { env },
    );
    await approveIn(await cli.waitForUrl(), '#approve');
    const exit = await cli.exited;
    expect(exit.code).toBe(0);
    const made = gh.calls(env);
    expect(made.map((call) => call.argv)).toEqual([
      ['auth', 'status'],
      ['secret', 'list', '--repo', 'octo/site'],
      ['secret', 'set', 'SOCIAL_TOKEN', '--repo', 'octo/site'],
      ['secret', 'set', 'SOCIAL_CLIENT_ID', '--repo', 'octo/site'],
      ['secret', 'set', 'SOCIAL_CLIENT_SECRET', '--repo', 'octo/site'],
    ]);
    const [token, , clientSecret] = made.slice(2).map((call) => call.stdin);
    for (const secret of [token ?? '', clientSecret ?? '']) {
      expect(secret.length).toBeGreaterThan(10);
      expect(exit.stdout).not.toContain(secret);
      expect(exit.stderr).not.toContain(secret);
      for (const call of made) expect(call.argv.join(' ')).not.toContain(secret);
    }
    expect(exit.stdout).toBe(
      'Stored SOCIAL_TOKEN, SOCIAL_CLIENT_ID, SOCIAL_CLIENT_SECRET with gh in octo/site\n',
    );
    const check = await fetch(`${server.url}/api/v1/accounts/verify_credentials`, {
      headers: { authorization: `Bearer ${token}` },
    });
    expect(check.status).toBe(200);
  });
});

function requireBrowser(): Browser {
  if (!browser) throw new Error('no browser');
  return browser;
}

describe('generic OAuth 2.0 (oidc-provider) with a real browser', () => {
  let oidc: OidcServer;
  beforeAll(async () => {
    oidc = await startOidc();
  });
  afterAll(async () => {
    await oidc.close();
  });

  it('logs in through the login and consent pages with an existing client, loopback on any port', async () => {
    const cli = startCli(
      [
        'login',
        oidc.issuer,
        '--platform',
        'oauth2',
        '--client-id',
        oidc.basic.id,
        '--scope',
        'openid profile api:read',
        '--json',
      ],
      // From the environment, so no process listing shows it.
      { env: { FEDI_TOKEN_CLIENT_SECRET: oidc.basic.secret } },
    );
    const url = new URL(await cli.waitForUrl());
    expect(url.pathname).toBe('/auth');
    expect(url.searchParams.get('redirect_uri')).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/callback$/);
    const message = await withContext(requireBrowser(), async (context) => {
      const page = await context.newPage();
      await page.goto(url.href);
      await page.fill('input[name="login"]', 'carol');
      await page.fill('input[name="password"]', 'any');
      await page.click('button[type="submit"]');
      // The consent page: oidc-provider's own interaction, one submit button.
      await page.waitForURL(/\/interaction\//);
      await Promise.all([
        page.waitForURL(/127\.0\.0\.1:\d+\/callback/),
        page.click('button[type="submit"]'),
      ]);
      return page.textContent('#message');
    });
    expect(message).toMatch(/close this tab/);
    const exit = await cli.exited;
    expect(exit.stderr).toMatch(/Logged in as/);
    expect(exit.code).toBe(0);
    const result = JSON.parse(exit.stdout) as {
      platform: string;
      expiresAt: string | null;
      secrets: Record<string, string>;
    };
    expect(result.platform).toBe('oauth2');
    expect(Date.parse(result.expiresAt ?? '')).toBeGreaterThan(Date.now());
    // The client is the user's own: only the token is new.
    expect(Object.keys(result.secrets)).toEqual(['FEDI_TOKEN']);
    expect(exit.stderr).not.toContain(result.secrets.FEDI_TOKEN);
    expect(exit.stderr).not.toContain(oidc.basic.secret);
    expect(oidc.requests).toContain('POST /token');
  });
});
