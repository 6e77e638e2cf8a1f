/** The out-of-band path: the user copies the code from the server's page and pastes it here. */
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import { CliError, EXIT } from './exit.ts';

/**
 * The first non-empty line from `input`. A pasted URL is accepted and its `code` taken, for
 * GoToSocial, whose OOB page is /oauth/oob?code=…. Only the OOB path reads a paste: a code from
 * a loopback callback's address bar was issued for that redirect URI, so its exchange would fail.
 */
export function readPastedCode(input: Readable, signal: AbortSignal): Promise<string> {
  return new Promise((resolve, reject) => {
    const lines = createInterface({ input, terminal: false });
    const finish = (action: () => void): void => {
      signal.removeEventListener('abort', onAbort);
      lines.close();
      action();
    };
    const onAbort = (): void => finish(() => reject(signal.reason));
    if (signal.aborted) return onAbort();
    signal.addEventListener('abort', onAbort, { once: true });
    let done = false;
    lines.on('line', (line) => {
      const code = codeFrom(line);
      if (code && !done) {
        done = true;
        finish(() => resolve(code));
      }
    });
    lines.on('close', () => {
      if (done || signal.aborted) return;
      done = true;
      finish(() =>
        reject(new CliError(EXIT.notAuthorized, 'No code was entered (standard input ended)')),
      );
    });
  });
}

export function codeFrom(line: string): string | undefined {
  const text = line.trim();
  if (!text) return undefined;
  if (/^https?:\/\//i.test(text) && URL.canParse(text)) {
    return new URL(text).searchParams.get('code') ?? undefined;
  }
  return text;
}

/** Any line, even an empty one: the user pressing Enter. */
export function readLine(input: Readable, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const lines = createInterface({ input, terminal: false });
    const onAbort = (): void => {
      lines.close();
      reject(signal.reason);
    };
    if (signal.aborted) return onAbort();
    signal.addEventListener('abort', onAbort, { once: true });
    lines.once('line', () => {
      signal.removeEventListener('abort', onAbort);
      lines.close();
      resolve();
    });
    lines.once('close', () => {
      signal.removeEventListener('abort', onAbort);
      if (!signal.aborted) resolve();
    });
  });
}
