/**
 * The media the mirror keeps: the kinds of attachment a user can choose, and the content types
 * it writes to disk with the extension each one gets. A file's name never comes from server
 * data: its stem is a hash of its URL and its extension comes from this allowlist, keyed by the
 * content type the media host answered with. SVG and HTML are left out on purpose: a site that
 * serves the mirror from its own origin would run their scripts.
 */

export const MEDIA_KINDS = ['image', 'gifv', 'video', 'audio'] as const;
export type MediaKind = (typeof MEDIA_KINDS)[number];

export const MEDIA_SIZES = ['original', 'preview', 'both'] as const;
export type MediaSizeInput = (typeof MEDIA_SIZES)[number];
/** One of the two renditions an attachment may have. */
export type Variant = 'original' | 'preview';

/** What a file is, by the top level of its content type. */
export type FileFamily = 'image' | 'video' | 'audio';

const EXTENSIONS: Record<string, string> = {
  'image/jpeg': '.jpg',
  'image/png': '.png',
  'image/gif': '.gif',
  'image/webp': '.webp',
  'image/avif': '.avif',
  'image/apng': '.apng',
  'video/mp4': '.mp4',
  'video/webm': '.webm',
  'video/quicktime': '.mov',
  'video/ogg': '.ogv',
  'audio/mpeg': '.mp3',
  'audio/mp4': '.m4a',
  'audio/aac': '.aac',
  'audio/ogg': '.ogg',
  'audio/opus': '.opus',
  'audio/webm': '.weba',
  'audio/wav': '.wav',
  'audio/x-wav': '.wav',
  'audio/wave': '.wav',
  'audio/flac': '.flac',
  'audio/x-flac': '.flac',
};

const FAMILY_OF_EXTENSION: ReadonlyMap<string, FileFamily> = new Map(
  Object.entries(EXTENSIONS).map(([type, ext]) => [ext, type.split('/')[0] as FileFamily]),
);

/** The extension for a content type, or undefined when the mirror does not keep that type. */
export function extensionOf(contentType: string): string | undefined {
  return Object.hasOwn(EXTENSIONS, contentType) ? EXTENSIONS[contentType] : undefined;
}

/** What a mirrored file holds, from the extension the mirror gave it. */
export function familyOfName(name: string): FileFamily | undefined {
  const dot = name.lastIndexOf('.');
  return dot < 0 ? undefined : FAMILY_OF_EXTENSION.get(name.slice(dot));
}

/**
 * The files that can stand for a rendition of an attachment: a preview is always a picture; an
 * original is what its kind says (a gifv is a short video, or still a GIF on some servers;
 * Mastodon-API servers label some audio containers as video).
 */
export function suits(kind: MediaKind, variant: Variant, family: FileFamily | undefined): boolean {
  if (family === undefined) return false;
  if (variant === 'preview') return family === 'image';
  switch (kind) {
    case 'image':
      return family === 'image';
    case 'gifv':
      return family === 'video' || family === 'image';
    case 'video':
      return family === 'video';
    case 'audio':
      return family === 'audio' || family === 'video';
  }
}

/** Whether a content type may be kept for one of the renditions that share a URL. */
export function accepts(
  contentType: string,
  wanted: readonly { kind: MediaKind; variant: Variant }[],
): boolean {
  const ext = extensionOf(contentType);
  if (!ext) return false;
  const family = FAMILY_OF_EXTENSION.get(ext);
  return wanted.some(({ kind, variant }) => suits(kind, variant, family));
}
