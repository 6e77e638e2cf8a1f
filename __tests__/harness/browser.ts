/**
 * A real headless Chromium (Debian's `chromium` package) driven with playwright-core, for the
 * pages a user clicks through during `fedi-token login`. One browser per test file; each test gets
 * its own context (no shared cookies), closed even when the test fails.
 */
import { chromium, type Browser, type BrowserContext } from 'playwright-core';

export const CHROMIUM_PATH = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

export function launchBrowser(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM_PATH,
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
