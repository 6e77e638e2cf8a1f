/**
 * `platform: auto`: which family a server belongs to, in at most two requests. nodeinfo first
 * (`/.well-known/nodeinfo` → the linked document → `software.name`); when the server has no
 * nodeinfo, one request to `/api/v1/instance`, which Mastodon-API servers answer with their
 * instance and Misskey-family servers answer with their own error shape. Each request is sent
 * once: a failure is a reason to try the next way, not to repeat it, so two stays the limit.
 */
import * as z from 'zod/mini';
import { NetworkError, oneLine, ServerError, UnsupportedError } from '../errors.ts';
import type { Http } from '../http.ts';
import { ANYWEB_INSTANCE, type Platform } from '../config.ts';
import type { Software } from './provider.ts';

const MASTODON_API = [
  'mastodon',
  'gotosocial',
  'pleroma',
  'akkoma',
  'hometown',
  'glitch-soc',
  'glitchsoc',
  'friendica',
  'pixelfed',
  'takahe',
  'iceshrimp.net',
  'mitra',
  'snac',
  'wildebeest',
];
const MISSKEY_API = [
  'misskey',
  'sharkey',
  'firefish',
  'calckey',
  'iceshrimp',
  'cherrypick',
  'foundkey',
  'meisskey',
  'catodon',
];

const SET_PLATFORM = "Set 'platform' to mastodon, misskey, anyweb or oauth2";

const nodeinfoLinks = z.object({
  links: z.array(z.object({ rel: z.string(), href: z.string() })),
});
const nodeinfo = z.object({
  software: z.object({ name: z.string(), version: z.optional(z.nullable(z.string())) }),
  metadata: z.optional(
    z.nullable(
      z.object({
        upstream: z.optional(z.nullable(z.object({ name: z.optional(z.string()) }))),
      }),
    ),
  ),
});
const mastodonInstance = z.object({
  version: z.string(),
  uri: z.optional(z.string()),
  domain: z.optional(z.string()),
});

export interface Detection {
  platform: Platform;
  software?: Software;
}

export function platformOfSoftware(name: string): Platform | undefined {
  const lower = name.toLowerCase();
  if (MASTODON_API.includes(lower)) return 'mastodon';
  if (MISSKEY_API.includes(lower)) return 'misskey';
  return undefined;
}

export async function detectPlatform(http: Http, instance: URL): Promise<Detection> {
  if (instance.origin === new URL(ANYWEB_INSTANCE).origin) {
    return { platform: 'anyweb', software: { name: 'anyweb' } };
  }
  const tried: string[] = [];
  const wellKnown = new URL('/.well-known/nodeinfo', instance);
  let links: z.infer<typeof nodeinfoLinks> | undefined;
  try {
    ({ data: links } = await http.json(
      { method: 'GET', url: wellKnown, maxAttempts: 1 },
      nodeinfoLinks,
    ));
  } catch (error) {
    if (!isAnswerOrRefusal(error)) throw error;
    tried.push(`${wellKnown.pathname} (${shortReason(error)})`);
  }

  if (links) {
    const href = pickNodeinfo(links.links);
    if (!href) {
      tried.push(`${wellKnown.pathname} (no nodeinfo 2.x link)`);
    } else {
      const documentUrl = new URL(href, wellKnown);
      // Two requests are spent by now: a broken document ends detection rather than costing more.
      const { data } = await http
        .json({ method: 'GET', url: documentUrl, maxAttempts: 1 }, nodeinfo)
        .catch((error: unknown) => {
          if (!isAnswerOrRefusal(error)) throw error;
          throw new UnsupportedError(
            `Could not tell which server ${instance.origin} runs; tried ${wellKnown.pathname} and ` +
              `${documentUrl.pathname} (${shortReason(error)}). ${SET_PLATFORM}`,
          );
        });
      // The server's own words, shown in the log and outputs: one short line each.
      const software = {
        name: oneLine(data.software.name.toLowerCase(), 60),
        version: data.software.version ? oneLine(data.software.version, 60) : undefined,
      };
      const upstream = data.metadata?.upstream?.name;
      const platform =
        platformOfSoftware(software.name) ?? (upstream ? platformOfSoftware(upstream) : undefined);
      if (platform) return { platform, software };
      throw new UnsupportedError(
        `${instance.origin} runs '${software.name}', which fedi-token does not recognise. ` +
          "Set 'platform' to mastodon (Mastodon API), misskey (Misskey API) or oauth2 if it speaks one of them",
      );
    }
  }

  // No usable nodeinfo: one request that both API families answer in their own way.
  const instanceUrl = new URL('/api/v1/instance', instance);
  const response = await http
    .send({
      method: 'GET',
      url: instanceUrl,
      accept: [400, 401, 403, 404, 405],
      maxAttempts: 1,
    })
    .catch((error: unknown) => {
      if (!isAnswerOrRefusal(error)) throw error;
      tried.push(`${instanceUrl.pathname} (${shortReason(error)})`);
      return undefined;
    });
  if (response) {
    const body = safeJson(response.text);
    if (response.status === 200) {
      const parsed = z.safeParse(mastodonInstance, body);
      if (parsed.success) {
        const software = softwareFromVersion(parsed.data.version);
        // Sharkey serves a Mastodon-compatible API too, but its own is the Misskey one.
        return { platform: platformOfSoftware(software.name) ?? 'mastodon', software };
      }
    }
    // Misskey answers any unknown /api/ path, whatever the method, with 404
    // {error:{message, code:'UNKNOWN_API_ENDPOINT', id, kind}} (ApiServerService's catch-all route).
    if (isMisskeyError(body)) return { platform: 'misskey', software: { name: 'misskey' } };
    tried.push(`${instanceUrl.pathname} (HTTP ${response.status}, not a Mastodon or Misskey API)`);
  }
  throw new UnsupportedError(
    `Could not tell which server ${instance.origin} runs; tried ${tried.join(', ')}. ` +
      SET_PLATFORM,
  );
}

function pickNodeinfo(links: { rel: string; href: string }[]): string | undefined {
  const versions = ['2.1', '2.0'];
  for (const version of versions) {
    const link = links.find(
      (l) => l.rel === `http://nodeinfo.diaspora.software/ns/schema/${version}`,
    );
    if (link) return link.href;
  }
  return links.find((l) => l.rel.includes('nodeinfo.diaspora.software/ns/schema/2'))?.href;
}

/**
 * Mastodon-API servers report `4.3.0` or, copying it, `2.7.2 (compatible; Pleroma 2.6.0)`;
 * Sharkey adds a clause after its version: `3.0.0 (compatible; Sharkey 2025.5.2; like Akkoma)`.
 */
function softwareFromVersion(version: string): Software {
  const compatible = /\(compatible; ([^\s)]+) ([^;)]+)[;)]/.exec(version);
  if (compatible?.[1]) return { name: compatible[1].toLowerCase(), version: compatible[2] };
  return { name: 'mastodon', version };
}

function isMisskeyError(body: unknown): boolean {
  const error = (body as { error?: { code?: unknown; id?: unknown } } | null)?.error;
  return (
    typeof error === 'object' && error !== null && typeof error.code === 'string' && 'id' in error
  );
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** A server that answered with an error, or refused, is a reason to try the next way. */
function isAnswerOrRefusal(error: unknown): error is ServerError | NetworkError {
  return (
    error instanceof ServerError ||
    (error instanceof NetworkError &&
      (error.failure === 'refused' || error.failure === 'too-large'))
  );
}

function shortReason(error: ServerError | NetworkError): string {
  return error instanceof ServerError ? `HTTP ${error.status}` : error.failure;
}
