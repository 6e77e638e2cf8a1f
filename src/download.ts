/**
 * Downloads from hosts the action does not trust: an instance's media CDN, S3, a remote server.
 * The policy of http.ts (idle timeout, attempts, backoff, Retry-After, proxies from
 * @actions/http-client) with the stricter rules such hosts need:
 * - no credential of any kind is sent, on the first request or any redirect: not even the
 *   instance's own token goes to its CDN;
 * - only https, on every hop (plain http only to loopback hosts, and only when the instance
 *   itself is loopback); a redirect from https to http is refused;
 * - the content type is checked before a byte is kept, and the size cap while the body streams,
 *   so an oversized answer is cut off at the cap rather than read and then refused;
 * - the body streams to a file, so memory does not grow with the bytes fetched;
 * - every failure destroys the request and its socket, and each attempt has a total deadline on
 *   top of the idle timeout, so a host that trickles bytes cannot hold a run forever.
 */
import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { unlink } from 'node:fs/promises';
import * as http from 'node:http';
import * as https from 'node:https';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { getProxyUrl, HttpClient } from '@actions/http-client';
import { NetworkError, oneLine, ServerError } from './errors.ts';
import {
  backoffDelay,
  Deadline,
  networkError,
  requestedWaitMs,
  RETRYABLE_STATUSES,
  USER_AGENT,
  type Http,
} from './http.ts';
import { LOOPBACK_HOSTS } from './loopback-host.ts';

export interface DownloadRequest {
  url: URL;
  /** Where the body is written: created new (never over an existing file), removed on failure. */
  file: string;
  maxBytes: number;
  /** Plain http to loopback hosts: only for an instance that is itself on loopback. */
  allowHttp: boolean;
  /** Whether a content type (lower case, without parameters) may be kept. */
  accept(contentType: string): boolean;
  /** Also compute the MD5 of the body (Misskey drive files state theirs). */
  md5?: boolean;
}

export interface Downloaded {
  bytes: number;
  contentType: string;
  md5?: string;
  /** Where the body came from, after redirects. */
  url: URL;
}

/**
 * The slowest transfer accepted: each attempt must end within the idle timeout plus the time the
 * size cap takes at this rate (30 s + 200 s for the default 50 MiB cap).
 */
export const MIN_BYTES_PER_SECOND = 256 * 1024;
const MAX_REDIRECTS = 5;
const ACCEPT = 'image/*, video/*, audio/*';

/** What one attempt ended with: the file, or an error and whether (and when) to try again. */
type Attempt = { ok: Downloaded } | Failed;
type Failed = { error: Error; retry: false | 'backoff' | number };

export class Downloader {
  private readonly http: Http;
  // Connections to a media host stay open between downloads (200 pictures from one CDN need not
  // cost 200 TLS handshakes). A socket that saw any failure is destroyed, never reused.
  private readonly agents = {
    http: new http.Agent({ keepAlive: true }),
    https: new https.Agent({ keepAlive: true }),
  };
  // Hosts behind https_proxy go through @actions/http-client's tunnelling agents.
  private readonly proxies = new HttpClient(USER_AGENT, [], { keepAlive: false });

  constructor(client: Http) {
    this.http = client;
  }

  /** Download with the retry policy; throws the last attempt's error when it gives up. */
  async download(request: DownloadRequest): Promise<Downloaded> {
    const { maxAttempts, maxRetryWaitMs, sleep } = this.http.options;
    for (let attempt = 1; ; attempt++) {
      const outcome = await this.attempt(request);
      if ('ok' in outcome) return outcome.ok;
      const { error, retry } = outcome;
      if (retry === false || attempt >= maxAttempts) throw error;
      const wait = retry === 'backoff' ? backoffDelay(this.http.options, attempt) : retry;
      if (wait > maxRetryWaitMs) throw error;
      await sleep(wait);
    }
  }

  /** Close the kept-open connections. */
  close(): void {
    this.agents.http.destroy();
    this.agents.https.destroy();
  }

