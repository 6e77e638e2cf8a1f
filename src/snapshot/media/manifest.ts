/**
 * The mirror's record of what it wrote: `.fedi-token-media.json` inside media-path, the only file
 * besides the media that the mirror keeps. It names the snapshot file the folder belongs to and
 * the file stems the mirror claimed. A stem is claimed (written to the record) before its download
 * starts, so a run killed at any point leaves nothing the next run cannot recognise as its own:
 * a file is the mirror's only when its stem is claimed here AND its name has the mirror's shape
 * (32 hex digits and an extension from the allowlist, or a temporary name built from the stem).
 * Names are never taken from the record itself, so an edited record cannot point the mirror at a
 * file it did not write.
 */
import { createHash } from 'node:crypto';
import { open, readFile, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { InputError } from '../../errors.ts';
import { replaceFile } from '../replace-file.ts';
import { track, untrack } from '../store.ts';
import { familyOfName } from './types.ts';

export const MANIFEST_NAME = '.fedi-token-media.json';
const VERSION = 1;

/** A claimed stem: the file's name and size once the mirror has it on disk. */
export interface FileRecord {
  name?: string;
  bytes?: number;
}

export type Claims = Map<string, FileRecord>;

/** The stem of the file for a URL: 128 bits of its SHA-256, so no two URLs share one. */
export function stemOf(url: string): string {
  return createHash('sha256').update(url).digest('hex').slice(0, 32);
}

const OWN_NAME = /^([0-9a-f]{32})(\.[a-z0-9]+)$/;
const OWN_TEMP = /^\.([0-9a-f]{32})\.\d+\.\d+\.tmp$/;
const MANIFEST_TEMP = /^\.fedi-token-media\.json\.\d+\.\d+\.tmp$/;

/** The stem of a name the mirror could have written (a media file), else undefined. */
export function stemOfName(name: string): string | undefined {
  const match = OWN_NAME.exec(name);
  if (!match?.[2]) return undefined;
  return familyOfName(match[2]) ? match[1] : undefined;
}

/** The stem of a temporary download left by a run that died, else undefined. */
export function stemOfTemp(name: string): string | undefined {
  return OWN_TEMP.exec(name)?.[1];
}

export function isManifestTemp(name: string): boolean {
  return MANIFEST_TEMP.test(name);
}

const REMEDY =
  "; delete the folder's files and the record to start over, or choose another 'media-path'";

/**
 * The claims recorded in `folder`, empty when there is no record yet. A record written for another
 * snapshot file is refused: the mirror would remove that snapshot's media as unreferenced.
 */
export async function readClaims(folder: string, snapshot: string): Promise<Claims> {
  const path = join(folder, MANIFEST_NAME);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    const code = (error as { code?: string }).code;
    if (code === 'ENOENT') return new Map();
    if (code === 'ENOTDIR') throw new InputError('media-path', `${folder} is a file, not a folder`);
    throw error;
  }
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch {
    throw new InputError('media-path', `${path} is not valid JSON${REMEDY}`);
  }
  const record = data as { version?: unknown; snapshot?: unknown; files?: unknown };
  const files = record?.files;
  if (
    typeof record !== 'object' ||
    record === null ||
    record.version !== VERSION ||
    typeof record.snapshot !== 'string' ||
    typeof files !== 'object' ||
    files === null ||
    Array.isArray(files)
  ) {
    throw new InputError('media-path', `${path} is not a media record this action wrote${REMEDY}`);
  }
  if (record.snapshot !== snapshot) {
    throw new InputError(
      'media-path',
      `${folder} holds the media of ${JSON.stringify(record.snapshot)}, not of this snapshot; give each snapshot its own 'media-path'`,
    );
  }
  const claims: Claims = new Map();
  for (const [stem, value] of Object.entries(files as Record<string, unknown>)) {
    if (!/^[0-9a-f]{32}$/.test(stem)) continue;
    const entry = (typeof value === 'object' && value !== null ? value : {}) as FileRecord;
    const name =
      typeof entry.name === 'string' && stemOfName(entry.name) === stem ? entry.name : undefined;
    const bytes =
      typeof entry.bytes === 'number' && Number.isSafeInteger(entry.bytes)
        ? entry.bytes
        : undefined;
    claims.set(stem, name === undefined ? {} : { name, bytes });
  }
  return claims;
}

/** The record's text: stems sorted, so a committed record changes only where the files do. */
export function claimsText(snapshot: string, claims: Claims): string {
  const files: Record<string, FileRecord> = {};
  for (const stem of [...claims.keys()].sort()) {
    const { name, bytes } = claims.get(stem) ?? {};
    files[stem] = name === undefined ? {} : { name, bytes };
  }
  const lines = Object.entries(files).map(
    ([stem, entry]) => `    ${JSON.stringify(stem)}: ${JSON.stringify(entry)}`,
  );
  return (
    `{\n  "version": ${VERSION},\n  "snapshot": ${JSON.stringify(snapshot)},\n  "files": {` +
    (lines.length ? `\n${lines.join(',\n')}\n  }\n}\n` : '}\n}\n')
  );
}

let sequence = 0;

/** Write the record through a temporary file and a rename, so it is always whole. */
export async function writeClaims(folder: string, text: string): Promise<void> {
  const temp = join(folder, `${MANIFEST_NAME}.${process.pid}.${++sequence}.tmp`);
  const handle = await open(temp, 'wx');
  track(temp);
  try {
    await handle.writeFile(text, 'utf8');
    await handle.sync();
    await handle.close();
    await replaceFile(temp, join(folder, MANIFEST_NAME));
  } catch (error) {
    await handle.close().catch(() => undefined);
    await unlink(temp).catch(() => undefined);
    throw error;
  } finally {
    untrack(temp);
  }
}
