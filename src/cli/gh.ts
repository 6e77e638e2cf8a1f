/**
 * Storing the secrets with the GitHub CLI. The value goes to `gh secret set` on standard input,
 * never as an argument: arguments are visible to every user of the machine (ps, /proc).
 */
import { spawn } from 'node:child_process';
import { oneLine } from '../errors.ts';
import { CliError, EXIT } from './exit.ts';
import { saveUnstored } from './unstored.ts';
import type { NamedSecret } from './result.ts';

export interface GhResult {
  code: number | null;
  stderr: string;
}

export interface GhContext {
  repo: string | undefined;
  env: NodeJS.ProcessEnv;
  /** Ctrl-C: kills a running `gh` and ends the wait for it. */
  signal: AbortSignal;
}

function runGh(args: string[], input: string | undefined, gh: GhContext): Promise<GhResult> {
  return new Promise((resolve, reject) => {
    const child = spawn('gh', args, {
      env: gh.env,
      stdio: ['pipe', 'ignore', 'pipe'],
      signal: gh.signal,
    });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stderr }));
    child.stdin.on('error', () => undefined);
    child.stdin.end(input ?? '');
  });
}

const repoFlag = (repo: string | undefined): string[] => (repo ? ['--repo', repo] : []);
const where = (repo: string | undefined): string => repo ?? 'the current repository';

/**
 * Checked before any authorization, so that gh failing afterwards is rare: a token obtained and
 * then not stored costs another app registration (Mastodon allows 5 per 10 minutes per address).
 * `gh secret list` proves gh is logged in, finds the repository and may read its secrets.
 */
export async function checkGh(gh: GhContext): Promise<void> {
  const installed = await runGh(['--version'], undefined, gh).catch((error: unknown) => {
    if (gh.signal.aborted) throw error;
    return undefined;
  });
  if (installed?.code !== 0) {
    throw new CliError(
      EXIT.usage,
      '--gh needs the GitHub CLI (gh) on PATH: install it from https://cli.github.com, run `gh auth login`, or leave out --gh to print the values',
    );
  }
  const auth = await runGh(['auth', 'status'], undefined, gh);
  if (auth.code !== 0) {
    throw new CliError(
      EXIT.usage,
      `--gh: gh is not logged in (gh auth status: ${reason(auth)}); run \`gh auth login\`, or leave out --gh to print the values. Nothing was sent to the server`,
    );
  }
  const list = await runGh(['secret', 'list', ...repoFlag(gh.repo)], undefined, gh);
  if (list.code !== 0) {
    throw new CliError(
      EXIT.usage,
      `--gh: gh cannot reach the secrets of ${where(gh.repo)} (gh secret list: ${reason(list)}); check --repo and that your gh login may manage the repository's secrets. Nothing was sent to the server`,
    );
  }
}

function reason(result: GhResult, redact: (text: string) => string = (t) => t): string {
  return oneLine(redact(result.stderr), 200) || `exit code ${result.code}`;
}

/**
 * Stores each secret in turn; returns the names stored. When gh fails or Ctrl-C comes part way,
 * the values not (surely) stored are saved to a private file rather than lost, and the error
 * names what was stored, what was not, and the file.
 */
export async function storeSecrets(
  secrets: readonly NamedSecret[],
  gh: GhContext & {
    dir: string;
    redact: (text: string) => string;
    progress: (message: string) => void;
  },
): Promise<string[]> {
  const stored: string[] = [];
  const notStored = (): NamedSecret[] => secrets.filter((s) => !stored.includes(s.name));
  for (const secret of secrets) {
    if (gh.signal.aborted) throw await interrupted(stored, undefined, notStored(), gh);
    let result: GhResult;
    try {
      result = await runGh(['secret', 'set', secret.name, ...repoFlag(gh.repo)], secret.value, gh);
    } catch (error) {
      if (!gh.signal.aborted) throw error;
      throw await interrupted(stored, secret.name, notStored(), gh);
    }
    if (result.code !== 0) {
      const left = notStored();
      throw await leftOver(
        EXIT.storeFailed,
        `gh secret set ${secret.name} failed: ${reason(result, gh.redact)}. Stored: ${list(stored)}; not stored: ${list(names(left))}`,
        stored,
        left,
        gh,
      );
    }
    stored.push(secret.name);
    gh.progress(`Stored ${secret.name}${gh.repo ? ` in ${gh.repo}` : ''}`);
  }
  return stored;
}

/** `running`: the secret gh was setting when stopped; it may be stored, so its value is kept. */
function interrupted(
  stored: string[],
  running: string | undefined,
  left: NamedSecret[],
  gh: { repo: string | undefined; dir: string },
): Promise<CliError> {
  const perhaps = running ? `; perhaps stored: ${running} (gh was setting it)` : '';
  const surelyNot = names(left).filter((name) => name !== running);
  return leftOver(
    EXIT.interrupted,
    `Interrupted (Ctrl-C) while storing the secrets with gh. Stored: ${list(stored)}${perhaps}; not stored: ${list(surelyNot)}`,
    stored,
    left,
    gh,
  );
}

async function leftOver(
  exitCode: typeof EXIT.storeFailed | typeof EXIT.interrupted,
  message: string,
  stored: string[],
  left: NamedSecret[],
  gh: { repo: string | undefined; dir: string },
): Promise<CliError> {
  const saved = await saveUnstored(left, gh.dir);
  if ('path' in saved) {
    const setAll = `gh secret set -f ${shellQuote(saved.path)}${gh.repo ? ` --repo ${gh.repo}` : ''}`;
    return new CliError(
      exitCode,
      `${message}. Their values are in ${saved.path} (readable only by you): store them with \`${setAll}\` (or by hand in the repository settings), then delete the file`,
      { stored, notStored: names(left), unstoredFile: saved.path },
    );
  }
  return new CliError(
    exitCode,
    `${message}. Their values could not be saved to ${gh.dir} (${saved.error}) and are not shown; run the login again (without --gh to see the values)`,
    { stored, notStored: names(left) },
  );
}

const names = (secrets: readonly NamedSecret[]): string[] => secrets.map((s) => s.name);
const list = (items: readonly string[]): string => items.join(', ') || 'none';

/**
 * The path as one shell word, for a command the user copies. On Windows, double quotes: both
 * PowerShell and cmd read them, and a Windows path cannot hold one.
 */
export function shellQuote(path: string, platform: NodeJS.Platform = process.platform): string {
  if (platform === 'win32') return /^[\w:.\\/-]+$/.test(path) ? path : `"${path}"`;
  return /^[\w@%+=:,./-]+$/.test(path) ? path : `'${path.replaceAll("'", "'\\''")}'`;
}
