/**
 * The three kinds of failure the action reports. Their messages are written for the workflow log:
 * they name what went wrong and where, and never carry request bodies, tokens or raw responses.
 */
import { withoutSecrets } from './known-secrets.ts';

/** An input is missing, malformed or not allowed with the others; raised before any request. */
export class InputError extends Error {
  readonly input: string;
  constructor(input: string, message: string) {
    super(`Input '${input}': ${message}`);
    this.name = 'InputError';
    this.input = input;
  }
}

export interface ServerErrorDetails {
  /** Origin of the server, e.g. `https://social.example`. */
  server: string;
  /** Method and path of the endpoint, e.g. `POST /oauth/token`; never a query string. */
  endpoint: string;
  status: number;
  /** The server's own error code (`invalid_grant`, `AUTHENTICATION_FAILED`, `A107P007`, …). */
  code?: string;
  /** The server's short description, already trimmed to a safe length. */
  description?: string;
  /** What the user can do about it. */
  hint?: string;
  /** When the server said it would take the request again (a 429's or 503's wait). */
  retryAt?: Date;
}

/** The server answered, but not with what the operation needs. */
export class ServerError extends Error {
  readonly server: string;
  readonly endpoint: string;
  readonly status: number;
  readonly code: string | undefined;
  readonly description: string | undefined;
  readonly retryAt: Date | undefined;
  constructor(details: ServerErrorDetails) {
    const code = details.code ? ` (${details.code})` : '';
    const description = details.description ? `: ${details.description}` : '';
    const hint = details.hint ? `. ${details.hint}` : '';
    super(
      `${details.server} ${details.endpoint} answered HTTP ${details.status}${code}${description}${hint}`,
    );
    this.name = 'ServerError';
    this.server = details.server;
    this.endpoint = details.endpoint;
    this.status = details.status;
    this.code = details.code;
    this.description = details.description;
    this.retryAt = details.retryAt;
  }
}

export type NetworkFailure =
  'refused' | 'timeout' | 'reset' | 'dns' | 'tls' | 'too-large' | 'other';

/** No usable answer: the connection failed, timed out, or the body broke a limit. */
export class NetworkError extends Error {
  readonly server: string;
  readonly endpoint: string;
  readonly failure: NetworkFailure;
  constructor(server: string, endpoint: string, failure: NetworkFailure, detail: string) {
    super(`${server} ${endpoint}: ${detail}`);
    this.name = 'NetworkError';
    this.server = server;
    this.endpoint = endpoint;
    this.failure = failure;
  }
}

/** The chosen platform has no such operation; the message names the alternative. */
export class UnsupportedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UnsupportedError';
  }
}

/** Errors whose message is complete for a user; anything else is a bug and is reported as one. */
export function isExpectedError(error: unknown): error is Error {
  return (
    error instanceof InputError ||
    error instanceof ServerError ||
    error instanceof NetworkError ||
    error instanceof UnsupportedError
  );
}

/** The one-line message for the log: never a stack trace, never an object dump. */
export function describeError(error: unknown): string {
  if (isExpectedError(error)) return error.message;
  const message = error instanceof Error ? error.message : String(error);
  return `Unexpected error: ${oneLine(message, 300)}`;
}

// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]+/g;

/**
 * Collapse to one line of at most `max` characters; server text is shown, never trusted. Known
 * secrets go first: a cut through one would leave its start unmasked.
 */
export function oneLine(text: string, max = 200): string {
  const flat = withoutSecrets(text).replace(CONTROL, ' ').trim();
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
}
