/**
 * `fedi-token login` end to end, as a user runs it: the bundled CLI waits on its loopback listener
 * while a real headless Chromium opens the URL the CLI printed and clicks through the server's own
 * pages. The CLI's own browser opening is off (FEDI_TOKEN_BROWSER=none); the test is the user.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { Browser } from 'playwright-core';
import { closeBrowser, launchBrowser, withContext } from './harness/browser.ts';
import { startCli, type CliExit } from './harness/cli.ts';
import { startMastodonServer, type MastodonServer } from './servers/mastodon.ts';

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
  if (!browser) throw new Error('no browser');
  return withContext(browser, async (context) => {
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
    // The app was registered with the loopback URI and the OOB fallback, as one string.
    const registration = server.requests.filter((r) => r.path === '/api/v1/apps');
    expect(registration).toHaveLength(1);
    // The listener is gone once the CLI is done.
    await expect(fetch(redirectUri)).rejects.toThrow();
    // The token works.
    const check = await fetch(`${server.url}/api/v1/accounts/verify_credentials`, {
      headers: { authorization: `Bearer ${printed.FEDI_TOKEN}` },
    });
    expect(check.status).toBe(200);
    expect(exit.stdout + exit.stderr).not.toMatch(/\u001b\[/);
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
