/**
 * The RFC 8252 loopback redirect: a one-shot HTTP listener on 127.0.0.1 that receives the
 * browser's redirect, answers with a small page, and closes. It binds the IPv4 literal rather than
 * `localhost` (RFC 8252 §8.3: a name can resolve elsewhere or to the other address family).
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

export const CALLBACK_PATH = '/callback';

/** What the caller decides about a callback: accepted, or the error to fail with. */
export type Verdict = { ok: true } | { ok: false; error: Error };

export interface WaitOptions {
  signal: AbortSignal;
  judge(params: URLSearchParams): Verdict;
}

export interface LoopbackListener {
  port: number;
  redirectUri: string;
  /** Resolves with the first callback's query when `judge` accepts it, rejects otherwise. */
  wait(options: WaitOptions): Promise<URLSearchParams>;
  close(): Promise<void>;
}

export async function startLoopback(port = 0): Promise<LoopbackListener> {
  const sockets = new Set<Socket>();
  let onRequest: (req: IncomingMessage, res: ServerResponse) => void = (_req, res) =>
    sendPage(res, 503, 'fedi-token is not waiting for an authorization right now.');
  const server = createServer((req, res) => onRequest(req, res));
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const bound = (server.address() as AddressInfo).port;
  const host = `127.0.0.1:${bound}`;
  let closed: Promise<void> | undefined;

  const close = (): Promise<void> => {
    closed ??= new Promise<void>((resolve) => {
      server.close(() => resolve());
      // A browser keeps its connection open; without this the port stays bound until it gives up.
      for (const socket of sockets) socket.destroy();
    });
    return closed;
  };

  const wait = ({ signal, judge }: WaitOptions): Promise<URLSearchParams> =>
    new Promise<URLSearchParams>((resolve, reject) => {
      const stop = (): void => reject(signal.reason);
      if (signal.aborted) return stop();
      signal.addEventListener('abort', stop, { once: true });
      onRequest = (req, res) => {
        // A page on another origin cannot reach us under our own Host name (DNS rebinding).
        if (req.headers.host !== host) return sendPage(res, 421, 'Wrong host.');
        const url = new URL(req.url ?? '/', `http://${host}`);
        if (req.method !== 'GET' || url.pathname !== CALLBACK_PATH) {
          return sendPage(res, 404, 'Not found.');
        }
        const verdict = judge(url.searchParams);
        onRequest = (_req, late) => sendPage(late, 410, 'This authorization was already handled.');
        signal.removeEventListener('abort', stop);
        if (verdict.ok) {
          sendPage(
            res,
            200,
            'fedi-token received the authorization. You can close this tab and return to the terminal.',
            () => resolve(url.searchParams),
          );
        } else {
          sendPage(res, 400, `fedi-token: ${verdict.error.message}`, () => reject(verdict.error));
        }
      };
    });

  return { port: bound, redirectUri: `http://${host}${CALLBACK_PATH}`, wait, close };
}

function sendPage(res: ServerResponse, status: number, message: string, done?: () => void): void {
  const body = `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>fedi-token</title></head><body><p id="message">${escapeHtml(message)}</p></body></html>`;
  res.writeHead(status, {
    'content-type': 'text/html; charset=utf-8',
    'content-length': Buffer.byteLength(body),
    // The URL holds the code: no caching, no Referer to anything, nothing active on the page.
    'cache-control': 'no-store',
    'referrer-policy': 'no-referrer',
    'content-security-policy': "default-src 'none'",
    connection: 'close',
  });
  res.end(body, done);
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
