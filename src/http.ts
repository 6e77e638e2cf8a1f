/**
 * The one HTTP layer. Every request the action makes goes through `Http.send`, which owns the
 * policy in DESIGN.md: timeouts, body caps, retries that never repeat a request the server may have
 * processed, redirects that never carry credentials to another origin, and error messages that
 * never contain a body. Proxies (`https_proxy`, `no_proxy`) come from @actions/http-client's agent.
 */
import {
  request as httpRequest,
  type Agent,
  type IncomingHttpHeaders,
  type IncomingMessage,
  type OutgoingHttpHeaders,
} from 'node:http';
import { request as httpsRequest } from 'node:https';
import { HttpClient } from '@actions/http-client';
import { safeParse, type ZodMiniType } from 'zod/mini';
import { NetworkError, ServerError, oneLine, type NetworkFailure } from './errors.ts';
import { VERSION } from './version.ts';

export type QueryValue = string | number | boolean | undefined | readonly string[];

export interface HttpRequest {
  method: 'GET' | 'POST' | 'PUT';
  url: URL | string;
  query?: Record<string, QueryValue>;
  /** Sent as application/x-www-form-urlencoded; undefined values are left out. */
  form?: Record<string, string | undefined>;
  json?: unknown;
  bearer?: string;
  basic?: { username: string; password: string };
  headers?: Record<string, string>;
  /**
   * Safe to send twice. Defaults to true for GET and false for POST: a code exchange or refresh
   * that reached the server must never be repeated (the code or refresh token is single-use).
   */
  idempotent?: boolean;
  /** Largest body accepted, in bytes. Default 1 MiB (token endpoints); listings raise it. */
  maxBytes?: number;
  /** Statuses that are answers rather than failures (e.g. 401 for `validate`). */
  accept?: readonly number[];
  /**
   * Statuses besides 429/502/503/504 after which this request, if idempotent, is sent again: an
   * API known to answer 500 transiently (GitHub's).
   */
  retryStatuses?: readonly number[];
  /** How the endpoint is named in errors when its path holds a secret (a MiAuth session). */
  endpointLabel?: string;
  /** Overrides the client's `maxAttempts` for this request (detection sends each one once). */
  maxAttempts?: number;
}

export interface HttpResponse {
  status: number;
  headers: IncomingHttpHeaders;
  text: string;
  url: URL;
}

export interface HttpOptions {
  /** The longest one attempt may take, redirects included, from its first byte to its last. */
  timeoutMs: number;
  maxAttempts: number;
  /** Longest wait accepted from Retry-After or X-RateLimit-Reset; a longer one fails at once. */
  maxRetryWaitMs?: number;
  /** First backoff step; each attempt doubles it, full jitter picks a delay below it. */
  baseDelayMs?: number;
  sleep?: (ms: number) => Promise<void>;
  random?: () => number;
  /** Told before a wait the server asked for that is long enough to show in a log (≥ 1 s). */
  notify?: (message: string) => void;
}

const DEFAULT_MAX_BYTES = 1024 * 1024;
const MAX_REDIRECTS = 5;
const BACKOFF_CAP_MS = 8000;
/** Statuses `send` retries (unless the request accepts them as answers). */
export const RETRYABLE_STATUSES: ReadonlySet<number> = new Set([429, 502, 503, 504]);
export const USER_AGENT = `fedi-token/${VERSION} (+https://github.com/fedi-token/fedi-token)`;

/**
 * The time one attempt may take, from the first byte sent to the last byte read, redirects
 * included. A total, not an idle limit: a server that dribbles its answer one byte at a time is cut
 * off like one that never answers, so every attempt ends on time.
 */
export class Deadline {
  readonly ms: number;
  private readonly at: number;

  constructor(ms: number) {
    this.ms = ms;
    this.at = Date.now() + ms;
  }

  get seconds(): number {
    return this.ms / 1000;
  }

