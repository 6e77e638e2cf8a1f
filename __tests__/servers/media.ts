/**
 * Media on its own origin, as instances serve it: Mastodon from S3 or a CDN (S3_ALIAS_HOST),
 * Pleroma from its upload base_url, Misskey from object storage, GoToSocial from its fileserver,
 * which with S3 storage redirects to a presigned URL on the bucket's origin
 * (internal/api/fileserver/servefile.go, v0.19.2: `c.Redirect(http.StatusFound, content.URL)`).
 *
 * `MediaServer` is the storage origin: it serves files with their content type and length, keeps
 * every request's headers (to prove no credential reached it), and answers with faults on demand:
 * error statuses, oversized or wrongly typed bodies, redirects, resets, stalls and trickles.
 * `MediaLibrary` gives the loopback timeline (servers/timeline.ts) each post's attachments in the
 * shape each family serializes them, with real PNG pictures a browser decodes:
 * - Mastodon: app/serializers/rest/media_attachment_serializer.rb (v4.5.15): id, type, url,
 *   preview_url, remote_url, preview_remote_url, text_url, meta, description, blurhash;
 * - GoToSocial: internal/api/model/attachment.go and typeutils AttachmentToAPIAttachment
 *   (v0.19.2): the same fields, text_url = url, url and preview_url on the fileserver;
 * - Pleroma/Akkoma: lib/pleroma/web/mastodon_api/views/status_view.ex render_attachment:
 *   preview_url is MediaProxy.preview_url(href), which is the original URL itself unless the
 *   media preview proxy is enabled (lib/pleroma/web/media_proxy.ex; off by default); type from
 *   the MIME type (no gifv); `pleroma.mime_type`;
 * - Misskey: packages/backend/src/core/entities/DriveFileEntityService.ts pack(): id, createdAt,
 *   name, type (MIME), md5, size, isSensitive, blurhash, properties, url, thumbnailUrl, comment,
 *   folderId, folder, userId, user. The public url is the "webpublic" rendition when one was made
 *   (webpublicUrl ?? url), stored under a `webpublic-<uuid>` key (core/DriveService.ts), while
 *   md5 and size stay the original upload's.
 *
 * Erasable TypeScript only, importing nothing but node: the benchmark runs it directly.
 */
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { crc32, deflateSync } from 'node:zlib';
import type { Flavour, MediaCatalog, Post } from './timeline.ts';

type Json = Record<string, unknown>;

export interface MediaFile {
  body: Buffer;
  type: string;
}

export type MediaFault =
  /** An error status (an S3 or CDN error page), optionally with Retry-After. */
  | { kind: 'status'; status: number; retryAfter?: string }
  /** The right headers, half the body, then the connection is destroyed. */
  | { kind: 'reset' }
  /** The right headers, half the body, then silence: only the client's timeout ends it. */
  | { kind: 'stall' }
  /** One byte every `intervalMs`, never idle long enough for an idle timeout. */
  | { kind: 'trickle'; intervalMs: number }
  /** `bytes` of picture, announced by Content-Length or streamed chunked without it. */
  | { kind: 'oversized'; bytes: number; contentLength: boolean }
  /** The file's bytes under another content type (an HTML error page served with 200, say). */
  | { kind: 'type'; type: string }
  | { kind: 'redirect'; location: string; status?: 301 | 302 | 303 | 307 | 308 };

export interface MediaRequest {
  method: string;
  path: string;
  headers: Record<string, string | string[] | undefined>;
  /** Body bytes written before the answer ended or the client went away. */
  sent: number;
  /** True once the client closed the connection before the body ended. */
  abandoned: boolean;
}

export class MediaServer {
  url = '';
  /** The origin written into attachment URLs: `url`, or a name the TLS front serves. */
  publicUrl = '';
  /** Added before every answer, as a distant CDN would. */
  latencyMs = 0;
  readonly requests: MediaRequest[] = [];
  /** Requests being answered now, and the most there ever were at once. */
  inFlight = 0;
  maxInFlight = 0;
  private readonly files = new Map<string, MediaFile>();
  private readonly faults = new Map<string, { fault: MediaFault; left: number }>();
  private readonly sockets = new Set<Socket>();
  private readonly server: Server;

  private constructor() {
    this.server = createServer((req, res) => {
      this.handle(req, res).catch(() => res.destroy());
    });
    this.server.on('connection', (socket: Socket) => {
      this.sockets.add(socket);
      socket.on('close', () => this.sockets.delete(socket));
    });
  }

