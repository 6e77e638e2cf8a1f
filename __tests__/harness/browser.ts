/**
 * A real headless Chromium driven with playwright-core, for the pages a user clicks through during
 * `fedi-token login` and for the example gallery. The browser comes from the `@sparticuz/chromium`
 * dev dependency, which ships the binary inside the npm package, so `npm ci` on a bare machine
 * (Node and npm only) has everything the tests need. `FEDI_TOKEN_CHROMIUM=/usr/bin/chromium` opts
 * in to another build, Debian's say. One browser per test file; each test gets its own context
 * (no shared cookies), closed even when the test fails.
 */
import { chromium, type Browser, type BrowserContext } from 'playwright-core';

export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  // Without these, Chromium calls Google's hosts at start; a closed network refuses them.
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/**
 * The browser binary. The packaged one is unpacked to the temp folder on first use (about 3 s);
 * jest's global setup does that once, before the workers start, so two workers never race on a
 * half-written file.
 */
export async function chromiumPath(): Promise<string> {
  const chosen = process.env.FEDI_TOKEN_CHROMIUM;
  if (chosen) return chosen;
  const packaged = await import('@sparticuz/chromium');
  return packaged.default.executablePath();
}

export async function launchBrowser(): Promise<Browser> {
  return chromium.launch({
    executablePath: await chromiumPath(),
    headless: true,
    args: CHROMIUM_ARGS,
    timeout: 30_000,
  });
}

/** Close the browser without letting a stuck close hang the test run. */
export async function closeBrowser(browser: Browser | undefined): Promise<void> {
  if (!browser) return;
  let timer: NodeJS.Timeout | undefined;
  const gaveUp = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, 10_000);
  });
  await Promise.race([browser.close(), gaveUp]);
  clearTimeout(timer);
  // A close that never answers is left to playwright-core, which kills the browsers it launched
  // when this process exits: no Chromium outlives the test run either way.
}

/** A fresh context for one test, closed afterwards whatever happens. */
export async function withContext<T>(
  browser: Browser,
  use: (context: BrowserContext) => Promise<T>,
): Promise<T> {
  const context = await browser.newContext();
  try {
    return await use(context);
  } finally {
    await context.close().catch(() => undefined);
  }
}
