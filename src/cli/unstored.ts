/**
 * Values that `gh secret set` did not store, kept in a new private file instead of being lost
 * (the token cannot be fetched again without another login) or printed (--gh promised not to).
 * The file is dotenv-formatted, so `gh secret set -f FILE` stores them all at once.
 */
import { randomBytes } from 'node:crypto';
import { open, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { NamedSecret } from './result.ts';

export async function saveUnstored(
  secrets: readonly NamedSecret[],
  dir: string,
): Promise<{ path: string } | { error: string }> {
  const path = join(dir, `fedi-token-unstored-${randomBytes(4).toString('hex')}.env`);
  try {
    // 'wx': a new file or nothing, never an existing one (or a symlink planted in its place);
    // 0600 from the moment it exists, not chmod-ed after the values are in.
    const file = await open(path, 'wx', 0o600);
    try {
      await file.writeFile(secrets.map((s) => `${s.name}=${s.value}\n`).join(''));
    } catch (error) {
      // A half-written file would look like a complete one.
      await file.close();
      await rm(path, { force: true });
      throw error;
    }
    await file.close();
    return { path };
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    return { error: code ?? (error instanceof Error ? error.message : String(error)) };
  }
}