  static async start(options: { publicUrl?: string } = {}): Promise<MediaServer> {
    const server = new MediaServer();
    await new Promise<void>((resolve) => server.server.listen(0, '127.0.0.1', resolve));
    server.url = `http://127.0.0.1:${(server.server.address() as AddressInfo).port}`;
    server.publicUrl = options.publicUrl ?? server.url;
    return server;
  }

  close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  /** Store a file; returns its public URL. */
  put(path: string, file: MediaFile): string {
    this.files.set(path, file);
    return this.publicUrl + path;
  }

  file(path: string): MediaFile | undefined {
    return this.files.get(path);
  }

  delete(path: string): void {
    this.files.delete(path);
  }

  /** Answer the next `times` requests for `path` with `fault` (default: until cleared). */
  fault(path: string, fault: MediaFault, times = Infinity): void {
    this.faults.set(path, { fault, left: times });
  }

  clearFaults(): void {
    this.faults.clear();
  }

  /** Requests for one path. */
  served(path: string): MediaRequest[] {
    return this.requests.filter((request) => request.path === path);
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const record: MediaRequest = {
      method: req.method ?? 'GET',
      path: url.pathname,
      headers: { ...req.headers },
      sent: 0,
      abandoned: false,
    };
    this.requests.push(record);
    this.maxInFlight = Math.max(this.maxInFlight, ++this.inFlight);
    res.on('close', () => {
      this.inFlight--;
      if (!res.writableFinished) record.abandoned = true;
    });
    const write = (chunk: Buffer): boolean => {
      record.sent += chunk.length;
      return res.write(chunk);
    };
    if (this.latencyMs > 0) await new Promise((resolve) => setTimeout(resolve, this.latencyMs));

    const file = this.files.get(url.pathname);
    const entry = this.faults.get(url.pathname);
    const fault = entry?.fault;
    if (entry && --entry.left <= 0) this.faults.delete(url.pathname);

    if (fault?.kind === 'redirect') {
      res.writeHead(fault.status ?? 302, { location: fault.location, 'content-length': '0' });
      return void res.end();
    }
    if (fault?.kind === 'status') {
      const page = `<html><body><h1>${fault.status}</h1></body></html>`;
      res.writeHead(fault.status, {
        'content-type': 'text/html',
        'content-length': Buffer.byteLength(page),
        ...(fault.retryAfter === undefined ? {} : { 'retry-after': fault.retryAfter }),
      });
      record.sent += Buffer.byteLength(page);
      return void res.end(page);
    }
    if (fault?.kind === 'oversized') {
      const headers: Record<string, string> = { 'content-type': 'image/png' };
      if (fault.contentLength) headers['content-length'] = String(fault.bytes);
      res.writeHead(200, headers);
      const chunk = Buffer.alloc(64 * 1024, 0x5a);
      for (let left = fault.bytes; left > 0 && !res.destroyed; left -= chunk.length) {
        const piece = left >= chunk.length ? chunk : chunk.subarray(0, left);
        if (!write(piece))
          await new Promise((resolve) => res.once('drain', resolve).once('close', resolve));
      }
      return void res.end();
    }
    if (!file) {
      // S3's answer for a missing key.
      const body = '<?xml version="1.0" encoding="UTF-8"?><Error><Code>NoSuchKey</Code></Error>';
      res.writeHead(404, {
        'content-type': 'application/xml',
        'content-length': Buffer.byteLength(body),
      });
      return void res.end(body);
    }
    const type = fault?.kind === 'type' ? fault.type : file.type;
    res.writeHead(200, {
      'content-type': type,
      'content-length': file.body.length,
      'cache-control': 'public, max-age=31536000, immutable',
    });
    const half = file.body.subarray(0, Math.floor(file.body.length / 2));
    if (fault?.kind === 'reset') {
      write(half);
      setTimeout(() => res.socket?.destroy(), 20);
      return;
    }
    if (fault?.kind === 'stall') {
      write(half);
      return;
    }
    if (fault?.kind === 'trickle') {
      let at = 0;
      const timer = setInterval(() => {
        if (res.destroyed || at >= file.body.length) return clearInterval(timer);
        write(file.body.subarray(at, ++at));
      }, fault.intervalMs);
      res.on('close', () => clearInterval(timer));
      return;
    }
    record.sent += file.body.length;
    res.end(file.body);
  }
}

// ---- pictures -----------------------------------------------------------------------------------

