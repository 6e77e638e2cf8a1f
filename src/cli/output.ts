/**
 * What the CLI prints and where: progress and errors on stderr, results on stdout (JSON with
 * --json). Every secret the login meets is recorded, and every progress or error line passes
 * through `redact`, so a server message or a stack of causes cannot echo one back.
 */
import type { Writable } from 'node:stream';
import { rememberSecret, withoutSecrets } from '../known-secrets.ts';

export interface OutStream extends Pick<Writable, 'write'> {
  isTTY?: boolean;
}

/** https://no-color.org: any non-empty NO_COLOR turns colour off; so does a non-terminal. */
export function colourEnabled(stream: OutStream, env: NodeJS.ProcessEnv): boolean {
  if (env.NO_COLOR !== undefined && env.NO_COLOR !== '') return false;
  return stream.isTTY === true && env.TERM !== 'dumb';
}

export class Terminal {
  // Per stream: `fedi-token login … > secrets.txt` must not write escapes into the file just
  // because stderr is still a terminal, and `2> log` must not lose colour on the screen.
  private readonly colourOut: boolean;
  private readonly colourErr: boolean;
  readonly stdout: OutStream;
  readonly stderr: OutStream;

  constructor(stdout: OutStream, stderr: OutStream, env: NodeJS.ProcessEnv) {
    this.stdout = stdout;
    this.stderr = stderr;
    this.colourOut = colourEnabled(stdout, env);
    this.colourErr = colourEnabled(stderr, env);
  }

  /** Record a secret; multi-line values are recorded line by line too. */
  readonly mask = (secret: string): void => {
    rememberSecret(secret);
  };

  redact(text: string): string {
    return withoutSecrets(text);
  }

  readonly progress = (message: string): void => {
    this.stderr.write(`${this.redact(message)}\n`);
  };

  /** A URL the user must open: printed as is, on its own line, so it can be copied whole. */
  link(url: string): void {
    this.stderr.write(`\n  ${style(this.colourErr, url, '4')}\n\n`);
  }

  error(message: string): void {
    this.stderr.write(`${style(this.colourErr, 'Error:', '1;31')} ${this.redact(message)}\n`);
  }

  /** A heading for text that goes to stdout (the results). */
  heading(text: string): string {
    return style(this.colourOut, text, '1');
  }
}

function style(colour: boolean, text: string, sgr: string): string {
  return colour ? `\u001b[${sgr}m${text}\u001b[0m` : text;
}
