/**
 * The snapshot file: a JSON array of the server's own objects, newest first. Written through a
 * temporary file in the same folder and renamed over the old one, so a reader (or a failed run)
 * only ever sees a whole file. One object per line keeps diffs of the committed file small.
 */
import { createHash, type Hash } from 'node:crypto';
import { createReadStream, unlinkSync } from 'node:fs';
import { mkdir, open, readFile, unlink, type FileHandle } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { basename, dirname, join } from 'node:path';
import { InputError } from '../errors.ts';
import { replaceFile } from './replace-file.ts';
import type { Json } from './source.ts';

const FLUSH_BYTES = 64 * 1024;

const FIX = "; fix or delete it, or set 'mode: full' to replace it";

/** The whole file parsed at once: for arrays laid out by something other than this action. */
export async function readSnapshot(path: string): Promise<Json[] | undefined> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    if ((error as { code?: string }).code === 'ENOENT') return undefined;
    throw error;
  }
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch {
    throw new InputError('path', `${path} is not valid JSON${FIX}`);
  }
  if (!Array.isArray(data)) throw new InputError('path', `${path} is not a JSON array${FIX}`);
  data.forEach((item: unknown, index) => checkItem(path, item, index));
  return data as Json[];
}

function checkItem(path: string, item: unknown, index: number): asserts item is Json {
  if (typeof item !== 'object' || item === null || typeof (item as Json).id !== 'string') {
    throw new InputError('path', `${path}: item ${index} has no string 'id'${FIX}`);
  }
}

/** An item of the existing file, with its own JSON text when the layout gives it whole. */
export interface Entry {
  item: Json;
  /**
   * The item's bytes as the file holds them (one item per line): copied into the next file
   * unchanged, so a merge never rewrites old items (nor rounds numbers beyond 2^53 in them).
   */
  text?: string;
}

/** The existing file's items, one at a time: `readEntries` without the text. */
export async function* readItems(path: string): AsyncGenerator<Json> {
  for await (const entry of readEntries(path)) yield entry.item;
}

/**
 * The existing file's items, one at a time, so memory does not grow with `count`. Files this
 * action wrote hold one item per line and are read line by line; any other layout of a JSON
 * array falls back to parsing the whole file (and then has no `text`). Nothing when the file
 * does not exist; a malformed file is an InputError.
 */
export async function* readEntries(path: string): AsyncGenerator<Entry> {
  let handle: FileHandle;
  try {
    handle = await open(path, 'r');
  } catch (error) {
    if ((error as { code?: string }).code === 'ENOENT') return;
    throw error;
  }
  const input = handle.createReadStream({ encoding: 'utf8' });
  const lines = createInterface({ input, crlfDelay: Infinity });
  let state: 'start' | 'items' | 'end' = 'start';
  let index = 0;
  let more = false; // the previous item line ended with a comma: another item must follow
  let fallback = false;
  try {
    for await (const raw of lines) {
      const line = raw.trim();
      if (state === 'start') {
        if (line === '[]') state = 'end';
        else if (line === '[') state = 'items';
        else fallback = true;
      } else if (state === 'end') {
        if (line !== '') fallback = true;
      } else if (line === ']') {
        if (more) fallback = true;
        state = 'end';
      } else {
        if (index > 0 && !more) fallback = true;
        else {
          more = line.endsWith(',');
          const text = more ? line.slice(0, -1) : line;
          let item: unknown;
          try {
            item = JSON.parse(text);
          } catch {
            fallback = true;
          }
          if (!fallback) {
            checkItem(path, item, index);
            index++;
            yield { item, text };
          }
        }
      }
      if (fallback) break;
    }
  } finally {
    lines.close();
    input.destroy();
    await handle.close().catch(() => undefined);
  }
  if (!fallback && state === 'end') return;
  // Not this action's layout (or cut short): the whole-file parse decides, skipping what was read.
  const items = (await readSnapshot(path)) ?? [];
  for (const item of items.slice(index)) yield { item };
}

/** The first item of the file, undefined when the file is missing or empty. */
export async function firstItem(path: string): Promise<Json | undefined> {
  for await (const item of readItems(path)) return item;
  return undefined;
}

const CR = 0x0d;
const LF = 0x0a;
const CR_BYTE = Buffer.of(CR);
/**
 * SHA-256 of a file, streamed, with CRLF line ends read as LF; undefined when it does not exist.
 * Git on Windows runners checks text files out with CRLF (core.autocrlf), so a committed
 * snapshot arrives there with CRLF while this action writes LF. JSON holds no raw line breaks
 * inside strings, so the two differ only in whitespace: the same content must count as
 * unchanged, or `changed` is true on every Windows run and a "commit if changed" step finds
 * nothing to commit.
 */
