/**
 * The snapshot file: a JSON array of the server's own objects, newest first. Written through a
 * temporary file in the same folder and renamed over the old one, so a reader (or a failed run)
 * only ever sees a whole file. One object per line keeps diffs of the committed file small.
 */
import { createHash, type Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, readFile, rename, unlink, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { InputError } from '../errors.ts';
import type { Json } from './source.ts';

const FLUSH_BYTES = 64 * 1024;

/** The existing file's items, undefined when there is none; a malformed file is an error. */
export async function readSnapshot(path: string): Promise<Json[] | undefined> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    if ((error as { code?: string }).code === 'ENOENT') return undefined;
    throw error;
  }
  const fix = "; fix or delete it, or set 'mode: full' to replace it";
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch {
    throw new InputError('path', `${path} is not valid JSON${fix}`);
  }
  if (!Array.isArray(data)) throw new InputError('path', `${path} is not a JSON array${fix}`);
  data.forEach((item: unknown, index) => {
    if (typeof item !== 'object' || item === null || typeof (item as Json).id !== 'string') {
      throw new InputError('path', `${path}: item ${index} has no string 'id'${fix}`);
    }
  });
  return data as Json[];
}

/** SHA-256 of a file, streamed; undefined when it does not exist. */
export async function hashFile(path: string): Promise<string | undefined> {
  const hash = createHash('sha256');
  try {
    for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  } catch (error) {
    if ((error as { code?: string }).code === 'ENOENT') return undefined;
    throw error;
  }
  return hash.digest('hex');
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
    return new AtomicArrayWriter(path, temp, handle);
  }

  get written(): number {
    return this.count;
  }

  async write(item: Json): Promise<void> {
    this.buffer += `${this.count === 0 ? '[\n' : ',\n'}${JSON.stringify(item)}`;
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
    if (this.hash.digest('hex') === previousHash) {
      await unlink(this.temp);
      return false;
    }
    await rename(this.temp, this.path);
    return true;
  }

  /** Drop the temporary file; the previous file is left as it was. */
  async discard(): Promise<void> {
    if (!this.closed) {
      this.closed = true;
      await this.handle.close().catch(() => undefined);
    }
    await unlink(this.temp).catch(() => undefined);
  }

  private async flush(): Promise<void> {
    if (!this.buffer) return;
    const bytes = Buffer.from(this.buffer, 'utf8');
    this.buffer = '';
    this.hash.update(bytes);
    await this.handle.write(bytes);
  }
}
