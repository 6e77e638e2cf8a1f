/**
 * Client-side filters, applied to every item whatever the server was asked: servers ignore
 * parameters they do not know (Mastodon has no `only_public`), and with the author's own token
 * they return private posts and direct messages. A post the user did not choose to publish must
 * never reach the file.
 */

/** Widest visibility kept, narrowest first: each level keeps the ones before it. */
export const VISIBILITIES = ['public', 'unlisted', 'private', 'direct'] as const;
export type Visibility = (typeof VISIBILITIES)[number];

export type FilterReason = 'visibility' | 'reply' | 'reblog' | 'media' | 'duplicate';

export interface FilterOptions {
  /** Whose snapshot this is: replies to this account are the user's own threads. */
  accountId: string;
  visibility: Visibility;
  excludeReplies: boolean;
  excludeReblogs: boolean;
  onlyMedia: boolean;
}

/** The few fields the filters read, the same for a Mastodon Status and a Misskey Note. */
export interface ItemFacts {
  id: string;
  createdAt: string | undefined;
  visibility: Visibility | undefined;
  replyToAccount: string | null | undefined;
  isReply: boolean;
  isReblog: boolean;
  hasMedia: boolean;
}

export type Family = 'mastodon' | 'misskey';

/** Pleroma adds `local` (unlisted-like) and `list` (addressed, like direct). */
const MASTODON_VISIBILITY: Record<string, Visibility> = {
  public: 'public',
  unlisted: 'unlisted',
  local: 'unlisted',
  private: 'private',
  direct: 'direct',
  list: 'direct',
};
/**
 * Misskey's four levels, each the same audience as a Mastodon one: Misskey 13.9.2 addresses a
 * `home` note to the followers with Public in cc (Mastodon's unlisted), a `followers` note to the
 * followers only (private), and a `specified` note to the mentioned users only (direct)
 * (packages/backend/src/core/activitypub/ApRendererService.ts, renderNote). The `visibility`
 * input takes these names too.
 */
export const MISSKEY_VISIBILITY = {
  public: 'public',
  home: 'unlisted',
  followers: 'private',
  specified: 'direct',
} as const satisfies Record<string, Visibility>;

type Json = Record<string, unknown>;

function str(value: unknown): string | undefined {
  return typeof value === 'string' ? value : undefined;
}

function nonEmptyArray(value: unknown): boolean {
  return Array.isArray(value) && value.length > 0;
}

export function factsOf(family: Family, item: Json): ItemFacts {
  const id = str(item.id) ?? '';
  if (family === 'mastodon') {
    // Mastodon keeps in_reply_to_account_id (and its `reply` flag, which its exclude_replies
    // reads) when the parent is deleted and in_reply_to_id becomes null: either marks a reply.
    const present = (value: unknown) => value !== null && value !== undefined;
    return {
      id,
      createdAt: str(item.created_at),
      visibility: MASTODON_VISIBILITY[str(item.visibility) ?? ''],
      isReply: present(item.in_reply_to_id) || present(item.in_reply_to_account_id),
      replyToAccount: str(item.in_reply_to_account_id),
      isReblog: item.reblog !== null && item.reblog !== undefined,
      hasMedia: nonEmptyArray(item.media_attachments),
    };
  }
  const reply = item.reply as Json | null | undefined;
  // Misskey's own isQuote (misc/is-renote.ts, 2025.10.2; Sharkey's is the same): a renote with
  // text, a content warning, a reply, a poll or files is a quote, the user's own post.
  const present = (value: unknown) => value !== null && value !== undefined;
  const pureRenote =
    typeof item.renoteId === 'string' &&
    !present(item.text) &&
    !present(item.cw) &&
    !present(item.replyId) &&
    !present(item.poll) &&
    !nonEmptyArray(item.fileIds) &&
    !nonEmptyArray(item.files);
  return {
    id,
    createdAt: str(item.createdAt),
    visibility: (MISSKEY_VISIBILITY as Record<string, Visibility>)[str(item.visibility) ?? ''],
    isReply: typeof item.replyId === 'string',
    replyToAccount: str(reply?.userId),
    isReblog: pureRenote,
    hasMedia: nonEmptyArray(item.fileIds) || nonEmptyArray(item.files),
  };
}

/**
 * Which family wrote an item, from its shape: a Misskey Note has `userId` and `createdAt`, a
 * Mastodon Status `account` and `created_at`. Undefined when it is neither.
 */
export function familyOfItem(item: Json): Family | undefined {
  if (typeof item.userId === 'string' && typeof item.createdAt === 'string') return 'misskey';
  const account = item.account;
  if (typeof account === 'object' && account !== null && typeof item.created_at === 'string') {
    return 'mastodon';
  }
  return undefined;
}

/** Why an item is left out, or undefined when it is kept. */
export function rejectReason(facts: ItemFacts, options: FilterOptions): FilterReason | undefined {
  const allowed = VISIBILITIES.indexOf(options.visibility);
  // An unknown visibility is treated as the most private: it is never published by accident.
  // (Ranked by indexOf, so a name that reaches an object's prototype, `constructor`, is unknown.)
  const rank = facts.visibility === undefined ? -1 : VISIBILITIES.indexOf(facts.visibility);
  if (rank < 0 || rank > allowed) {
    return 'visibility';
  }
  if (options.excludeReplies && facts.isReply && facts.replyToAccount !== options.accountId) {
    return 'reply';
  }
  if (options.excludeReblogs && facts.isReblog) return 'reblog';
  if (options.onlyMedia && !facts.hasMedia) return 'media';
  return undefined;
}

/**
 * Ids compared as the servers order them: Mastodon snowflakes are decimal numbers of varying
 * length; GoToSocial ULIDs, Pleroma flake ids and Misskey aid(x) are fixed-length and sort as text.
 */
export function compareIds(a: string, b: string): number {
  if (a.length !== b.length && /^\d+$/.test(a) && /^\d+$/.test(b)) return a.length - b.length;
  return a < b ? -1 : a > b ? 1 : 0;
}
