/**
 * What the CLI prints and where: progress and errors on stderr, results on stdout (JSON with
 * --json). Every secret the login meets is recorded, and every progress or error line passes
 * through `redact`, so a server message or a stack of causes cannot echo one back.
 */
import type { Writable } from 'node:stream';

export interface OutStream extends Pick<Writable, 'write'> {
  isTTY?: boolean;
}

/** https://no-color.org: any non-empty NO_COLOR turns colour off; so does a non-terminal. */
export function colourEnabled(stream: OutStream, env: NodeJS.ProcessEnv): boolean {
  if (env.NO_COLOR !== undefined && env.NO_COLOR !== '') return false;
  return stream.isTTY === true && env.TERM !== 'dumb';
}

export class Terminal {
  private readonly secrets = new Set<string>();
  private readonly colour: boolean;
  readonly stdout: OutStream;
  readonly stderr: OutStream;

  constructor(stdout: OutStream, stderr: OutStream, env: NodeJS.ProcessEnv) {
    this.stdout = stdout;
    this.stderr = stderr;
    this.colour = colourEnabled(stderr, env);
  }

  /** Record a secret; multi-line values are recorded line by line too. */
  readonly mask = (secret: string): void => {
    if (!secret) return;
    this.secrets.add(secret);
    for (const line of secret.split(/\r?\n/)) if (line.trim()) this.secrets.add(line.trim());
  };

  redact(text: string): string {
    let out = text;
    // Longest first, so a secret that contains another is replaced whole.
    for (const secret of [...this.secrets].sort((a, b) => b.length - a.length)) {
      out = out.split(secret).join('***');
    }
    return out;
  }

  readonly progress = (message: string): void => {
    this.stderr.write(`${this.redact(message)}\n`);
  };

  /** A URL the user must open: printed as is, on its own line, so it can be copied whole. */
  link(url: string): void {
    this.stderr.write(`\n  ${this.style(url, '4')}\n\n`);
  }

  error(message: string): void {
    this.stderr.write(`${this.style('Error:', '1;31')} ${this.redact(message)}\n`);
  }

  heading(text: string): string {
    return this.style(text, '1');
  }

  private style(text: string, sgr: string): string {
    return this.colour ? `\u001b[${sgr}m${text}\u001b[0m` : text;
  }
}