  private async attempt(request: DownloadRequest): Promise<Attempt> {
    const { timeoutMs } = this.http.options;
    const deadlineMs = timeoutMs + Math.ceil((request.maxBytes / MIN_BYTES_PER_SECOND) * 1000);
    const controller = new AbortController();
    let url = request.url;
    const label = () => `GET ${url.pathname}`;
    // The first reason to stop is the true one: aborting makes everything after it fail too.
    let stopped: Failed | undefined;
    const stop = (error: Error, retry: Failed['retry']): void => {
      if (stopped) return;
      stopped = { error, retry };
      controller.abort(error);
    };
    const timeout = (detail: string) =>
      stop(new NetworkError(url.origin, label(), 'timeout', detail), 'backoff');
    const deadline = new Deadline(deadlineMs);
    const disarm = deadline.arm(() =>
      timeout(`the download did not finish within ${Math.round(deadline.seconds)} s`),
    );
    let idle: NodeJS.Timeout | undefined;
    const touch = (): void => {
      clearTimeout(idle);
      idle = setTimeout(() => timeout(`no data for ${timeoutMs / 1000} s`), timeoutMs);
    };
    const tooLarge = () =>
      new NetworkError(
        url.origin,
        label(),
        'too-large',
        `the file is larger than the ${formatBytes(request.maxBytes)} cap (media-max-bytes)`,
      );
    let writing = false;
    try {
      let response: http.IncomingMessage;
      for (let hop = 0; ; hop++) {
        const refusal = refuse(url, request.allowHttp);
        if (refusal)
          return { error: new NetworkError(url.origin, label(), 'other', refusal), retry: false };
        touch();
        response = await this.get(url, controller.signal);
        const status = response.statusCode ?? 0;
        const location = response.headers.location;
        if (status >= 300 && status < 400 && location) {
          response.destroy();
          const next = URL.canParse(location, url.href) ? new URL(location, url) : undefined;
          let problem: string | undefined;
          if (!next) problem = 'redirected to an address that is not a URL';
          else if (hop >= MAX_REDIRECTS) problem = `more than ${MAX_REDIRECTS} redirects`;
          else if (url.protocol === 'https:' && next.protocol !== 'https:') {
            problem = 'refused a redirect from https to http';
          }
          if (problem || !next) {
            return {
              error: new NetworkError(url.origin, label(), 'other', problem ?? ''),
              retry: false,
            };
          }
          url = next;
          continue;
        }
        if (status < 200 || status >= 300) {
          response.destroy();
          const error = new ServerError({ server: url.origin, endpoint: label(), status });
          if (!RETRYABLE_STATUSES.has(status)) return { error, retry: false };
          return { error, retry: requestedWaitMs(response.headers, status) ?? 'backoff' };
        }
        break;
      }
      const contentType = mediaType(response.headers['content-type']);
      if (!request.accept(contentType)) {
        response.destroy();
        const shown = contentType ? JSON.stringify(oneLine(contentType, 60)) : 'missing';
        const error = new ServerError({
          server: url.origin,
          endpoint: label(),
          status: response.statusCode ?? 0,
          description: `the content type is ${shown}, not one kept for this attachment`,
        });
        return { error, retry: false };
      }
      const declared = Number(response.headers['content-length']);
      if (Number.isFinite(declared) && declared > request.maxBytes) {
        response.destroy();
        return { error: tooLarge(), retry: false };
      }
      const hash = request.md5 ? createHash('md5') : undefined;
      let bytes = 0;
      const meter = new Transform({
        transform(chunk: Buffer, _encoding, done) {
          bytes += chunk.length;
          if (bytes > request.maxBytes) {
            const error = tooLarge();
            stop(error, false);
            return done(error);
          }
          hash?.update(chunk);
          touch();
          done(null, chunk);
        },
      });
      writing = true;
      await pipeline(response, meter, createWriteStream(request.file, { flags: 'wx' }), {
        signal: controller.signal,
      });
      return { ok: { bytes, contentType, md5: hash?.digest('hex'), url } };
    } catch (error) {
      if (writing) await unlink(request.file).catch(() => undefined);
      if (stopped) return stopped;
      // The disk, not the host, failed (no space, no permission): that ends the run.
      if (typeof (error as { path?: unknown }).path === 'string') throw error;
      return classify(error, url.origin, label());
    } finally {
      disarm();
      clearTimeout(idle);
    }
  }

  /** One GET, resolved when the headers arrive. Never a credential: only these two headers. */
  private get(url: URL, signal: AbortSignal): Promise<http.IncomingMessage> {
    const secure = url.protocol === 'https:';
    const agent = getProxyUrl(url.href)
      ? this.proxies.getAgent(url.href)
      : secure
        ? this.agents.https
        : this.agents.http;
    this.http.requestCount++;
    return new Promise((resolve, reject) => {
      const options = {
        method: 'GET',
        agent,
        signal,
        headers: { 'user-agent': USER_AGENT, accept: ACCEPT },
      };
      const request = secure
        ? https.request(url, options, resolve)
        : http.request(url, options, resolve);
      request.on('error', reject);
      request.end();
    });
  }
}

/** Why a URL may not be fetched, or undefined when it may. */
function refuse(url: URL, allowHttp: boolean): string | undefined {
  // Node would send them as Basic credentials.
  if (url.username || url.password) return 'refused a URL with a user name or password in it';
  if (url.protocol === 'https:') return undefined;
  if (url.protocol === 'http:') {
    if (allowHttp && LOOPBACK_HOSTS.test(url.hostname)) return undefined;
    return 'refused plain http: media is fetched over https only';
  }
  return `refused a ${JSON.stringify(oneLine(url.protocol, 20))} URL: media is fetched over https only`;
}

/** The media type of a Content-Type header: lower case, without parameters; '' when missing. */
export function mediaType(header: string | string[] | undefined): string {
  const value = Array.isArray(header) ? header[0] : header;
  return (value ?? '').split(';')[0]?.trim().toLowerCase() ?? '';
}

function classify(error: unknown, server: string, label: string): Failed {
  const code = (error as { code?: string } | undefined)?.code;
  const mapped =
    code === 'ERR_STREAM_PREMATURE_CLOSE'
      ? new NetworkError(server, label, 'reset', 'the connection closed before the file ended')
      : error instanceof NetworkError
        ? error
        : networkError(server, label, error);
  // A GET is safe to repeat whatever happened to the last one; a bad name or certificate is not
  // going to change within a run.
  const transient = ['refused', 'timeout', 'reset', 'other'].includes(mapped.failure);
  return { error: mapped, retry: transient ? 'backoff' : false };
}

export function formatBytes(bytes: number): string {
  if (bytes >= 1024 * 1024 && bytes % (1024 * 1024) === 0) return `${bytes / 1024 / 1024} MiB`;
  if (bytes >= 1024 && bytes % 1024 === 0) return `${bytes / 1024} KiB`;
  return `${bytes} bytes`;
}
