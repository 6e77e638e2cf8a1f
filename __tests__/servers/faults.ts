/**
 * Fault injection for the loopback servers: a test queues a fault for a method and path, and the
 * server answers the next matching request(s) with it instead of the real thing. Also a second
 * loopback server that records what a cross-origin redirect delivered to it.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { listen, readText, sendJson } from './util.ts';

export type FaultKind =
  /** An error status; Retry-After in seconds and X-RateLimit-Reset as the server would send them. */
  | {
      kind: 'status';
      status: number;
      retryAfter?: number | string;
      rateLimitReset?: string;
      body?: unknown;
    }
  /** The socket is destroyed before any answer. */
  | { kind: 'reset' }
  /** No answer ever: only the client's timeout ends the request. */
  | { kind: 'hang' }
  /** Headers and the start of a JSON body, then silence: the body never ends. */
  | { kind: 'stall'; status?: number }
  /** A proxy's error page instead of JSON. */
  | { kind: 'html'; status?: number }
  /** More than 1 MiB, announced by Content-Length or streamed chunked without it. */
  | { kind: 'oversized'; contentLength: boolean; status?: number; bytes?: number }
  /** A redirect, typically to another origin. */
  | { kind: 'redirect'; location: string; status?: 301 | 302 | 303 | 307 | 308 };

export type Fault = FaultKind & {
  /** Matched against the request method; any method when left out. */
  method?: string;
  /** Matched against the request path, without the query. */
  path: string;
  /** How many matching requests get the fault (default 1). */
  times?: number;
};

export const HTML_ERROR_PAGE =
  '<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head>' +
  '<body><h1>502 Bad Gateway</h1><p>nginx</p></body></html>';

export class FaultQueue {
  private readonly faults: { fault: Fault; left: number }[] = [];

  inject(fault: Fault): void {
    this.faults.push({ fault, left: fault.times ?? 1 });
  }

  /** The fault for this request, if one is queued; each use counts down its `times`. */
  take(method: string, path: string): Fault | undefined {
    const index = this.faults.findIndex(
      ({ fault }) =>
        fault.path === path && (!fault.method || fault.method.toUpperCase() === method),
    );
    const entry = this.faults[index];
    if (!entry) return undefined;
    entry.left--;
    if (entry.left <= 0) this.faults.splice(index, 1);
    return entry.fault;
  }

  clear(): void {
    this.faults.length = 0;
  }
}

/** Answer `res` as the fault says. The request body is drained first, as a real proxy would. */
export async function serveFault(
  fault: Fault,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  await readText(req, 16 * 1024 * 1024).catch(() => '');
  switch (fault.kind) {
    case 'status': {
      const headers: Record<string, string> = {};
      if (fault.retryAfter !== undefined) headers['retry-after'] = String(fault.retryAfter);
      if (fault.rateLimitReset !== undefined) {
        headers['x-ratelimit-limit'] = '300';
        headers['x-ratelimit-remaining'] = '0';
        headers['x-ratelimit-reset'] = fault.rateLimitReset;
      }
      const body =
        fault.body ?? (fault.status === 429 ? { error: 'Too many requests' } : { error: 'Error' });
      sendJson(res, fault.status, body, headers);
      return;
    }
    case 'reset':
      req.socket.destroy();
      return;
    case 'hang':
      // Keep the socket open; the server's close() destroys it.
      return;
    case 'stall':
      res.writeHead(fault.status ?? 200, { 'content-type': 'application/json' });
      res.write('{"access_token":"');
      return;
    case 'html': {
      res.writeHead(fault.status ?? 502, { 'content-type': 'text/html' });
      res.end(HTML_ERROR_PAGE);
      return;
    }
    case 'oversized': {
      const bytes = fault.bytes ?? 1024 * 1024 + 4096;
      const chunk = Buffer.alloc(64 * 1024, 'a');
      const headers: Record<string, string> = { 'content-type': 'application/json' };
      if (fault.contentLength) headers['content-length'] = String(bytes);
      res.writeHead(fault.status ?? 200, headers);
      // A JSON string that never ends within the cap.
      res.write('{"access_token":"');
      let sent = 17;
      const pump = (): void => {
        while (sent < bytes) {
          const piece = chunk.subarray(0, Math.min(chunk.length, bytes - sent));
          sent += piece.length;
          if (!res.write(piece)) {
            res.once('drain', pump);
            return;
          }
        }
        res.end();
      };
      res.on('error', () => undefined);
      pump();
      return;
    }
    case 'redirect':
      res.writeHead(fault.status ?? 302, { location: fault.location, 'content-length': '0' });
      res.end();
      return;
  }
}

export interface RecordedHit {
  method: string;
  path: string;
  authorization: string | undefined;
  body: string;
}

/** A second origin for redirect tests: answers `{}` to everything and records what it got. */
export interface Recorder {
  url: string;
  hits: RecordedHit[];
  close(): Promise<void>;
}

export async function startRecorder(): Promise<Recorder> {
  const hits: RecordedHit[] = [];
  const listening = await listen(async (req, res) => {
    const body = await readText(req);
    hits.push({
      method: req.method ?? '',
      path: new URL(req.url ?? '/', 'http://x').pathname,
      authorization: req.headers.authorization,
      body,
    });
    sendJson(res, 200, {});
  });
  return { url: listening.url, hits, close: listening.close };
}
