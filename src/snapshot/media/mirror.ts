/**
 * The media mirror: after the walk has written the snapshot, the attachments of its posts are
 * downloaded into media-path and each mirrored attachment gains one field, `local`, with the
 * paths of its files relative to the JSON file. The folder then holds exactly what the JSON
 * references. The order keeps the JSON true at every instant, however a run ends:
 * 1. the stems about to be downloaded are claimed in the record (manifest.ts);
 * 2. each file streams to a temporary name and is renamed into place only when whole and checked;
 * 3. only then is the JSON rewritten (atomically) to point at the files that arrived;
 * 4. only after that are the files no post references any more removed, and the record updated.
 * A run that dies in 1–3 leaves the old JSON, which references only files still there; one that
 * dies in 4 leaves files the next run removes. An attachment whose download fails for good (404,
 * over the cap, a wrong type, a checksum that does not match) is left without `local`, reported,
 * and tried again on the next run. Nothing new costs no request: a file on disk is never fetched
 * again, and a JSON that already says everything is not rewritten.
 */
import { mkdir, open, readdir, stat, unlink } from 'node:fs/promises';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { Downloader } from '../../download.ts';
import { isExpectedError, ServerError } from '../../errors.ts';
import type { Http } from '../../http.ts';
import type { Family } from '../filter.ts';
import type { Json } from '../source.ts';
import { replaceFile } from '../replace-file.ts';
import { AtomicArrayWriter, hashFile, readEntries, track, untrack } from '../store.ts';
import { attachmentsOf, LOCAL_FIELD, type Attachment } from './attachments.ts';
import type { MediaConfig } from './inputs.ts';
import {
  claimsText,
  isManifestTemp,
  readClaims,
  stemOf,
  stemOfName,
  stemOfTemp,
  writeClaims,
  type Claims,
} from './manifest.ts';
import {
  accepts,
  extensionOf,
  familyOfName,
  suits,
  type MediaKind,
  type Variant,
} from './types.ts';

/** Downloads at once: enough to hide a CDN's latency, few enough to be polite to an instance. */
export const MEDIA_CONCURRENCY = 4;
/** Failures reported as warnings; the rest go to the log, counted in one last warning. */
const WARNINGS = 10;

export interface MediaOutcome {
  /** Files in the mirror after the run, and their total size. */
  files: number;
  bytes: number;
  /** Files downloaded by this run, and their size. */
  downloaded: number;
  downloadedBytes: number;
  /** Files no post references any more, removed. */
  removed: number;
  /** Downloads that failed; those attachments have no local copy until a later run. */
  failed: number;
  /** Media requests made, redirects and retries included. */
  requests: number;
  /** Whether the JSON file was rewritten to add or drop local paths. */
  rewrote: boolean;
}

export interface MirrorRuntime {
  log(message: string): void;
  warn(message: string): void;
}

interface OnDisk {
  name: string;
  bytes: number;
}

/** One file to download, shared by every attachment rendition with the same URL. */
interface Job {
  stem: string;
  url: string;
  wanted: { kind: MediaKind; variant: Variant }[];
  expected?: Attachment['expected'];
  /** The first post that references it, to name it in a warning. */
  post: string;
}

export class MediaMirror {
  private readonly config: MediaConfig;
  private readonly folder: string;
  private readonly snapshotPath: string;
  /** The snapshot file as the record names it: relative to the folder. */
  private readonly snapshot: string;
  /** The folder as `local` paths start: relative to the JSON file's folder. */
  private readonly prefix: string;
  private readonly claims: Claims;
  private readonly recorded: string;

  private constructor(snapshotPath: string, config: MediaConfig, folder: string, claims: Claims) {
    this.config = config;
    this.folder = folder;
    this.snapshotPath = snapshotPath;
    this.snapshot = posix(relative(folder, resolve(snapshotPath)));
    const prefix = posix(relative(dirname(resolve(snapshotPath)), folder));
    this.prefix = prefix === '' ? '' : `${prefix}/`;
    this.claims = claims;
    this.recorded = claimsText(this.snapshot, claims);
  }

  /** Reads the folder's record before any request: a foreign or broken one fails the step here. */
  static async open(snapshotPath: string, config: MediaConfig): Promise<MediaMirror> {
    const folder = resolve(config.path);
    const snapshot = posix(relative(folder, resolve(snapshotPath)));
    return new MediaMirror(snapshotPath, config, folder, await readClaims(folder, snapshot));
  }

