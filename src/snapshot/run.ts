/**
 * Config → snapshot file. Finds the platform and account, walks the timeline from the top
 * (`full`: to `count`; `incremental`: to the first post the file holds), filters every item
 * client-side, and writes the file atomically. Knows nothing of @actions/core.
 */
import { InputError, isExpectedError, NetworkError, UnsupportedError } from '../errors.ts';
import { Http } from '../http.ts';
import { detectPlatform } from '../providers/detect.ts';
import type { Software } from '../providers/provider.ts';
import type { SnapshotConfig } from './config.ts';
import { familyOfItem, type Family, type FilterOptions, type FilterReason } from './filter.ts';
import { incremental } from './incremental.ts';
import type { Thumbnail } from './media/attachments.ts';
import { MediaMirror, type MediaOutcome } from './media/mirror.ts';
import { flavourOf, mastodonSource } from './mastodon-source.ts';
import { misskeySource } from './misskey-source.ts';
import type { Json, TimelineSource } from './source.ts';
import { firstItem, hashFile } from './store.ts';
import { full, Walk, type Outcome } from './walk.ts';

export interface SnapshotRuntime {
  mask(secret: string): void;
  log(message: string): void;
  /** Problems that do not fail the step (a media file that could not be mirrored). */
  warn?(message: string): void;
  http?: Http;
}

export interface SnapshotResult extends Outcome {
  path: string;
  platform: Family;
  /** Server software, as detected (`mastodon`, `gotosocial`, `misskey`, …), when known. */
  software?: Software;
  accountId: string;
  mode: SnapshotConfig['mode'];
  /** Items looked at, duplicates and filtered ones included. */
  fetched: number;
  filtered: Record<FilterReason, number>;
  /** Requests to the server's API; media requests are counted in `media`. */
  requests: number;
  /** The new posts' preview pictures, as the server links them (at most 12). */
  thumbnails: Thumbnail[];
  /** The media mirror's counts, when `media-path` is set. */
  media?: MediaOutcome;
}

export async function runSnapshot(
  config: SnapshotConfig,
  runtime: SnapshotRuntime,
): Promise<SnapshotResult> {
  if (config.accessToken) runtime.mask(config.accessToken);
  // A long walk on Mastodon outruns its paging limit (300 requests with a cursor per 15 minutes,
  // Rack::Attack throttle_authenticated_paging, v4.5.15): waiting for the window is the only way
  // a full walk of more than 12 000 statuses ever completes, since a failed one keeps nothing.
  const http =
    runtime.http ??
    new Http({
      timeoutMs: config.timeoutMs,
      maxAttempts: config.maxAttempts,
      maxRetryWaitMs: PAGING_WINDOW_MS + 60_000,
      notify: runtime.log,
    });
  const startRequests = http.requestCount;
  // The newest saved item, read before any request: it names the API and the account, and a
  // file that does not start as a JSON array of posts fails here at once. The rest of the file
  // is checked by the incremental walk's first pass, before its first listing request (after
  // detection or an account lookup, when either is needed).
  const newest = config.mode === 'incremental' ? await firstItem(config.path) : undefined;
  // The media folder's record too: one that belongs to another snapshot fails here.
  const mirror = config.media && (await MediaMirror.open(config.path, config.media));
  const initialHash = mirror && (await hashFile(config.path));

  let family: Family;
  let software: Software | undefined;
  const savedFamily = newest && familyOfItem(newest);
  if (config.platform !== 'auto') {
    family = config.platform;
    if (savedFamily && savedFamily !== family) {
      throw new InputError(
        'platform',
        `is ${family}, but ${config.path} holds ${savedFamily} items${REPLACE}`,
      );
    }
    // A walk from the top with the server unknown asks for 40 a page and filters everything
    // here; knowing GoToSocial (100 a page, only_public) or Pleroma halves a long walk. Without a
    // saved item the walk is a long one, so the nodeinfo requests pay for themselves.
    if (family === 'mastodon' && !newest) software = await probeSoftware(http, config, runtime);
  } else if (savedFamily) {
    // The file says which API wrote it; the server's exact software is not needed, because
    // without it the walk asks only for what every server of the family does right (the
    // "unknown" flavour) and filters the rest here. Nothing new then costs one request.
    family = savedFamily;
    runtime.log(`${config.path} holds ${family} items: server detection skipped`);
  } else {
    const detected = await detectPlatform(http, config.instance);
    if (detected.platform !== 'mastodon' && detected.platform !== 'misskey') {
      throw new UnsupportedError(
        `${config.instance.origin} is ${detected.platform}, which has no statuses to snapshot`,
      );
    }
    family = detected.platform;
    software = detected.software;
    runtime.log(`Detected ${software?.name ?? family} at ${config.instance.origin}`);
  }

  const common = {
    http,
    instance: config.instance,
    accessToken: config.accessToken,
    account: config.account,
    excludeReplies: config.excludeReplies,
    excludeReblogs: config.excludeReblogs,
    onlyMedia: config.onlyMedia,
  };
  const source: TimelineSource =
    family === 'misskey'
      ? misskeySource(common)
      : mastodonSource({
          ...common,
          flavour: flavourOf(software?.name),
          visibility: config.visibility,
        });

  // An incremental run reads the account from the file it extends: nothing new costs one request.
  const accountId = accountFromFile(config, source, newest) ?? (await source.resolveAccount());
  const author = newest && source.authorOf(newest).id;
  if (author !== undefined && author !== accountId) {
    // Merging would mix two accounts' posts in one file, and the walk would never meet a post
    // the file holds.
    throw new InputError(
      'account',
      `names account ${accountId}, but ${config.path} holds the posts of account ${author}${REPLACE}`,
    );
  }
  const filter: FilterOptions = {
    accountId,
    visibility: config.visibility,
    excludeReplies: config.excludeReplies,
    excludeReblogs: config.excludeReblogs,
    onlyMedia: config.onlyMedia,
  };
  const walk = new Walk(family, filter);
  const outcome = newest
    ? await incremental(config, source, accountId, walk)
    : await full(config, source, accountId, walk);
  const requests = http.requestCount - startRequests;

  // Media first, then the JSON that points at it (mirror.ts); `changed` compares the final file
  // with the one the run started from, since the walk's file is rewritten once more.
  let media: MediaOutcome | undefined;
  if (mirror) {
    media = await mirror.sync({
      family,
      http,
      allowHttp: config.instance.protocol === 'http:',
      runtime: { log: runtime.log, warn: runtime.warn ?? runtime.log },
    });
    if (outcome.changed || media.rewrote) {
      outcome.changed = (await hashFile(config.path)) !== initialHash;
    }
  }

  return {
    path: config.path,
    platform: family,
    software,
    accountId,
    mode: config.mode,
    ...outcome,
    fetched: walk.fetched,
    filtered: walk.filtered,
    requests,
    thumbnails: walk.thumbnails,
    media,
  };
}