  /** Calls `expire` once the deadline passes; the returned function disarms it. */
  arm(expire: () => void): () => void {
    const timer = setTimeout(expire, Math.max(0, this.at - Date.now()));
    return () => clearTimeout(timer);
  }
}

export class Http {
  readonly options: Required<HttpOptions>;
  /** Requests sent, retries and redirects included: the benchmark and job summary report it. */
  requestCount = 0;
  /**
   * One client per protocol: only their agents are used (proxy tunnels, no_proxy). An
   * HttpClient keeps the first agent it makes, for whichever protocol that was, and hands it
   * out for the other one too, so an https hop after an http one (a redirect) would fail.
   */
  private readonly clients = new Map<string, HttpClient>();

  constructor(options: HttpOptions) {
    this.options = {
      maxRetryWaitMs: 60_000,
      baseDelayMs: 500,
      sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
      random: Math.random,
      notify: () => {},
      ...options,
    };
  }

  /** The agent for a URL; requests are sent by `dispatch`, which owns the socket's end. */
  private agentFor(url: URL): Agent {
    let client = this.clients.get(url.protocol);
    if (!client) {
      client = new HttpClient(USER_AGENT, [], { keepAlive: false });
      this.clients.set(url.protocol, client);
    }
    return client.getAgent(url.href);
  }

  /** Send a request with the retry policy; a status outside 2xx and `accept` throws ServerError. */
  async send(request: HttpRequest): Promise<HttpResponse> {
    const idempotent = request.idempotent ?? request.method === 'GET';
    const maxAttempts = request.maxAttempts ?? this.options.maxAttempts;
    for (let attempt = 1; ; attempt++) {
      let response: HttpResponse;
      try {
        response = await this.followRedirects(request, new Deadline(this.options.timeoutMs));
      } catch (error) {
        const retryable =
          error instanceof NetworkError &&
          (error.failure === 'refused' ||
            (idempotent && ['timeout', 'reset', 'other'].includes(error.failure)));
        if (!retryable || attempt >= maxAttempts) throw error;
        await this.options.sleep(this.backoff(attempt));
        continue;
      }
      const { status } = response;
      const retryable = RETRYABLE_STATUSES.has(status) || request.retryStatuses?.includes(status);
      if (retryable && !request.accept?.includes(status)) {
        const asked = requestedWaitMs(response.headers, status);
        // A 429 was refused unprocessed; a 503 with Retry-After says the same. Anything else
        // (502/504, a bare 503) may have reached the application, so only idempotent calls repeat.
        const provablyUnprocessed = status === 429 || (status === 503 && asked !== undefined);
        if ((idempotent || provablyUnprocessed) && attempt < maxAttempts) {
          if (asked !== undefined && asked > this.options.maxRetryWaitMs) {
            throw toServerError(request, response, {
              hint: `The server asks to wait ${Math.ceil(asked / 1000)} s, longer than this step waits; run it again later`,
            });
          }
          if (asked !== undefined && asked >= 1000) {
            this.options.notify(
              `${response.url.origin} ${endpointOf(request, response.url)} answered HTTP ${status}; waiting ${Math.ceil(asked / 1000)} s, as it asks`,
            );
          }
          await this.options.sleep(asked ?? this.backoff(attempt));
          continue;
        }
      }
      if ((status >= 200 && status < 300) || request.accept?.includes(status)) return response;
      throw toServerError(request, response);
    }
  }

  /** Send, then parse the body as JSON and check it against `schema`. */
  async json<T>(
    request: HttpRequest,
    schema: ZodMiniType<T>,
  ): Promise<{ data: T; response: HttpResponse }> {
    const response = await this.send(request);
    return { data: parseJson(request, response, schema), response };
  }

  private backoff(attempt: number): number {
    return backoffDelay(this.options, attempt);
  }

