/**
 * Where a snapshot item's attachments are and what each server family says about them. Read from
 * the servers' own serializers:
 * - Mastodon-API attachments (Mastodon app/serializers/rest/media_attachment_serializer.rb, v4.5;
 *   GoToSocial internal/api/model/attachment.go, v0.19; Pleroma/Akkoma status_view.ex
 *   render_attachment) have `type` (image, gifv, video, audio, unknown), `url` and `preview_url`,
 *   either of which may be null (not yet processed, not stored locally, no thumbnail);
 * - Misskey drive files (packages/backend/src/core/entities/DriveFileEntityService.ts, pack) have
 *   a MIME `type`, `url`, `thumbnailUrl`, and the original's `md5` and `size`.
 * A boost's or renote's attachments sit in the embedded post and are mirrored too.
 */
import type { Family } from '../filter.ts';
import type { Json } from '../source.ts';
import type { MediaKind } from './types.ts';

/** The one field the mirror adds to an attachment: `{ original?, preview? }`, relative paths. */
export const LOCAL_FIELD = 'local';

export interface Attachment {
  /** The server's object: the mirror sets or removes LOCAL_FIELD on it and nothing else. */
  object: Json;
  kind: MediaKind | undefined;
  original?: string;
  preview?: string;
  /** What the original's bytes must be, where the server states it (Misskey). */
  expected?: { md5: string; size: number };
}

const MASTODON_KINDS: Record<string, MediaKind> = {
  image: 'image',
  gifv: 'gifv',
  video: 'video',
  audio: 'audio',
};

function objects(value: unknown): Json[] {
  return Array.isArray(value)
    ? value.filter((entry): entry is Json => typeof entry === 'object' && entry !== null)
    : [];
}

function embedded(value: unknown): Json | undefined {
  return typeof value === 'object' && value !== null ? (value as Json) : undefined;
}

/** An http(s) URL as the server wrote it; anything else (null, a path, javascript:) is none. */
function webUrl(value: unknown): string | undefined {
  if (typeof value !== 'string' || !URL.canParse(value)) return undefined;
  const { protocol } = new URL(value);
  return protocol === 'https:' || protocol === 'http:' ? value : undefined;
}

function misskeyKind(type: unknown): MediaKind | undefined {
  if (typeof type !== 'string') return undefined;
  // Misskey has no gifv: an animated GIF is an image/gif drive file.
  if (type.startsWith('image/')) return 'image';
  if (type.startsWith('video/')) return 'video';
  if (type.startsWith('audio/')) return 'audio';
  return undefined;
}

/**
 * Whether Misskey's `md5` and `size` describe the bytes at `url`. They are the original upload's,
 * but the public `url` is the "webpublic" rendition when one was made (an image with EXIF data or
 * larger than 2048 px is re-encoded); its storage key starts with `webpublic-` on local and
 * object storage alike (packages/backend/src/core/DriveService.ts). A remote file Misskey only
 * links to has size 0 (DriveService addFile, isLink).
 */
function statedBytes(file: Json, url: string | undefined): Attachment['expected'] {
  const { md5, size } = file;
  if (!url || typeof md5 !== 'string' || !/^[0-9a-f]{32}$/.test(md5)) return undefined;
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size <= 0) return undefined;
  const last = new URL(url).pathname.split('/').pop() ?? '';
  return last.startsWith('webpublic-') ? undefined : { md5, size };
}

export function attachmentsOf(family: Family, item: Json): Attachment[] {
  const found: Attachment[] = [];
  if (family === 'mastodon') {
    for (const status of [item, embedded(item.reblog)]) {
      for (const object of objects(status?.media_attachments)) {
        found.push({
          object,
          kind: MASTODON_KINDS[String(object.type)],
          original: webUrl(object.url),
          preview: webUrl(object.preview_url),
        });
      }
    }
    return found;
  }
  for (const [note, own] of [
    [item, true],
    [embedded(item.renote), false],
  ] as const) {
    for (const object of objects(note?.files)) {
      const original = webUrl(object.url);
      found.push({
        object,
        kind: misskeyKind(object.type),
        original,
        preview: webUrl(object.thumbnailUrl),
        // Only the user's own files: a renoted remote file may come through a media proxy.
        expected: own ? statedBytes(object, original) : undefined,
      });
    }
  }
  return found;
}

export interface Thumbnail {
  url: string;
  alt: string;
}

/**
 * The server's preview pictures of an item, for the job summary. Posts behind a content warning
 * and sensitive media are left out: the summary shows them to whoever opens the run.
 */
export function thumbnailsOf(family: Family, item: Json): Thumbnail[] {
  const thumbnails: Thumbnail[] = [];
  if (family === 'mastodon') {
    for (const status of [item, embedded(item.reblog)]) {
      if (!status || status.sensitive === true || nonEmpty(status.spoiler_text)) continue;
      for (const object of objects(status.media_attachments)) {
        const url = webUrl(object.preview_url);
        if (url) thumbnails.push({ url, alt: text(object.description) });
      }
    }
    return thumbnails;
  }
  for (const note of [item, embedded(item.renote)]) {
    if (!note || nonEmpty(note.cw)) continue;
    for (const object of objects(note.files)) {
      const url = webUrl(object.thumbnailUrl);
      if (url && object.isSensitive !== true) thumbnails.push({ url, alt: text(object.comment) });
    }
  }
  return thumbnails;
}

function nonEmpty(value: unknown): boolean {
  return typeof value === 'string' && value.trim() !== '';
}

function text(value: unknown): string {
  return typeof value === 'string' ? value : '';
}