export async function hashFile(path: string): Promise<string | undefined> {
  const hash = createHash('sha256');
  let heldCr = false; // the previous chunk ended in CR: its LF may start the next one
  try {
    for await (const chunk of createReadStream(path)) {
      let bytes = chunk as Buffer;
      if (heldCr) {
        if (bytes[0] !== LF) hash.update(CR_BYTE);
        heldCr = false;
      }
      if (bytes.at(-1) === CR) {
        heldCr = true;
        bytes = bytes.subarray(0, -1);
      }
      let start = 0;
      for (let at = bytes.indexOf(CR); at >= 0; at = bytes.indexOf(CR, at + 1)) {
        if (bytes[at + 1] !== LF) continue;
        hash.update(bytes.subarray(start, at));
        start = at + 1;
      }
      hash.update(bytes.subarray(start));
    }
  } catch (error) {
    if ((error as { code?: string }).code === 'ENOENT') return undefined;
    throw error;
  }
  if (heldCr) hash.update(CR_BYTE);
  return hash.digest('hex');
}

/**
 * Temporary files not yet renamed or removed. A cancelled workflow run sends SIGTERM (Ctrl-C in
 * a terminal, SIGINT): they are removed before the process dies of the signal, so no stray
 * `.statuses.json.*.tmp` is left next to the file to be committed with it.
 */
const openTemps = new Set<string>();
const SIGNALS = ['SIGTERM', 'SIGINT'] as const;

function removeTempsAndDie(signal: NodeJS.Signals): void {
  for (const temp of openTemps) {
    try {
      unlinkSync(temp);
    } catch {
      // Already gone.
    }
  }
  openTemps.clear();
  for (const name of SIGNALS) process.off(name, removeTempsAndDie);
  // The default action again: the runner sees the step end by the signal it sent.
  process.kill(process.pid, signal);
}

/** Register a temporary file for removal on SIGTERM/SIGINT (the media mirror's too). */
export function track(temp: string): void {
  if (openTemps.size === 0) for (const name of SIGNALS) process.on(name, removeTempsAndDie);
  openTemps.add(temp);
}

export function untrack(temp: string): void {
  openTemps.delete(temp);
  if (openTemps.size === 0) for (const name of SIGNALS) process.off(name, removeTempsAndDie);
}

/** Streams a JSON array to a temporary file; `commit` renames it into place. */
export class AtomicArrayWriter {
  private buffer = '';
  private count = 0;
  private readonly hash: Hash = createHash('sha256');
  private closed = false;

  readonly path: string;
  private readonly temp: string;
  private readonly handle: FileHandle;

  private constructor(path: string, temp: string, handle: FileHandle) {
    this.path = path;
    this.temp = temp;
    this.handle = handle;
  }

  static async open(path: string): Promise<AtomicArrayWriter> {
    const folder = dirname(path);
    await mkdir(folder, { recursive: true });
    // Same folder as the target: rename is atomic only within one file system.
    const temp = join(folder, `.${basename(path)}.${process.pid}.${Date.now()}.tmp`);
    const handle = await open(temp, 'wx');
    track(temp);
    return new AtomicArrayWriter(path, temp, handle);
  }

  get written(): number {
    return this.count;
  }

  /** Appends an item: `text` when given (its bytes from the old file), else serialised. */
  async write(item: Json, text = JSON.stringify(item)): Promise<void> {
    this.buffer += `${this.count === 0 ? '[\n' : ',\n'}${text}`;
    this.count++;
    if (this.buffer.length >= FLUSH_BYTES) await this.flush();
  }

  /**
   * Finish and move into place, unless the bytes equal `previousHash` (the file already holds
   * exactly this): then the old file stays untouched. Returns whether the file changed.
   */
  async commit(previousHash: string | undefined): Promise<boolean> {
    this.buffer += this.count === 0 ? '[]\n' : '\n]\n';
    await this.flush();
    await this.handle.sync();
    await this.handle.close();
    this.closed = true;
    try {
      if (this.hash.digest('hex') === previousHash) {
        await unlink(this.temp);
        return false;
      }
      await replaceFile(this.temp, this.path);
      return true;
    } finally {
      untrack(this.temp);
    }
  }

  /** Drop the temporary file; the previous file is left as it was. */
  async discard(): Promise<void> {
    if (!this.closed) {
      this.closed = true;
      await this.handle.close().catch(() => undefined);
    }
    await unlink(this.temp).catch(() => undefined);
    untrack(this.temp);
  }

  private async flush(): Promise<void> {
    if (!this.buffer) return;
    const bytes = Buffer.from(this.buffer, 'utf8');
    this.buffer = '';
    this.hash.update(bytes);
    await this.handle.write(bytes);
  }
}