  private async followRedirects(request: HttpRequest, deadline: Deadline): Promise<HttpResponse> {
    const start = buildUrl(request.url, request.query);
    let url = start;
    let bearer = request.bearer;
    let basic = request.basic;
    for (let hop = 0; ; hop++) {
      const response = await this.once(request, url, { bearer, basic }, deadline);
      const location = response.headers.location;
      if (response.status < 300 || response.status >= 400 || !location) return response;
      const next = new URL(location, url);
      const label = endpointOf(request, url);
      if (hop >= MAX_REDIRECTS) {
        throw new NetworkError(url.origin, label, 'other', `more than ${MAX_REDIRECTS} redirects`);
      }
      if (url.protocol === 'https:' && next.protocol !== 'https:') {
        throw new NetworkError(url.origin, label, 'other', 'refused a redirect from https to http');
      }
      if (next.origin !== url.origin) {
        // A body may hold a client secret or code: it never follows to another origin.
        if (request.method !== 'GET') {
          throw new NetworkError(
            url.origin,
            label,
            'other',
            `refused to resend the request to another origin (${next.origin}); set 'instance' to the server's own address`,
          );
        }
        bearer = undefined;
        basic = undefined;
      }
      // 307/308 keep the method; 301/302/303 after a POST are not followed (see above).
      if (request.method !== 'GET' && response.status !== 307 && response.status !== 308) {
        return response;
      }
      url = next;
    }
  }

  private async once(
    request: HttpRequest,
    url: URL,
    { bearer, basic }: Pick<HttpRequest, 'bearer' | 'basic'>,
    deadline: Deadline,
  ): Promise<HttpResponse> {
    const headers: Record<string, string> = { accept: 'application/json', ...request.headers };
    let body: string | null = null;
    if (request.form) {
      headers['content-type'] = 'application/x-www-form-urlencoded';
      body = encodeForm(request.form);
    } else if (request.json !== undefined) {
      headers['content-type'] = 'application/json';
      body = JSON.stringify(request.json);
    }
    if (bearer) headers.authorization = `Bearer ${bearer}`;
    if (basic) {
      // RFC 6749 §2.3.1: id and secret are form-urlencoded before the Basic encoding.
      const pair = `${formEncode(basic.username)}:${formEncode(basic.password)}`;
      headers.authorization = `Basic ${Buffer.from(pair).toString('base64')}`;
    }
    const where = { server: url.origin, label: endpointOf(request, url) };
    const message = await this.dispatch(request.method, url, headers, body, deadline, where);
    const text = await readBody(message, {
      maxBytes: request.maxBytes ?? DEFAULT_MAX_BYTES,
      deadline,
      ...where,
    });
    return { status: message.statusCode ?? 0, headers: message.headers, text, url };
  }

  /**
   * Sends one request and resolves with the answer's head, its body left to read. A failure, or
   * the deadline passing first, destroys the request together with its socket. Never only a
   * half-close: @actions/http-client's own timeout calls `socket.end()`, and a server that never
   * reads never sees that FIN, so the socket stayed open and kept the step alive after it had
   * failed (issue 12).
   */
  private dispatch(
    method: HttpRequest['method'],
    url: URL,
    headers: Record<string, string>,
    body: string | null,
    deadline: Deadline,
    { server, label }: { server: string; label: string },
  ): Promise<IncomingMessage> {
    const outgoing: OutgoingHttpHeaders = {
      ...headers,
      'user-agent': USER_AGENT,
    };
    if (body !== null) outgoing['content-length'] = Buffer.byteLength(body);
    const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
    this.requestCount++;
    return new Promise((resolve, reject) => {
      const req = send(url, { method, headers: outgoing, agent: this.agentFor(url) });
      const disarm = deadline.arm(() => {
        // Rejected first, so the 'error' that destroy() brings reads as what it is: a timeout.
        reject(
          new NetworkError(server, label, 'timeout', `no answer within ${deadline.seconds} s`),
        );
        req.destroy();
      });
      req.on('response', (message) => {
        disarm();
        resolve(message);
      });
      req.on('error', (error) => {
        disarm();
        reject(networkError(server, label, error));
        req.destroy();
      });
      req.end(body ?? undefined);
    });
  }
}