  async sync(options: {
    family: Family;
    http: Http;
    allowHttp: boolean;
    runtime: MirrorRuntime;
  }): Promise<MediaOutcome> {
    const { family, http, runtime } = options;
    const startRequests = http.requestCount;
    await mkdir(this.folder, { recursive: true });
    const { have, foreign } = await this.inventory();

    // Pass 1, streamed: what the JSON references, what is missing, whether `local` is stale.
    const jobs = new Map<string, Job>();
    let stale = false;
    for await (const { item } of readEntries(this.snapshotPath)) {
      for (const attachment of attachmentsOf(family, item)) {
        const kind = this.kindOf(attachment);
        if (kind) {
          for (const variant of this.config.variants) {
            const url = attachment[variant];
            if (!url) continue;
            const stem = stemOf(url);
            if (have.has(stem)) continue;
            let job = jobs.get(stem);
            if (!job) {
              job = { stem, url, wanted: [], post: String(item.id) };
              jobs.set(stem, job);
            }
            if (!job.wanted.some((w) => w.kind === kind && w.variant === variant)) {
              job.wanted.push({ kind, variant });
            }
            if (variant === 'original' && attachment.expected) job.expected = attachment.expected;
          }
        }
        stale ||= !sameLocal(attachment.object[LOCAL_FIELD], this.desired(attachment, have));
      }
    }

    // A stem whose file name is taken by a file the mirror did not write is left alone.
    const reports: string[] = [];
    for (const job of jobs.values()) {
      if (!this.claims.has(job.stem) && foreign.has(job.stem)) {
        jobs.delete(job.stem);
        reports.push(
          `Media of post ${job.post}: a file not written by this action has the name its file would get in ${this.config.path}; it has no local copy`,
        );
      }
    }

    let downloaded = 0;
    let downloadedBytes = 0;
    const failures: { job: Job; error: Error }[] = [];
    let synced: Promise<void> = Promise.resolve();
    if (jobs.size > 0) {
      for (const stem of jobs.keys()) if (!this.claims.has(stem)) this.claims.set(stem, {});
      await writeClaims(this.folder, claimsText(this.snapshot, this.claims));
      runtime.log(
        `Media: downloading ${jobs.size} file${jobs.size === 1 ? '' : 's'} to ${this.config.path}`,
      );
      const downloader = new Downloader(http);
      try {
        await pool([...jobs.values()], MEDIA_CONCURRENCY, async (job) => {
          try {
            const file = await this.fetch(downloader, job, options.allowHttp);
            have.set(job.stem, file);
            // Synced behind the downloads, one at a time, so the flushes overlap the network
            // waits and leave the thread pool's other threads to the downloads' writes.
            const path = join(this.folder, file.name);
            synced = synced.then(() => syncFile(path));
            // Awaited below; marked handled meanwhile, in case the run fails before that.
            synced.catch(() => undefined);
            downloaded++;
            downloadedBytes += file.bytes;
          } catch (error) {
            if (!isExpectedError(error)) throw error;
            failures.push({ job, error });
          }
        });
      } finally {
        downloader.close();
      }
    }

    // The new files reach the disk before the JSON that names them does (the JSON is synced too).
    await synced;

    // Pass 2: the JSON, with `local` where a file arrived and without it where none did.
    let rewrote = false;
    const keep = new Set<string>();
    if (jobs.size > 0 || stale) {
      rewrote = await this.rewrite(family, have, keep);
    } else {
      for await (const { item } of readEntries(this.snapshotPath)) {
        for (const attachment of attachmentsOf(family, item)) this.desired(attachment, have, keep);
      }
    }

    // Only now, with the JSON final: remove what it no longer references, then update the record.
    const removed = await this.removeUnreferenced(keep);
    const files = new Map<string, OnDisk>();
    for (const [stem, file] of have) if (keep.has(file.name)) files.set(stem, file);
    this.claims.clear();
    for (const [stem, file] of files) this.claims.set(stem, { name: file.name, bytes: file.bytes });
    const text = claimsText(this.snapshot, this.claims);
    if (text !== this.recorded) await writeClaims(this.folder, text);

    this.report(runtime, failures, reports);
    const bytes = [...files.values()].reduce((sum, file) => sum + file.bytes, 0);
    const outcome: MediaOutcome = {
      files: files.size,
      bytes,
      downloaded,
      downloadedBytes,
      removed,
      failed: failures.length + reports.length,
      requests: http.requestCount - startRequests,
      rewrote,
    };
    runtime.log(
      `Media: ${downloaded} downloaded, ${removed} removed, ${outcome.failed} failed; ` +
        `${files.size} files (${bytes} bytes) in ${this.config.path}`,
    );
    return outcome;
  }

  /**
   * The claimed files present on disk, by stem, and the stems of files shaped like the mirror's
   * that it did not claim. Temporary files of a run that died are removed; a claimed stem whose
   * file is missing (deleted by hand, or never finished) is downloaded again.
   */
  private async inventory(): Promise<{ have: Map<string, OnDisk>; foreign: Set<string> }> {
    const have = new Map<string, OnDisk>();
    const foreign = new Set<string>();
    for (const name of await readdir(this.folder)) {
      const tempStem = stemOfTemp(name);
      if ((tempStem && this.claims.has(tempStem)) || isManifestTemp(name)) {
        await unlink(join(this.folder, name)).catch(() => undefined);
        continue;
      }
      const stem = stemOfName(name);
      if (!stem) continue;
      const claim = this.claims.get(stem);
      if (!claim) {
        foreign.add(stem);
        continue;
      }
      // The recorded name wins; else the first file of a run that died before recording it.
      const current = have.get(stem);
      if (current && (current.name === claim.name || name !== claim.name)) continue;
      const bytes =
        claim.name === name && claim.bytes !== undefined
          ? claim.bytes
          : (await stat(join(this.folder, name))).size;
      have.set(stem, { name, bytes });
    }
    return { have, foreign };
  }

