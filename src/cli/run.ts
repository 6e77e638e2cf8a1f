/** One CLI invocation: arguments → login → secrets printed or stored; returns the exit code. */
import type { Readable } from 'node:stream';
import { describeError, InputError, isExpectedError } from '../errors.ts';
import { Http } from '../http.ts';
import { VERSION } from '../version.ts';
import { parseCommand, USAGE, type LoginOptions } from './args.ts';
import { browserOpener } from './browser.ts';
import { CliError, EXIT, type ExitCode } from './exit.ts';
import { checkGh, storeSecrets } from './gh.ts';
import { login } from './login.ts';
import { Terminal, type OutStream } from './output.ts';
import { describeLogin, printJson, printSecrets, secretsOf } from './result.ts';

export interface Io {
  argv: readonly string[];
  env: NodeJS.ProcessEnv;
  stdin: Readable;
  /** Where values gh could not store are saved (the directory the user ran the command in). */
  cwd: string;
  stdout: OutStream;
  stderr: OutStream;
}

export async function runCli(io: Io, signal: AbortSignal): Promise<ExitCode> {
  const terminal = new Terminal(io.stdout, io.stderr, io.env);
  let json = io.argv.includes('--json');
  try {
    const command = parseCommand(io.argv, io.env);
    if (command.kind === 'version') {
      io.stdout.write(`${VERSION}\n`);
      return EXIT.ok;
    }
    if (command.kind === 'help') {
      io.stdout.write(USAGE);
      return EXIT.ok;
    }
    json = command.options.json;
    await loginAndStore(command.options, io, terminal, signal);
    return EXIT.ok;
  } catch (error) {
    const { code, message, details } = classify(error);
    terminal.error(message);
    if (json) {
      io.stdout.write(
        `${JSON.stringify({ error: terminal.redact(message), exitCode: code, ...details })}\n`,
      );
    }
    return code;
  }
}

async function loginAndStore(
  options: LoginOptions,
  io: Io,
  terminal: Terminal,
  signal: AbortSignal,
): Promise<void> {
  if (options.clientSecret) terminal.mask(options.clientSecret);
  const gh = { repo: options.repo, env: io.env, signal };
  if (options.gh) await untilAborted(signal, checkGh(gh));
  const http = new Http({ timeoutMs: options.requestTimeoutMs, maxAttempts: 3 });
  const outcome = await untilAborted(
    signal,
    login(options, { http, terminal, stdin: io.stdin, open: browserOpener(io.env), signal }),
  );
  terminal.progress(describeLogin(outcome));
  const secrets = secretsOf(outcome, options.prefix);
  if (!options.gh) {
    if (options.json) printJson(terminal, outcome, secrets, false);
    else printSecrets(terminal, secrets);
    return;
  }
  // Not cut short by Ctrl-C from outside: only the loop knows what is stored by then.
  const stored = await storeSecrets(secrets, {
    ...gh,
    dir: io.cwd,
    redact: (text) => terminal.redact(text),
    progress: terminal.progress,
  });
  if (options.json) printJson(terminal, outcome, secrets, true);
  else
    io.stdout.write(
      `Stored ${stored.join(', ')} with gh${options.repo ? ` in ${options.repo}` : ''}\n`,
    );
}

/** Ctrl-C ends the command at once, even in the middle of a request. */
function untilAborted<T>(signal: AbortSignal, work: Promise<T>): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason);
    if (signal.aborted) return onAbort();
    signal.addEventListener('abort', onAbort, { once: true });
    work.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

function classify(error: unknown): {
  code: ExitCode;
  message: string;
  details?: Readonly<Record<string, unknown>>;
} {
  if (error instanceof CliError) {
    return { code: error.exitCode, message: error.message, details: error.details };
  }
  if (error instanceof InputError) return { code: EXIT.usage, message: error.message };
  if (isExpectedError(error)) return { code: EXIT.failure, message: error.message };
  return { code: EXIT.failure, message: describeError(error) };
}
