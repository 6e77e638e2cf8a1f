/**
 * A listing page's body → its items. Checked by hand rather than with a schema: the objects are
 * written to the file as the server sent them, and copying every status through a validator
 * costs more CPU than the rest of the walk. Only what the walk relies on is checked: an array of
 * objects with string ids, no number where the filters read an id, and no integer too large to
 * survive JSON.parse (it would be written to the file with other digits than the server sent).
 */
import { parseJson, toServerError, type HttpRequest, type HttpResponse } from '../http.ts';
import * as z from 'zod/mini';
import type { Json } from './source.ts';

const anyArray = z.array(z.unknown());

/** Ids the walk reads, in a Mastodon Status and a Misskey Note (and what they embed). */
const ID_FIELDS = [
  ['account', 'id'],
  ['in_reply_to_id'],
  ['in_reply_to_account_id'],
  ['reblog', 'id'],
  ['reblog', 'account', 'id'],
  ['userId'],
  ['replyId'],
  ['renoteId'],
  ['reply', 'userId'],
] as const;

export function pageItems(request: HttpRequest, response: HttpResponse): Json[] {
  const items = parseJson(request, response, anyArray);
  const refuse = (index: number, problem: string) =>
    toServerError(request, response, {
      description: `unexpected answer: item ${index} ${problem}`,
    });
  for (let index = 0; index < items.length; index++) {
    const item = items[index] as Json | null;
    if (typeof item !== 'object' || item === null || typeof item.id !== 'string') {
      throw refuse(index, 'has no string id');
    }
    for (const path of ID_FIELDS) {
      if (typeof valueAt(item, path) === 'number') {
        throw refuse(index, `has a number for ${path.join('.')}; ids must be strings`);
      }
    }
    const unsafe = unsafeIntegerPath(item);
    if (unsafe !== undefined) {
      throw refuse(index, `has a number too large to keep exactly at ${unsafe || '(item)'}`);
    }
  }
  return items as Json[];
}

function valueAt(item: Json, path: readonly string[]): unknown {
  let value: unknown = item;
  for (const key of path) {
    if (typeof value !== 'object' || value === null) return undefined;
    value = (value as Json)[key];
  }
  return value;
}

/** Where an integer beyond 2^53 sits in `value` (JSON.parse has already changed its digits). */
function unsafeIntegerPath(value: unknown): string | undefined {
  if (typeof value === 'number') {
    return Number.isInteger(value) && !Number.isSafeInteger(value) ? '' : undefined;
  }
  if (typeof value !== 'object' || value === null) return undefined;
  for (const key in value) {
    const inner = unsafeIntegerPath((value as Json)[key]);
    if (inner !== undefined) return inner ? `${key}.${inner}` : key;
  }
  return undefined;
}
