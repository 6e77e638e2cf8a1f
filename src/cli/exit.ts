/**
 * Exit codes of `fedi-token`, documented in the README (Exit codes). Scripts branch on them, so each failure
 * the user can act on differently has its own code.
 */
export const EXIT = {
  ok: 0,
  /** The server or the network failed, or something unexpected happened. */
  failure: 1,
  /** The command line is wrong, or --gh cannot work (gh missing, logged out, no access to the
   * repository); nothing was sent anywhere. */
  usage: 2,
  /** The authorization did not complete: denied in the browser, or the answer was not ours. */
  notAuthorized: 3,
  /** Nobody approved within --timeout. */
  timeout: 4,
  /** A token was obtained but `gh secret set` failed for at least one secret. */
  storeFailed: 5,
  /** Ctrl-C (128 + SIGINT), as shells report it. */
  interrupted: 130,
} as const;

export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

/**
 * A failure whose message is complete for the user and whose exit code says what kind it is.
 * `details` are non-secret facts a script may need (--json prints them next to the message).
 */
export class CliError extends Error {
  readonly exitCode: ExitCode;
  readonly details: Readonly<Record<string, unknown>> | undefined;
  constructor(exitCode: ExitCode, message: string, details?: Record<string, unknown>) {
    super(message);
    this.name = 'CliError';
    this.exitCode = exitCode;
    this.details = details;
  }
}

export const usageError = (message: string): CliError => new CliError(EXIT.usage, message);
