/** What the snapshot walk needs from a server family, whichever API it speaks. */
import type { Family } from './filter.ts';

export type Json = Record<string, unknown>;

export interface TimelineSource {
  readonly family: Family;
  /** Items per request this source asks for (the server's cap, or our choice where none). */
  readonly pageSize: number;
  /** The account's id, resolved from the token, a name or an id. */
  resolveAccount(): Promise<string>;
  /** Who wrote an item already in the file: the author's id and user name. */
  authorOf(item: Json): { id?: string; username?: string };
  /**
   * Pages newest first, from the top down, for both modes. The caller stops iterating when it
   * has enough, or (incremental) when it meets a post it already holds.
   */
  pagesDown(accountId: string): AsyncGenerator<Json[]>;
}
