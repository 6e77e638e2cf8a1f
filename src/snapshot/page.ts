/**
 * A listing page's body → its items. Checked by hand rather than with a schema: the objects are
 * written to the file as the server sent them, and copying every status through a validator
 * costs more CPU than the rest of the walk. Only what the walk relies on is checked: an array of
 * objects with string ids.
 */
import { parseJson, toServerError, type HttpRequest, type HttpResponse } from '../http.ts';
import * as z from 'zod/mini';
import type { Json } from './source.ts';

const anyArray = z.array(z.unknown());

export function pageItems(request: HttpRequest, response: HttpResponse): Json[] {
  const items = parseJson(request, response, anyArray);
  for (let index = 0; index < items.length; index++) {
    const item = items[index] as Json | null;
    if (typeof item !== 'object' || item === null || typeof item.id !== 'string') {
      throw toServerError(request, response, {
        description: `unexpected answer: item ${index} has no string id`,
      });
    }
  }
  return items as Json[];
}
