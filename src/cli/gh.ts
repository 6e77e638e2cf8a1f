/**
 * Storing the secrets with the GitHub CLI. The value goes to `gh secret set` on standard input,
 * never as an argument: arguments are visible to every user of the machine (ps, /proc).
 */
import { spawn } from 'node:child_process';
import { oneLine } from '../errors.ts';
import { CliError, EXIT } from './exit.ts';

export interface GhResult {
  code: number | null;
  stderr: string;
}

function runGh(
  args: string[],
  input: string | undefined,
  env: NodeJS.ProcessEnv,
): Promise<GhResult> {
  return new Promise((resolve, reject) => {
    const child = spawn('gh', args, { env, stdio: ['pipe', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stderr }));
    child.stdin.on('error', () => undefined);
    child.stdin.end(input ?? '');
  });
}

/** Checked before any authorization, so a missing `gh` never strands a fresh token. */
export async function checkGh(env: NodeJS.ProcessEnv): Promise<void> {
  try {
    const { code } = await runGh(['--version'], undefined, env);
    if (code === 0) return;
  } catch {
    // Not on PATH: reported below.
  }
  throw new CliError(
    EXIT.usage,
    '--gh needs the GitHub CLI (gh) on PATH: install it from https://cli.github.com, run `gh auth login`, or leave out --gh to print the values',
  );
}

export async function setSecret(
  name: string,
  value: string,
  repo: string | undefined,
  env: NodeJS.ProcessEnv,
  redact: (text: string) => string,
): Promise<void> {
  const args = ['secret', 'set', name, ...(repo ? ['--repo', repo] : [])];
  const { code, stderr } = await runGh(args, value, env);
  if (code !== 0) {
    const why = oneLine(redact(stderr), 200) || `exit code ${code}`;
    throw new CliError(EXIT.storeFailed, `gh secret set ${name} failed: ${why}`);
  }
}
