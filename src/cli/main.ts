/** Process wiring for the CLI: real streams, Ctrl-C, the exit code. */
import { CliError, EXIT } from './exit.ts';
import { runCli } from './run.ts';

export async function main(): Promise<void> {
  const interrupt = new AbortController();
  const onSigint = (): void =>
    interrupt.abort(new CliError(EXIT.interrupted, 'Interrupted (Ctrl-C); nothing was stored'));
  process.once('SIGINT', onSigint);
  const code = await runCli(
    {
      argv: process.argv.slice(2),
      env: process.env,
      cwd: process.cwd(),
      stdin: process.stdin,
      stdout: process.stdout,
      stderr: process.stderr,
    },
    interrupt.signal,
  );
  process.off('SIGINT', onSigint);
  // The caller ends the process (src/end-process.ts): stdin once read from (the pasted code,
  // Misskey's Enter) and a request cut short by Ctrl-C would otherwise keep it alive.
  process.exitCode = code;
}
