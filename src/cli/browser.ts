/**
 * Opening the authorize page: best effort, never fatal, because the URL is always printed too.
 * FEDI_TOKEN_BROWSER=none only prints (tests and headless machines); FEDI_TOKEN_BROWSER or
 * BROWSER may name a command to run with the URL.
 */
import { spawn } from 'node:child_process';

export type Opener = (url: string) => void;

export function browserOpener(
  env: NodeJS.ProcessEnv,
  platform: NodeJS.Platform = process.platform,
): Opener | undefined {
  const chosen = env.FEDI_TOKEN_BROWSER ?? env.BROWSER;
  if (chosen !== undefined) {
    if (chosen === '' || chosen === 'none') return undefined;
    return (url) => launch(chosen, [url]);
  }
  if (platform === 'darwin') return (url) => launch('open', [url]);
  // rundll32 hands the URL to the default handler without cmd.exe, which would split it at `&`.
  if (platform === 'win32') {
    return (url) => launch('rundll32', ['url.dll,FileProtocolHandler', url]);
  }
  return (url) => launch('xdg-open', [url]);
}

function launch(command: string, args: string[]): void {
  try {
    const child = spawn(command, args, { stdio: 'ignore', detached: true });
    child.on('error', () => undefined);
    child.unref();
  } catch {
    // The URL is on the screen; a missing opener is not worth failing for.
  }
}
