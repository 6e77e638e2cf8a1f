/**
 * Moves the finished temporary file over the snapshot. On POSIX, rename replaces the target
 * atomically. On Windows, fs.rename (MoveFileEx with MOVEFILE_REPLACE_EXISTING) replaces too, but
 * fails with EPERM, EACCES or EBUSY while another process holds either file open without sharing
 * delete access: an antivirus or the search indexer looking at the file just written, an editor.
 * Such holds last milliseconds to seconds, so there the rename is tried again after growing
 * pauses (about 6 s in all) before the error is reported. Elsewhere those codes are permanent
 * (a sticky folder, a mount point) and are reported at once.
 */
import { rename as renameFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';

const TRANSIENT_ON_WINDOWS = new Set(['EPERM', 'EACCES', 'EBUSY']);

/** Pauses before each further attempt on Windows. */
export const WINDOWS_RETRY_DELAYS_MS: readonly number[] = [50, 100, 200, 400, 800, 1600, 3200];

export interface ReplaceFileOptions {
  rename?: (from: string, to: string) => Promise<void>;
  platform?: NodeJS.Platform;
  delaysMs?: readonly number[];
}

export async function replaceFile(
  from: string,
  to: string,
  options: ReplaceFileOptions = {},
): Promise<void> {
  const rename = options.rename ?? renameFile;
  const windows = (options.platform ?? process.platform) === 'win32';
  const delays = windows ? (options.delaysMs ?? WINDOWS_RETRY_DELAYS_MS) : [];
  for (let attempt = 0; ; attempt++) {
    try {
      await rename(from, to);
      return;
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code ?? '';
      const delay = delays[attempt];
      if (delay === undefined || !TRANSIENT_ON_WINDOWS.has(code)) throw error;
      await sleep(delay);
    }
  }
}