/**
 * The software behind a Mastodon API, from nodeinfo, or undefined when the server does not say:
 * the walk then goes on as for a server not known, so a refusal here never fails the step.
 */
async function probeSoftware(
  http: Http,
  config: SnapshotConfig,
  runtime: SnapshotRuntime,
): Promise<Software | undefined> {
  try {
    const { platform, software } = await detectPlatform(http, config.instance);
    runtime.log(`Detected ${software?.name ?? platform} at ${config.instance.origin}`);
    return platform === 'mastodon' ? software : undefined;
  } catch (error) {
    if (!isExpectedError(error)) throw error;
    // A server that took the request and never answered would stall the walk too, once per
    // attempt: ending here keeps the step within one timeout (issue 12).
    if (error instanceof NetworkError && error.failure === 'timeout') throw error;
    // detectPlatform's own message ends by asking for 'platform', which this run has.
    const why = error instanceof UnsupportedError ? 'it does not say' : error.message;
    runtime.log(
      `Could not tell which Mastodon-API server ${config.instance.origin} runs (${why}); ` +
        'asking only for what every one of them does right',
    );
    return undefined;
  }
}

const REPLACE = "; set 'mode: full' to replace the file, or choose another 'path'";
const PAGING_WINDOW_MS = 15 * 60_000;

/**
 * The account id from the newest item of the existing file, when the input names that same
 * account: the token's owner (the file is theirs), the same id, or the same local user name
 * (or the author's id where a name was expected: Misskey and Pleroma ids look like names).
 */
function accountFromFile(
  config: SnapshotConfig,
  source: TimelineSource,
  newest: Json | undefined,
): string | undefined {
  if (!newest) return undefined;
  const author = source.authorOf(newest);
  const { account } = config;
  if (account.kind === 'self') return author.id;
  if (account.kind === 'id') return account.id;
  if (!account.host && account.username === author.id) return author.id;
  const local = !account.host || account.host === config.instance.host.toLowerCase();
  return local && author.username?.toLowerCase() === account.username.toLowerCase()
    ? author.id
    : undefined;
}