/** Full jitter: a random delay below a ceiling that doubles with each attempt, up to a cap. */
export function backoffDelay(
  options: Pick<Required<HttpOptions>, 'baseDelayMs' | 'random'>,
  attempt: number,
): number {
  const ceiling = Math.min(BACKOFF_CAP_MS, options.baseDelayMs * 2 ** (attempt - 1));
  return Math.floor(options.random() * ceiling);
}

export function buildUrl(base: URL | string, query?: Record<string, QueryValue>): URL {
  const url = new URL(base);
  for (const [key, value] of Object.entries(query ?? {})) {
    if (value === undefined) continue;
    if (Array.isArray(value)) for (const item of value) url.searchParams.append(key, item);
    else url.searchParams.set(key, String(value));
  }
  return url;
}

function formEncode(value: string): string {
  return new URLSearchParams({ v: value }).toString().slice(2);
}

function encodeForm(form: Record<string, string | undefined>): string {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(form)) if (value !== undefined) params.set(key, value);
  return params.toString();
}

function endpointOf(request: HttpRequest, url: URL): string {
  return request.endpointLabel ?? `${request.method} ${url.pathname}`;
}

/**
 * Reads the whole body within what is left of the deadline. Every failure destroys the message,
 * and with it the socket.
 */
function readBody(
  message: IncomingMessage,
  limits: { maxBytes: number; deadline: Deadline; server: string; label: string },
): Promise<string> {
  const { maxBytes, deadline, server, label } = limits;
  return new Promise((resolve, reject) => {
    let settled = false;
    let disarm = (): void => undefined;
    const fail = (failure: NetworkFailure, detail: string): void => {
      // destroy() below emits 'aborted' synchronously: the first reason is the true one.
      if (settled) return;
      settled = true;
      disarm();
      reject(new NetworkError(server, label, failure, detail));
      message.destroy();
    };
    const tooLarge = (): void =>
      fail('too-large', `the answer is larger than ${Math.round(maxBytes / 1024)} KiB`);
    const declared = Number(message.headers['content-length']);
    if (Number.isFinite(declared) && declared > maxBytes) return tooLarge();
    disarm = deadline.arm(() =>
      fail('timeout', `the answer stalled: not complete within ${deadline.seconds} s`),
    );
    const chunks: Buffer[] = [];
    let size = 0;
    message.on('data', (chunk: Buffer) => {
      if (settled) return;
      size += chunk.length;
      if (size > maxBytes) return tooLarge();
      chunks.push(chunk);
    });
    message.on('end', () => {
      if (settled) return;
      settled = true;
      disarm();
      resolve(Buffer.concat(chunks).toString('utf8'));
    });
    message.on('aborted', () => fail('reset', 'the connection closed before the answer ended'));
    message.on('error', () => fail('reset', 'the connection closed before the answer ended'));
  });
}

export function networkError(server: string, label: string, error: unknown) {
  const code = (error as { code?: string } | undefined)?.code ?? '';
  const message = error instanceof Error ? error.message : '';
  if (code === 'ECONNREFUSED')
    return new NetworkError(server, label, 'refused', 'connection refused');
  if (code === 'ETIMEDOUT') {
    return new NetworkError(server, label, 'timeout', 'the connection timed out');
  }
  if (code === 'ECONNRESET' || code === 'EPIPE' || message === 'socket hang up') {
    return new NetworkError(server, label, 'reset', 'the connection was closed without an answer');
  }
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') {
    return new NetworkError(server, label, 'dns', 'the host name could not be resolved');
  }
  if (code.startsWith('ERR_TLS') || code.includes('CERT') || code.startsWith('ERR_SSL')) {
    return new NetworkError(server, label, 'tls', `TLS failed (${code})`);
  }
  return new NetworkError(
    server,
    label,
    'other',
    oneLine(code || message || 'request failed', 120),
  );
}

