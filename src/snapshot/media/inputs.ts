/**
 * The media inputs of the snapshot action. Read through the same InputSource as the rest of its
 * inputs (src/inputs.ts stays the only reader of core.getInput) and always checked, so a typo in
 * `media-types` fails the step even before `media-path` is set.
 */
import { resolve } from 'node:path';
import { InputError, oneLine } from '../../errors.ts';
import { readEnum, type InputSource } from '../../inputs.ts';
import { MEDIA_KINDS, MEDIA_SIZES, type MediaKind, type Variant } from './types.ts';

export interface MediaConfig {
  /** The folder, relative to the working directory as given. */
  path: string;
  variants: readonly Variant[];
  kinds: ReadonlySet<MediaKind>;
  /** Largest file kept, in bytes. */
  maxBytes: number;
}

/** GitHub warns about files above 50 MiB in a push and refuses them above 100 MiB. */
export const DEFAULT_MAX_BYTES = 50 * 1024 * 1024;
const LARGEST_CAP = 2 * 1024 * 1024 * 1024;
const UNITS: Record<string, number> = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 };

export function readMediaInputs(
  source: InputSource,
  snapshotPath: string,
): MediaConfig | undefined {
  const size = readEnum(source, 'media-size', MEDIA_SIZES, 'original');
  const kinds = readKinds(source);
  const maxBytes = readByteSize(source, 'media-max-bytes');
  const path = source.get('media-path').trim();
  if (path === '') return undefined;
  if (path.includes('\0'))
    throw new InputError('media-path', 'must name a folder, e.g. site/media');
  if (resolve(path) === resolve(snapshotPath)) {
    throw new InputError(
      'media-path',
      `is the snapshot file itself; name a folder, e.g. site/media`,
    );
  }
  const variants: Variant[] = size === 'both' ? ['original', 'preview'] : [size];
  return { path, variants, kinds, maxBytes };
}

/** The options that only `media-path` gives an effect, with their action.yml defaults. */
const PATH_OPTIONS: Record<string, string> = {
  'media-size': 'original',
  'media-types': '',
  'media-max-bytes': '50m',
};

/** A warning for each media option given a value of its own while `media-path` is empty. */
export function mediaInputsWithoutPath(source: InputSource): string[] {
  if (source.get('media-path').trim() !== '') return [];
  return Object.entries(PATH_OPTIONS)
    .filter(([name, fallback]) => {
      const value = source.get(name).trim().toLowerCase();
      return value !== '' && value !== fallback;
    })
    .map(([name]) => `Input '${name}' has no effect without 'media-path'; it was ignored`);
}

/** A list separated by commas, spaces or new lines; empty means every kind. */
function readKinds(source: InputSource): ReadonlySet<MediaKind> {
  const words = source
    .get('media-types')
    .toLowerCase()
    .split(/[\s,]+/)
    .filter(Boolean);
  if (words.length === 0) return new Set(MEDIA_KINDS);
  const unknown = words.find((word) => !(MEDIA_KINDS as readonly string[]).includes(word));
  if (unknown !== undefined) {
    throw new InputError(
      'media-types',
      `got ${JSON.stringify(oneLine(unknown, 40))}; allowed values: ${MEDIA_KINDS.join(', ')} (a list)`,
    );
  }
  return new Set(words as MediaKind[]);
}

/** Bytes, or a number with a binary unit: 512k, 50M, 50MiB, 1G. */
function readByteSize(source: InputSource, name: string): number {
  const value = source.get(name).trim();
  if (value === '') return DEFAULT_MAX_BYTES;
  const match = /^(\d+)\s*([kmg]?)(?:i?b)?$/i.exec(value);
  const bytes = match ? Number(match[1]) * (UNITS[(match[2] ?? '').toLowerCase()] ?? NaN) : NaN;
  if (!Number.isSafeInteger(bytes) || bytes < 1 || bytes > LARGEST_CAP) {
    throw new InputError(
      name,
      `got ${JSON.stringify(oneLine(value, 40))}; expected a size from 1 byte to 2 GiB: bytes, or a number with k, M or G (binary units), e.g. 50M`,
    );
  }
  return bytes;
}
