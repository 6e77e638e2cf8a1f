/**
 * The snapshot action's inputs → a typed config. Reuses the readers of src/inputs.ts so values are
 * checked the same way as the token action's, and inputs.ts stays the only reader of core.getInput.
 */
import { InputError } from '../errors.ts';
import {
  actionInputs,
  readBoolean,
  readEnum,
  readNumber,
  readUrl,
  type InputSource,
} from '../inputs.ts';
import { MISSKEY_VISIBILITY, VISIBILITIES, type Visibility } from './filter.ts';
import { mediaInputsWithoutPath, readMediaInputs, type MediaConfig } from './media/inputs.ts';

export const SNAPSHOT_PLATFORMS = ['auto', 'mastodon', 'misskey'] as const;
export type SnapshotPlatformInput = (typeof SNAPSHOT_PLATFORMS)[number];
export const MODES = ['incremental', 'full'] as const;
export type Mode = (typeof MODES)[number];

/** Who to snapshot: the token's owner, a name (with or without host) or an account id. */
export type AccountRef =
  { kind: 'self' } | { kind: 'name'; username: string; host?: string } | { kind: 'id'; id: string };

export interface SnapshotConfig {
  instance: URL;
  platform: SnapshotPlatformInput;
  accessToken?: string;
  account: AccountRef;
  count: number;
  excludeReplies: boolean;
  excludeReblogs: boolean;
  onlyMedia: boolean;
  visibility: Visibility;
  path: string;
  mode: Mode;
  timeoutMs: number;
  maxAttempts: number;
  /** Mirror the attachments into a folder (`media-path`); undefined when it is not set. */
  media?: MediaConfig;
  /** Inputs given a value that has no effect in this run, one warning each. */
  inputWarnings: string[];
}

export const MAX_COUNT = 100_000;

export function parseSnapshotInputs(source: InputSource = actionInputs): SnapshotConfig {
  const accessToken = source.get('access-token').trim() || undefined;
  // Mask first: an error about another input must not run before the token is registered.
  if (accessToken) source.mask(accessToken);

  const instance = readUrl(source, 'instance');
  if (!instance) {
    throw new InputError(
      'instance',
      'is required: the server base URL, e.g. https://social.example',
    );
  }
  const account = readAccount(source.get('account'));
  if (account.kind === 'self' && !accessToken) {
    throw new InputError(
      'access-token',
      "is required when 'account' is empty (the snapshot is of the token's owner)",
    );
  }
  const path = source.get('path').trim() || 'statuses.json';
  // Either separator: on Windows `site\` names a folder too.
  if (/[\\/]$/.test(path) || path.includes('\0')) {
    throw new InputError('path', 'must name a file, e.g. site/statuses.json');
  }
  return {
    instance,
    platform: readEnum(source, 'platform', SNAPSHOT_PLATFORMS, 'auto'),
    accessToken,
    account,
    count: readNumber(source, 'count', { min: 1, max: MAX_COUNT, fallback: 200, integer: true }),
    excludeReplies: readBoolean(source, 'exclude-replies', false),
    excludeReblogs: readBoolean(source, 'exclude-reblogs', false),
    onlyMedia: readBoolean(source, 'only-media', false),
    visibility: VISIBILITY_INPUT[readEnum(source, 'visibility', VISIBILITY_NAMES, 'public')],
    path,
    mode: readEnum(source, 'mode', MODES, 'incremental'),
    timeoutMs: readNumber(source, 'timeout-seconds', { min: 1, max: 600, fallback: 30 }) * 1000,
    maxAttempts: readNumber(source, 'max-attempts', {
      min: 1,
      max: 10,
      fallback: 3,
      integer: true,
    }),
    media: readMediaInputs(source, path),
    inputWarnings: mediaInputsWithoutPath(source),
  };
}

/** The `visibility` input: Mastodon's names, and Misskey's for the same levels. */
const VISIBILITY_INPUT = {
  unlisted: 'unlisted',
  private: 'private',
  direct: 'direct',
  ...MISSKEY_VISIBILITY,
} as const satisfies Record<string, Visibility>;
const VISIBILITY_NAMES = [
  ...VISIBILITIES,
  'home',
  'followers',
  'specified',
] as const satisfies readonly (keyof typeof VISIBILITY_INPUT)[];

const NAME = /^@?([A-Za-z0-9_.-]+)(?:@([A-Za-z0-9.-]+(?::\d+)?))?$/;
/** Mastodon snowflakes are digits; GoToSocial ids are 26-character ULIDs. */
const ID = /^(\d+|[0-9A-HJKMNP-TV-Z]{26})$/;

/**
 * `@user@host` and `@user` are names; a bare value is an id when it has the shape of one (digits,
 * a ULID) and a name otherwise. Misskey and Pleroma ids look like names, so both sources try a
 * bare name that no account has as an id before giving up.
 */
export function readAccount(raw: string): AccountRef {
  const value = raw.trim();
  if (value === '') return { kind: 'self' };
  if (!value.startsWith('@') && ID.test(value)) return { kind: 'id', id: value };
  const match = NAME.exec(value);
  if (!match?.[1]) {
    throw new InputError(
      'account',
      `got ${JSON.stringify(value.slice(0, 60))}; expected @user@host, user, or an account id`,
    );
  }
  return match[2]
    ? { kind: 'name', username: match[1], host: match[2].toLowerCase() }
    : { kind: 'name', username: match[1] };
}