/** Milliseconds the server asks us to wait, from Retry-After or (on 429) X-RateLimit-Reset. */
export function requestedWaitMs(
  headers: IncomingHttpHeaders,
  status: number,
  now = Date.now(),
): number | undefined {
  const retryAfter = firstHeader(headers['retry-after']);
  if (retryAfter !== undefined) {
    if (/^\d+$/.test(retryAfter.trim())) return Number(retryAfter) * 1000;
    const date = Date.parse(retryAfter);
    if (!Number.isNaN(date)) return Math.max(0, date - now);
  }
  const reset = firstHeader(headers['x-ratelimit-reset']);
  if (status === 429 && reset !== undefined) {
    const trimmed = reset.trim();
    if (/^\d+(\.\d+)?$/.test(trimmed)) {
      const value = Number(trimmed);
      // Epoch seconds on some servers, seconds-from-now on others.
      return value > 1e9 ? Math.max(0, value * 1000 - now) : value * 1000;
    }
    const date = Date.parse(trimmed);
    if (!Number.isNaN(date)) return Math.max(0, date - now);
  }
  return undefined;
}

function firstHeader(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

/** The server's error code and description, from the shapes the supported servers use. */
export function errorCodeOf(text: string): { code?: string; description?: string } {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    return {};
  }
  if (!body || typeof body !== 'object') return {};
  const record = body as Record<string, unknown>;
  const error = record.error;
  const str = (value: unknown): string | undefined =>
    typeof value === 'string' && value.length > 0 ? oneLine(value) : undefined;
  const num = (value: unknown): string | undefined =>
    typeof value === 'number' ? String(value) : str(value);
  if (typeof error === 'string') {
    // OAuth `{error, error_description}`; Mastodon API `{error: "sentence"}`.
    const isCode = /^[a-z0-9_.-]{1,64}$/i.test(error);
    return isCode
      ? { code: error, description: str(record.error_description) }
      : { description: str(error) };
  }
  if (error && typeof error === 'object') {
    // Misskey `{error: {code, message, id}}`.
    const nested = error as Record<string, unknown>;
    return { code: str(nested.code), description: str(nested.message) };
  }
  // AnyWeb wrapper `{code, message}`.
  return { code: num(record.code), description: str(record.message) };
}

function describeBody(response: HttpResponse): string | undefined {
  const type = String(response.headers['content-type'] ?? '');
  if (type.includes('html') || /^\s*</.test(response.text)) return 'an HTML page, not JSON';
  return undefined;
}

export function toServerError(
  request: HttpRequest,
  response: HttpResponse,
  extra: { hint?: string; description?: string } = {},
): ServerError {
  const { code, description } = errorCodeOf(response.text);
  const wait =
    response.status === 429 || response.status === 503
      ? requestedWaitMs(response.headers, response.status)
      : undefined;
  return new ServerError({
    server: response.url.origin,
    endpoint: endpointOf(request, response.url),
    status: response.status,
    code,
    description: extra.description ?? description ?? describeBody(response),
    hint: extra.hint,
    retryAt: wait === undefined ? undefined : new Date(Date.now() + wait),
  });
}

/** Parse a response body as JSON and check its shape; mismatches name fields, never values. */
export function parseJson<T>(
  request: HttpRequest,
  response: HttpResponse,
  schema: ZodMiniType<T>,
): T {
  let body: unknown;
  try {
    body = JSON.parse(response.text);
  } catch {
    throw toServerError(request, response, {
      description: describeBody(response) ?? 'the answer is not JSON',
    });
  }
  const result = safeParse(schema, body);
  if (result.success) return result.data;
  const fields = [
    ...new Set(result.error.issues.map((issue) => issue.path.join('.') || '(body)')),
  ].slice(0, 5);
  throw toServerError(request, response, {
    description: `unexpected answer: missing or malformed ${fields.join(', ')}`,
  });
}