function chunk(type: string, data: Buffer): Buffer {
  const head = Buffer.alloc(4);
  head.writeUInt32BE(data.length);
  const body = Buffer.concat([Buffer.from(type, 'latin1'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body));
  return Buffer.concat([head, body, crc]);
}

/** A real PNG (8-bit RGB), so a browser decodes it: `pixel` gives each pixel's colour. */
export function png(
  width: number,
  height: number,
  pixel: (x: number, y: number) => number[],
): Buffer {
  const raw = Buffer.alloc((width * 3 + 1) * height);
  for (let y = 0; y < height; y++) {
    const row = y * (width * 3 + 1);
    for (let x = 0; x < width; x++) {
      const [r = 0, g = 0, b = 0] = pixel(x, y);
      raw[row + 1 + x * 3] = r;
      raw[row + 2 + x * 3] = g;
      raw[row + 3 + x * 3] = b;
    }
  }
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header.set([8, 2, 0, 0, 0], 8);
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', header),
    chunk('IDAT', deflateSync(raw)),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

/** A PNG of seeded noise, which does not compress: about `bytes` long. */
export function noisePng(bytes: number, seed: number): Buffer {
  const side = Math.ceil(Math.sqrt(bytes / 3));
  let state = seed * 2654435761 + 1;
  const next = () => {
    state = (state * 1103515245 + 12345) >>> 0;
    return state >>> 24;
  };
  return png(side, side, () => [next(), next(), next()]);
}

const PALETTE = [
  [231, 76, 60],
  [46, 204, 113],
  [52, 152, 219],
  [241, 196, 15],
  [155, 89, 182],
  [26, 188, 156],
];

function picture(index: number, n: number, width: number, height: number): Buffer {
  const [r, g, b] = PALETTE[(index + n) % PALETTE.length] ?? [0, 0, 0];
  return png(width, height, (x, y) =>
    (Math.floor(x / 8) + Math.floor(y / 8)) % 2 === 0 ? [r ?? 0, g ?? 0, b ?? 0] : [250, 250, 250],
  );
}

/** Bytes that only say what they are: the browser test does not play them. */
function blob(label: string, size: number): Buffer {
  return Buffer.alloc(size, `${label} `);
}

function md5(body: Buffer): string {
  return createHash('md5').update(body).digest('hex');
}

// ---- attachments --------------------------------------------------------------------------------

export type Kind = 'image' | 'gifv' | 'video' | 'audio';

export interface LibraryFile {
  /** Path on the media server. */
  path: string;
  /** The URL written into the attachment (on the instance for GoToSocial). */
  url: string;
  file: MediaFile;
}

export interface LibraryAttachment {
  id: string;
  kind: Kind;
  /** Alt text; null when the user gave none. */
  description: string | null;
  original: LibraryFile;
  preview?: LibraryFile;
  /** Misskey: what the drive file states (the upload's md5 and size). */
  stated?: { md5: string; size: number };
}

/**
 * Which attachments a post with media has, by its number: 1 picture, 2 pictures, a short video
 * (gifv on Mastodon) with a picture preview, or a sound without one. Every 15th post from the
 * 10th carries a content warning; every 7th attachment has no alt text.
 */
export class MediaLibrary implements MediaCatalog {
  readonly cdn: MediaServer;
  private readonly cache = new Map<string, LibraryAttachment[]>();
  /** GoToSocial fileserver paths → the bucket paths they redirect to. */
  private readonly fileserver = new Map<string, string>();
  /** Attachment URLs → where their bytes are stored. */
  private readonly byUrl = new Map<string, LibraryFile>();

  constructor(cdn: MediaServer) {
    this.cdn = cdn;
  }

  /** The attachments of a post as generated for `flavour` (the same pictures for every family). */
  attachments(post: Post, flavour: Flavour, instanceUrl = ''): LibraryAttachment[] {
    const key = `${flavour} ${post.index}`;
    const cached = this.cache.get(key);
    if (cached) return cached;
    const i = post.index;
    const kinds: Kind[] = [['image'], ['image', 'image'], ['gifv'], ['audio']][i % 4] as Kind[];
    const made = kinds.map((kind, n) => this.make(flavour, instanceUrl, i, n, kind));
    this.cache.set(key, made);
    return made;
  }

  /** Where an attachment URL's bytes are stored; the bytes are read from the media server. */
  at(url: string): LibraryFile | undefined {
    return this.byUrl.get(url);
  }

  contentWarning(post: Post): string {
    return post.media && post.index % 15 === 10 ? `Spiders, post ${post.index}` : '';
  }

  private make(
    flavour: Flavour,
    instance: string,
    i: number,
    n: number,
    kind: Kind,
  ): LibraryAttachment {
    const id = `${i}0${n}`;
    const described = (i + n) % 7 !== 3;
    const store = (name: string, file: MediaFile): LibraryFile => {
      const path = `/${flavour}/${id}/${name}`;
      let url = this.cdn.put(path, file);
      if (flavour === 'gotosocial') {
        // GoToSocial links its own fileserver, which redirects to the bucket.
        const size = name.startsWith('small') ? 'small' : 'original';
        const served = `/fileserver/01ACCOUNT/attachment/${size}/${id}${name.slice(name.lastIndexOf('.'))}`;
        this.fileserver.set(served, path);
        url = instance + served;
      }
      const stored = { path, url, file };
      this.byUrl.set(url, stored);
      return stored;
    };
    const preview = store('small.png', { body: picture(i, n + 3, 24, 18), type: 'image/png' });
    if (kind === 'image') {
      const original = store('original.png', { body: picture(i, n, 64, 48), type: 'image/png' });
      const description = described
        ? `Picture ${i}.${n}: squares, “ünïcode” & <b>not bold</b>`
        : null;
      // Every third Misskey picture was re-encoded: its url is the webpublic rendition.
      if (flavour === 'misskey' && i % 15 === 0) {
        const upload = Buffer.concat([original.file.body, blob('exif', 300)]);
        const web = store('webpublic-9d1c.png', original.file);
        return {
          id,
          kind,
          description,
          original: web,
          preview,
          stated: { md5: md5(upload), size: upload.length },
        };
      }
      const stated = { md5: md5(original.file.body), size: original.file.body.length };
      return { id, kind, description, original, preview, stated };
    }
    if (kind === 'gifv') {
      const body = blob(`video ${id}`, 4096);
      const original = store('original.mp4', { body, type: 'video/mp4' });
      return {
        id,
        kind: flavour === 'mastodon' ? 'gifv' : 'video',
        description: described ? `A short loop ${i}` : null,
        original,
        preview,
        stated: { md5: md5(body), size: body.length },
      };
    }
    const body = blob(`audio ${id}`, 3000);
    const original = store('original.mp3', { body, type: 'audio/mpeg' });
    return {
      id,
      kind,
      description: described ? `A sound ${i}` : null,
      original,
      stated: { md5: md5(body), size: body.length },
    };
  }

  mastodonAttachments(post: Post, flavour: Flavour, instanceUrl: string): Json[] {
    return this.attachments(post, flavour, instanceUrl).map((a) => {
      const meta =
        a.kind === 'audio'
          ? { length: '0:00:03.00', duration: 3 }
          : {
              original: { width: 64, height: 48, size: '64x48', aspect: 1.3333333333333333 },
              small: { width: 24, height: 18, size: '24x18', aspect: 1.3333333333333333 },
            };
      const blurhash = a.kind === 'audio' ? null : 'UBL_:rOpGG-oBUNG,qRj2so|=eE1w^n4S5NH';
      if (flavour === 'pleroma') {
        // Preview proxy off: preview_url is the original's URL, whatever the kind.
        return {
          id: a.id,
          url: a.original.url,
          remote_url: a.original.url,
          preview_url: a.original.url,
          text_url: a.original.url,
          type: a.kind,
          description: a.description,
          pleroma: { mime_type: a.original.file.type },
          blurhash,
          meta,
        };
      }
      return {
        id: a.id,
        type: a.kind,
        url: a.original.url,
        preview_url: a.preview?.url ?? null,
        remote_url: null,
        preview_remote_url: null,
        text_url: flavour === 'gotosocial' ? a.original.url : `${instanceUrl}/media/${a.id}`,
        meta,
        description: a.description,
        blurhash,
      };
    });
  }

  misskeyFiles(post: Post): Json[] {
    return this.attachments(post, 'misskey').map((a, n) => ({
      id: `f${a.id}`,
      createdAt: post.createdAt,
      // Not a name the mirror may use: it is never used for anything.
      name: n === 0 ? '../../escape.png' : `file-${a.id}`,
      type: a.original.file.type,
      md5: a.stated?.md5,
      size: a.stated?.size,
      isSensitive: false,
      blurhash: null,
      properties: a.kind === 'image' ? { width: 64, height: 48 } : {},
      url: a.original.url,
      thumbnailUrl: a.preview?.url ?? null,
      comment: a.description,
      folderId: null,
      folder: null,
      userId: null,
      user: null,
    }));
  }

  serveInstance(_req: IncomingMessage, res: ServerResponse, url: URL): boolean {
    const target = this.fileserver.get(url.pathname);
    if (!target) return false;
    // A presigned URL: its query changes with every answer, as S3 signatures do.
    const signature = createHash('sha256').update(`${target} ${Math.random()}`).digest('hex');
    const location = `${this.cdn.publicUrl}${target}?X-Amz-Signature=${signature}`;
    res.writeHead(302, {
      location,
      'content-length': '0',
      'cache-control': 'private, max-age=86400, immutable',
    });
    res.end();
    return true;
  }
}