  private kindOf(attachment: Attachment): MediaKind | undefined {
    const { kind } = attachment;
    return kind && this.config.kinds.has(kind) ? kind : undefined;
  }

  /** What `local` should say for an attachment, given the files present; `keep` collects them. */
  private desired(
    attachment: Attachment,
    have: Map<string, OnDisk>,
    keep?: Set<string>,
  ): Partial<Record<Variant, string>> | undefined {
    const kind = this.kindOf(attachment);
    if (!kind) return undefined;
    const local: Partial<Record<Variant, string>> = {};
    for (const variant of this.config.variants) {
      const url = attachment[variant];
      const file = url === undefined ? undefined : have.get(stemOf(url));
      if (!file || !suits(kind, variant, familyOfName(file.name))) continue;
      local[variant] = this.prefix + file.name;
      keep?.add(file.name);
    }
    return Object.keys(local).length > 0 ? local : undefined;
  }

  private async fetch(downloader: Downloader, job: Job, allowHttp: boolean): Promise<OnDisk> {
    const temp = join(this.folder, `.${job.stem}.${process.pid}.${++sequence}.tmp`);
    track(temp);
    try {
      const got = await downloader.download({
        url: new URL(job.url),
        file: temp,
        maxBytes: this.config.maxBytes,
        allowHttp,
        accept: (type) => accepts(type, job.wanted),
        md5: job.expected !== undefined,
      });
      const { expected } = job;
      const mismatch =
        expected &&
        (got.bytes !== expected.size
          ? `the file is ${got.bytes} bytes, but the drive file says ${expected.size}`
          : got.md5 !== expected.md5
            ? "the file's MD5 is not the drive file's"
            : undefined);
      if (mismatch) {
        throw new ServerError({
          server: got.url.origin,
          endpoint: `GET ${got.url.pathname}`,
          status: 200,
          description: mismatch,
        });
      }
      const name = job.stem + (extensionOf(got.contentType) ?? '');
      await replaceFile(temp, join(this.folder, name));
      return { name, bytes: got.bytes };
    } finally {
      await unlink(temp).catch(() => undefined);
      untrack(temp);
    }
  }

  private async rewrite(
    family: Family,
    have: Map<string, OnDisk>,
    keep: Set<string>,
  ): Promise<boolean> {
    const previousHash = await hashFile(this.snapshotPath);
    const writer = await AtomicArrayWriter.open(this.snapshotPath);
    try {
      for await (const { item, text } of readEntries(this.snapshotPath)) {
        let changed = false;
        for (const attachment of attachmentsOf(family, item)) {
          const local = this.desired(attachment, have, keep);
          if (sameLocal(attachment.object[LOCAL_FIELD], local)) continue;
          if (local) attachment.object[LOCAL_FIELD] = local;
          else delete attachment.object[LOCAL_FIELD];
          changed = true;
        }
        // An item whose attachments did not change keeps its bytes as the file held them.
        await writer.write(item, changed ? JSON.stringify(item) : text);
      }
      return await writer.commit(previousHash);
    } catch (error) {
      await writer.discard();
      throw error;
    }
  }

  /** Removes the mirror's own files that `keep` does not name; never anything else. */
  private async removeUnreferenced(keep: Set<string>): Promise<number> {
    let removed = 0;
    for (const name of await readdir(this.folder)) {
      const stem = stemOfName(name);
      if (!stem || !this.claims.has(stem) || keep.has(name)) continue;
      await unlink(join(this.folder, name));
      removed++;
    }
    return removed;
  }

  private report(
    runtime: MirrorRuntime,
    failures: { job: Job; error: Error }[],
    collisions: string[],
  ): void {
    const lines = [
      ...failures.map(
        ({ job, error }) =>
          `Media of post ${job.post}: ${error.message}. It has no local copy; the next run tries again`,
      ),
      ...collisions,
    ];
    lines.slice(0, WARNINGS).forEach((line) => runtime.warn(line));
    lines.slice(WARNINGS).forEach((line) => runtime.log(line));
    if (lines.length > WARNINGS) {
      runtime.warn(
        `Media: ${lines.length - WARNINGS} more files could not be mirrored (see the log)`,
      );
    }
  }
}

let sequence = 0;

async function syncFile(path: string): Promise<void> {
  const handle = await open(path, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

function posix(path: string): string {
  return path.split(sep).join('/');
}

/** Whether an attachment's `local` already says exactly `desired`. */
function sameLocal(current: unknown, desired: Json | undefined): boolean {
  if (current === undefined || desired === undefined) return current === desired;
  return JSON.stringify(current) === JSON.stringify(desired);
}

/** Runs `work` on every item with at most `limit` at once; the first unexpected error wins. */
async function pool<T>(items: T[], limit: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  let failed: { error: unknown } | undefined;
  const worker = async (): Promise<void> => {
    while (!failed && next < items.length) {
      const item = items[next++] as T;
      try {
        await work(item);
      } catch (error) {
        failed ??= { error };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  if (failed) throw failed.error;
}
