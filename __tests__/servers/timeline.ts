/**
 * A loopback server that lists one account's statuses the way each server family does
 * (PROTOCOLS.md, checked against the servers' sources): Mastodon, GoToSocial and Pleroma through
 * the Mastodon API, Misskey through `POST /api/users/notes` (its paths and filters, Misskey's and
 * Sharkey's, in misskey-notes.ts). Generated timelines hold replies to
 * others, self-replies, boosts/renotes, media and every visibility. Faults can be injected into
 * the listing requests (a 500, a 503 or a reset from the nth request on), and `repeat` makes pages
 * overlap as they do when posts arrive while a client is paging.
 *
 * Erasable TypeScript only, importing nothing but node: Node 24 runs it directly (benchmark, demo).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  LeakyBucket,
  MisskeyUserNotes,
  rateLimitHeaders,
  readNotesParams,
  type ApiFailure,
  type NoteRow,
  type UserNotesOptions,
} from './misskey-notes.ts';

export type Flavour = 'mastodon' | 'gotosocial' | 'pleroma' | 'misskey';
type Visibility = 'public' | 'unlisted' | 'private' | 'direct' | 'list';
type Json = Record<string, unknown>;

export interface Post {
  index: number;
  id: string;
  createdAt: string;
  visibility: Visibility;
  reply: 'none' | 'self' | 'other';
  replyToId: string | null;
  /** Mentions another account: every reply to others, and every other self-reply. */
  mention: boolean;
  reblog: boolean;
  media: boolean;
  /** A reply whose parent was deleted (see TimelineServer.orphan). */
  orphaned?: boolean;
}

export interface Fault {
  /** The first listing request (1-based) that fails. */
  at: number;
  kind:
    | '500'
    | '503'
    | 'reset'
    | 'numeric-ids'
    | 'numeric-nested-ids'
    | 'huge-number'
    // Answers normally, but as if GoToSocial did not know `only_public`.
    | 'ignore-only-public'
    // Never answers: the client is stopped mid-walk.
    | 'stall';
  /** How many requests fail from `at` on; default: all of them. */
  times?: number;
}

/**
 * Realistic attachments on a separate media origin (servers/media.ts). Without one, a post with
 * media carries one bare image attachment on the instance, as before.
 */
export interface MediaCatalog {
  /** A post's `media_attachments`, in the shape `flavour` serializes them. */
  mastodonAttachments(post: Post, flavour: Flavour, instanceUrl: string): Json[];
  /** A note's `files`: packed drive files. */
  misskeyFiles(post: Post): Json[];
  /** A post's content warning, '' for none. */
  contentWarning(post: Post): string;
  /** Media routes on the instance itself (GoToSocial's fileserver); true when it answered. */
  serveInstance(req: IncomingMessage, res: ServerResponse, url: URL): boolean;
}

export interface TimelineServerOptions {
  flavour: Flavour;
  media?: MediaCatalog;
  /** Statuses generated up front; default 1 200. */
  posts?: number;
  token?: string;
  username?: string;
  /** GoToSocial writes its configured host into Link URLs; default one that does not resolve. */
  linkHost?: string;
  /** Misskey flavour: which server's users/notes (Misskey or Sharkey), fanout on or off. */
  misskey?: UserNotesOptions;
}

export interface RecordedRequest {
  method: string;
  path: string;
  query: Record<string, string | string[]>;
  body?: Json;
  authorized: boolean;
}

const START = Date.parse('2024-01-01T00:00:00Z');
const STEP_MS = 37 * 60 * 1000;
const OTHER_ACCOUNT = 'other-account';
const BOB_URL = 'https://elsewhere.example/@bob';
const CROCKFORD = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
const BASE62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

function encode(value: bigint, alphabet: string, width: number): string {
  const base = BigInt(alphabet.length);
  let out = '';
  for (let v = value; v > 0n; v /= base) out = alphabet[Number(v % base)] + out;
  return out.padStart(width, alphabet[0]).slice(-width);
}

/** Ids in each family's own format, increasing with time. */
function makeId(flavour: Flavour, ms: number, index: number): string {
  const seq = BigInt(index % 65536);
  switch (flavour) {
    case 'mastodon': // snowflake: milliseconds << 16 | sequence, far above 2^53
      return ((BigInt(ms) << 16n) | seq).toString();
    case 'gotosocial': // ULID: 10 characters of time, 16 of randomness (here derived)
      return encode(BigInt(ms), CROCKFORD, 10) + encode(BigInt(index) * 7919n, CROCKFORD, 16);
    case 'pleroma': // flake id: fixed width, sorts as text
      return encode(BigInt(ms), BASE62, 9) + encode(BigInt(index) * 104729n, BASE62, 9);
    case 'misskey': // aidx: base36 time, then node and counter
      return (
        encode(BigInt(ms), '0123456789abcdefghijklmnopqrstuvwxyz', 8) +
        'k3x9' +
        encode(seq, '0123456789abcdefghijklmnopqrstuvwxyz', 4)
      );
  }
}

const MISSKEY_VISIBILITY = {
  public: 'public',
  unlisted: 'home',
  private: 'followers',
  direct: 'specified',
  list: 'specified',
} as const;

/**
 * Misskey flavour: some notes are quotes with a content warning and no text. Misskey's isQuote
 * (misc/is-renote.ts) calls them quotes, the user's own posts, not renotes.
 */
export function isCwQuote(post: Post): boolean {
  return post.reply === 'none' && !post.reblog && post.index % 23 === 9;
}

function compareIds(a: string, b: string): number {
  if (a.length !== b.length && /^\d+$/.test(a) && /^\d+$/.test(b)) return a.length - b.length;
  return a < b ? -1 : a > b ? 1 : 0;
}

export class TimelineServer {
  readonly flavour: Flavour;
  readonly token: string;
  readonly username: string;
  readonly accountId: string;
  readonly linkHost: string;
  readonly media: MediaCatalog | undefined;
  readonly posts: Post[] = [];
  readonly requests: RecordedRequest[] = [];
  fault: Fault | undefined;
  /**
   * Each page below a cursor (`max_id`, `untilId`) also repeats this many posts from just above
   * it, the cursor's own post included: what a client sees when the server's cursor slips.
   */
  repeat = 0;
  /**
   * A fault: false answers nodeinfo with 404, as a server behind a proxy that does not pass
   * /.well-known on. Every real family serves it (PROTOCOLS.md).
   */
  nodeinfo = true;
  /**
   * Mastodon: the account is suspended. Lookups still find it, marked `suspended: true`
   * (REST::AccountSerializer), its statuses list is empty (Accounts::StatusesController
   * load_statuses: `@account.unavailable? ? []`), and its own token gets 403 on
   * verify_credentials (Api::BaseController#require_not_suspended!; all v4.5.15).
   */
  suspended = false;
  /**
   * Mastodon's Rack::Attack `throttle_authenticated_paging` (300 per 15 minutes per user, or per
   * address without one; config/initializers/rack_attack.rb v4.5.15): requests that carry
   * max_id, min_id or since_id, counted in fixed windows, throttled ones included. A test sets a
   * small limit and window.
   */
  pagingLimit: { limit: number; periodSeconds: number } | undefined;
  private readonly pagingWindows = new Map<number, number>();
  url = '';
  /** Misskey flavour: the users/notes model (fanout lists, database fallback, fork). */
  readonly userNotes: MisskeyUserNotes;
  private listRequests = 0;
  // Sharkey's per-caller leaky buckets for users/notes.
  private readonly buckets = new Map<string, LeakyBucket>();
  /**
   * Sharkey's bucket clock: real time, or `paced` for tests that must not depend on how fast the
   * machine is: 10 ms per request, plus the Retry-After a 429 asked for (the test checks the
   * client really waited, from `sharkeyAnswers`).
   */
  sharkeyClock: 'real' | 'paced' = 'real';
  private pacedNow = Date.now();
  private pacedOwed = 0;
  /** Sharkey users/notes answers: when (real time) and whether the bucket refused. */
  readonly sharkeyAnswers: { at: number; blocked: boolean }[] = [];
  // Counted apart from `posts`: a deleted post's number (and so its id) is never reused.
  private published = 0;
  private readonly server: Server;

  constructor(options: TimelineServerOptions) {
    this.flavour = options.flavour;
    this.token = options.token ?? `tl-token-${Math.random().toString(36).slice(2)}`;
    this.username = options.username ?? 'alice';
    this.accountId = makeId(this.flavour, START - 86_400_000, 0);
    this.linkHost = options.linkHost ?? 'gts.example.invalid';
    this.media = options.media;
    this.userNotes = new MisskeyUserNotes(options.misskey);
    this.addPosts(options.posts ?? 1200);
    this.server = createServer((req, res) => {
      this.handle(req, res).catch(() => {
        if (!res.headersSent) this.send(res, 500, { error: 'internal' });
      });
    });
  }

  static async start(options: TimelineServerOptions): Promise<TimelineServer> {
    const server = new TimelineServer(options);
    await new Promise<void>((resolve) => server.server.listen(0, '127.0.0.1', resolve));
    server.url = `http://127.0.0.1:${(server.server.address() as AddressInfo).port}`;
    return server;
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  /** Publish `n` newer posts, as the user would between two runs. */
  addPosts(n: number): Post[] {
    const added: Post[] = [];
    for (let k = 0; k < n; k++) {
      const index = ++this.published;
      const ms = START + index * STEP_MS;
      let visibility: Visibility = 'public';
      if (index % 19 === 2) visibility = 'direct';
      else if (index % 17 === 1) visibility = 'private';
      else if (index % 6 === 4) visibility = 'unlisted';
      else if (this.flavour === 'pleroma' && index % 97 === 50) visibility = 'list';
      const reply = index % 7 === 3 ? 'other' : index % 11 === 5 ? 'self' : 'none';
      const previous = this.posts[this.posts.length - 1];
      const post: Post = {
        index,
        id: makeId(this.flavour, ms, index),
        createdAt: new Date(ms).toISOString(),
        visibility,
        reply,
        replyToId:
          reply === 'self' && previous
            ? previous.id
            : reply === 'other'
              ? makeId(this.flavour, ms - 1000, index + 500_000)
              : null,
        mention: reply === 'other' || (reply === 'self' && index % 2 === 0),
        reblog: reply === 'none' && index % 13 === 0,
        media: index % 5 === 0 && !(reply === 'none' && index % 13 === 0),
      };
      this.posts.push(post);
      added.push(post);
    }
    return added;
  }

  /**
   * The post this one replies to is deleted. Mastodon nulls `in_reply_to_id` (a foreign key on
   * delete nullify) but keeps `in_reply_to_account_id` and the `reply` flag, which its
   * exclude_replies decides on (Status.without_replies, app/models/status.rb v4.5.15). Pleroma
   * renders both ids from the parent it no longer finds, so both are null, while its
   * exclude_replies still decides on the object's inReplyTo.
   */
  orphan(id: string): void {
    const post = this.posts.find((candidate) => candidate.id === id);
    if (!post || post.reply === 'none') throw new Error(`no reply ${id}`);
    post.replyToId = null;
    post.orphaned = true;
  }

  /** The user deletes a post. */
  removePost(id: string): void {
    const index = this.posts.findIndex((post) => post.id === id);
    if (index < 0) throw new Error(`no post ${id}`);
    this.posts.splice(index, 1);
  }

  /** A cursor moved up by `repeat` posts, so the page overlaps the previous one. */
  private slipped(cursor: string | undefined): string | undefined {
    if (cursor === undefined || this.repeat === 0) return cursor;
    const at = this.posts.findIndex((post) => compareIds(post.id, cursor) >= 0);
    if (at < 0) return cursor;
    return this.posts[at + this.repeat]?.id;
  }

  /** Listing requests (statuses or notes) served so far, faults included. */
  get listingRequests(): number {
    return this.listRequests;
  }

  // ---- rendering ------------------------------------------------------------------------------

  private account(): Json {
    const host = new URL(this.url).host;
    if (this.flavour === 'misskey') {
      return { id: this.accountId, username: this.username, host: null, name: 'Alice' };
    }
    return {
      ...(this.flavour === 'mastodon' && this.suspended ? { suspended: true } : {}),
      id: this.accountId,
      username: this.username,
      acct: this.username,
      display_name: 'Alice',
      url: `http://${host}/@${this.username}`,
      created_at: new Date(START - 86_400_000).toISOString(),
    };
  }

  private status(post: Post): Json {
    const account = this.account();
    const base = {
      id: post.id,
      created_at: post.createdAt,
      in_reply_to_id: post.replyToId,
      in_reply_to_account_id:
        post.orphaned && this.flavour === 'pleroma'
          ? null
          : post.reply === 'self'
            ? this.accountId
            : post.reply === 'other'
              ? OTHER_ACCOUNT
              : null,
      sensitive: Boolean(this.media?.contentWarning(post)),
      spoiler_text: this.media?.contentWarning(post) ?? '',
      visibility: post.visibility,
      language: 'en',
      uri: `${this.url}/users/${this.username}/statuses/${post.id}`,
      url: `${this.url}/@${this.username}/${post.id}`,
      replies_count: 0,
      reblogs_count: post.index % 4,
      favourites_count: post.index % 9,
      content: post.reblog ? '' : `<p>Post number ${post.index} — “ünïcode” &amp; more</p>`,
      reblog: post.reblog
        ? {
            id: makeId(this.flavour, Date.parse(post.createdAt) - 5000, post.index + 900_000),
            content: '<p>someone else</p>',
            visibility: 'public',
            account: { id: OTHER_ACCOUNT, username: 'bob', acct: 'bob@elsewhere.example' },
          }
        : null,
      account,
      media_attachments: !post.media
        ? []
        : this.media
          ? this.media.mastodonAttachments(post, this.flavour, this.url)
          : [{ id: `m${post.index}`, type: 'image', url: `${this.url}/media/${post.index}.png` }],
      // Pleroma's own extension holds its conversation id as a (small) number.
      ...(this.flavour === 'pleroma'
        ? { pleroma: { conversation_id: post.index, local: true } }
        : {}),
      mentions: post.mention
        ? [{ id: OTHER_ACCOUNT, username: 'bob', acct: 'bob@elsewhere.example', url: BOB_URL }]
        : [],
      tags: [],
      emojis: [],
    };
    return base;
  }

  private note(post: Post): Json {
    const visibility = MISSKEY_VISIBILITY[post.visibility];
    const cwQuote = isCwQuote(post);
    const renote = post.reblog || cwQuote;
    return {
      id: post.id,
      createdAt: post.createdAt,
      userId: this.accountId,
      user: this.account(),
      text: renote ? null : `Note ${post.index} with “ünïcode”`,
      cw: cwQuote ? `CW on note ${post.index}` : this.media?.contentWarning(post) || null,
      visibility,
      localOnly: false,
      replyId: post.replyToId,
      reply: post.replyToId
        ? { id: post.replyToId, userId: post.reply === 'self' ? this.accountId : OTHER_ACCOUNT }
        : undefined,
      renoteId: renote ? `rn${post.id}` : null,
      renote: renote ? { id: `rn${post.id}`, userId: OTHER_ACCOUNT, text: 'theirs' } : undefined,
      ...this.files(post),
      reactions: {},
      renoteCount: 0,
      repliesCount: 0,
    };
  }

  private files(post: Post): Json {
    if (!post.media) return { fileIds: [], files: [] };
    const files = this.media
      ? this.media.misskeyFiles(post)
      : [{ id: `f${post.index}`, type: 'image/png' }];
    return { fileIds: files.map((file) => file.id), files };
  }

  /** What users/notes' filters read from a post. */
  private noteRow(post: Post): NoteRow {
    const cwQuote = isCwQuote(post);
    return {
      id: post.id,
      visibility: MISSKEY_VISIBILITY[post.visibility],
      reply: post.replyToId !== null,
      replyToOther: post.reply === 'other',
      renote: post.reblog || cwQuote,
      text: !post.reblog && !cwQuote,
      cw: cwQuote,
      poll: false,
      files: post.media,
    };
  }

  // ---- HTTP -----------------------------------------------------------------------------------

  private send(
    res: ServerResponse,
    status: number,
    body: unknown,
    headers: Record<string, string> = {},
  ): void {
    const text = JSON.stringify(body);
    res.writeHead(status, {
      'content-type': 'application/json; charset=utf-8',
      'content-length': Buffer.byteLength(text),
      ...headers,
    });
    res.end(text);
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const raw = Buffer.concat(chunks).toString('utf8');
    let body: Json | undefined;
    if (raw) {
      try {
        body = JSON.parse(raw) as Json;
      } catch {
        return this.send(res, 400, { error: 'invalid json' });
      }
    }
    const auth = req.headers.authorization;
    const bearer = auth?.startsWith('Bearer ') ? auth.slice(7) : undefined;
    const presented = bearer ?? (typeof body?.i === 'string' ? body.i : undefined);
    const query: Record<string, string | string[]> = {};
    for (const key of new Set(url.searchParams.keys())) {
      const all = url.searchParams.getAll(key);
      query[key] = key.endsWith('[]') ? all : (all[all.length - 1] ?? '');
    }
    this.requests.push({
      method: req.method ?? 'GET',
      path: url.pathname,
      query,
      // The token is recorded as present, never as its value.
      body: body && ('i' in body ? { ...body, i: '(token)' } : body),
      authorized: presented === this.token,
    });

    if (this.media?.serveInstance(req, res, url)) return;
    if (!this.nodeinfo && url.pathname.includes('nodeinfo')) {
      return this.send(res, 404, { error: 'Not found' });
    }
    if (url.pathname === '/.well-known/nodeinfo') {
      return this.send(res, 200, {
        links: [
          {
            rel: 'http://nodeinfo.diaspora.software/ns/schema/2.0',
            href: `${this.url}/nodeinfo/2.0`,
          },
        ],
      });
    }
    if (url.pathname === '/nodeinfo/2.0') {
      return this.send(res, 200, {
        version: '2.0',
        software: { name: this.flavour, version: '1.0.0' },
        protocols: ['activitypub'],
        usage: { users: { total: 1 } },
        openRegistrations: false,
      });
    }
    if (this.flavour === 'misskey') return this.misskey(req, res, url, body ?? {}, presented);
    return this.mastodonApi(req, res, url, presented);
  }

  /** Answers 429 as Mastodon's Rack::Attack throttled_responder does, when paging is throttled. */
  private throttled(res: ServerResponse, url: URL): boolean {
    const paging = ['max_id', 'min_id', 'since_id', 'page'].some((key) =>
      url.searchParams.get(key),
    );
    if (!this.pagingLimit || !paging) return false;
    const { limit, periodSeconds } = this.pagingLimit;
    const now = Date.now() / 1000;
    const window = Math.floor(now / periodSeconds);
    const count = (this.pagingWindows.get(window) ?? 0) + 1;
    this.pagingWindows.set(window, count);
    if (count <= limit) return false;
    const reset = new Date((window + 1) * periodSeconds * 1000).toISOString();
    this.send(
      res,
      429,
      { error: 'Too many requests' },
      {
        'x-ratelimit-limit': String(limit),
        'x-ratelimit-remaining': '0',
        // Time#iso8601(6): microseconds.
        'x-ratelimit-reset': reset.replace('Z', '000Z'),
      },
    );
    return true;
  }

  /** The fault in force for the listing request being served, if any. */
  private activeFault(): Fault | undefined {
    const fault = this.fault;
    if (!fault || this.listRequests < fault.at) return undefined;
    if (fault.times !== undefined && this.listRequests >= fault.at + fault.times) return undefined;
    return fault;
  }

  private injectFault(res: ServerResponse): boolean {
    this.listRequests++;
    const fault = this.activeFault();
    if (!fault || fault.kind === 'ignore-only-public') return false;
    if (fault.kind === 'numeric-ids') {
      // A broken proxy or server that turned ids into numbers, losing precision.
      const body = this.posts
        .slice(-3)
        .map((post) => ({ ...this.status(post), id: Number(post.id) }));
      this.send(res, 200, body);
      return true;
    }
    if (fault.kind === 'numeric-nested-ids') {
      // Ids are strings, but the author's id comes as a number (a snowflake: past 2^53).
      const body = this.posts.slice(-3).map((post) => {
        const status = this.status(post);
        return { ...status, account: { ...(status.account as Json), id: Number(this.accountId) } };
      });
      this.send(res, 200, body);
      return true;
    }
    if (fault.kind === 'huge-number') {
      // A number no double holds exactly, away from any id.
      const text = JSON.stringify(this.posts.slice(-3).map((post) => this.status(post)));
      const huge = text.replace(
        '"sensitive":false',
        '"sensitive":false,"big":123456789012345678901',
      );
      res.writeHead(200, {
        'content-type': 'application/json',
        'content-length': Buffer.byteLength(huge),
      });
      res.end(huge);
      return true;
    }
    if (fault.kind === 'stall') return true;
    if (fault.kind === 'reset') {
      res.socket?.destroy();
      return true;
    }
    if (fault.kind === '503') {
      this.send(res, 503, { error: 'overloaded' }, { 'retry-after': '0' });
      return true;
    }
    this.send(res, 500, { error: 'We are sorry, but something went wrong' });
    return true;
  }

  private mastodonApi(
    req: IncomingMessage,
    res: ServerResponse,
    url: URL,
    token: string | undefined,
  ): void {
    const flavour = this.flavour;
    if (flavour === 'mastodon' && this.throttled(res, url)) return;
    if (token !== undefined && token !== this.token) {
      return this.send(res, 401, { error: 'The access token is invalid' });
    }
    const owner = token === this.token;
    if (req.method !== 'GET') return this.send(res, 404, { error: 'Record not found' });
    if (url.pathname === '/api/v1/accounts/verify_credentials') {
      if (!owner) return this.send(res, 401, { error: 'The access token is invalid' });
      if (flavour === 'mastodon' && this.suspended) {
        return this.send(res, 403, { error: 'Your login is currently disabled' });
      }
      return this.send(res, 200, this.account());
    }
    if (url.pathname === '/api/v1/accounts/lookup') {
      const acct = (url.searchParams.get('acct') ?? '').replace(/^@/, '');
      const [name, host] = acct.split('@');
      const local = !host || host === new URL(this.url).host;
      if (name === this.username && local) return this.send(res, 200, this.account());
      // Another local account, who has posted nothing.
      if (name === 'bob' && local)
        return this.send(res, 200, { id: OTHER_ACCOUNT, username: 'bob' });
      return this.send(res, 404, { error: 'Record not found' });
    }
    // Mastodon's accounts#show finds a suspended account too, marked by REST::AccountSerializer
    // (app/controllers/api/v1/accounts_controller.rb, v4.5.15).
    const byId = /^\/api\/v1\/accounts\/([^/]+)$/.exec(url.pathname);
    if (byId) {
      const found = decodeURIComponent(byId[1] ?? '') === this.accountId;
      if (found) return this.send(res, 200, this.account());
      // GoToSocial: gtserror.NewErrorNotFound without help text (processing/account/get.go).
      return this.send(res, 404, {
        error: flavour === 'gotosocial' ? 'Not Found' : 'Record not found',
      });
    }
    const match = /^\/api\/v1\/accounts\/([^/]+)\/statuses$/.exec(url.pathname);
    if (!match) return this.send(res, 404, { error: 'Record not found' });
    if (flavour === 'gotosocial' && !owner) {
      return this.send(res, 401, { error: 'Unauthorized: token not supplied' });
    }
    if (this.injectFault(res)) return;
    const id = decodeURIComponent(match[1] ?? '');
    // Pleroma's `:id` may be a nickname.
    if (id !== this.accountId && !(flavour === 'pleroma' && id === this.username)) {
      // GoToSocial lists an account it does not know as empty: GetAccountStatuses' no-rows
      // error becomes an empty page in StatusesGet (processing/account/statuses.go, v0.19.2).
      if (flavour === 'gotosocial') return this.send(res, 200, []);
      return this.send(res, 404, { error: 'Record not found' });
    }
    if (flavour === 'mastodon' && this.suspended) return this.send(res, 200, []);
    const p = url.searchParams;
    const truthy = (name: string) => ['true', '1'].includes(p.get(name) ?? '');
    const requested = Number(p.get('limit') ?? (flavour === 'gotosocial' ? 30 : 20));
    let limit: number;
    if (flavour === 'gotosocial') limit = requested <= 0 ? Number.MAX_SAFE_INTEGER : requested;
    else limit = Math.min(Math.max(1, requested || 20), 40);
    const maxId = this.slipped(p.get('max_id') ?? undefined);
    const sinceId = flavour === 'gotosocial' ? undefined : (p.get('since_id') ?? undefined);
    const minId = p.get('min_id') ?? undefined;
    const excluded = new Set(flavour === 'pleroma' ? p.getAll('exclude_visibilities[]') : []);
    const onlyPublic =
      flavour === 'gotosocial' &&
      truthy('only_public') &&
      this.activeFault()?.kind !== 'ignore-only-public';

    let candidates = this.posts.filter((post) => {
      if (!owner && !['public', 'unlisted'].includes(post.visibility)) return false;
      if (truthy('exclude_replies') && post.reply !== 'none') {
        // Mastodon keeps every self-reply; GoToSocial only those that mention nobody (its
        // GetAccountStatuses); Pleroma drops every reply.
        if (post.reply === 'other' || flavour === 'pleroma') return false;
        if (flavour === 'gotosocial' && post.mention) return false;
      }
      if (truthy('exclude_reblogs') && post.reblog) return false;
      if (truthy('only_media') && !post.media) return false;
      if (onlyPublic && post.visibility !== 'public') return false;
      if (excluded.has(post.visibility)) return false;
      if (maxId && compareIds(post.id, maxId) >= 0) return false;
      if (sinceId && compareIds(post.id, sinceId) <= 0) return false;
      if (minId && compareIds(post.id, minId) <= 0) return false;
      return true;
    });
    // min_id alone: the page just above the cursor, still answered newest first.
    const upward = minId !== undefined && maxId === undefined && sinceId === undefined;
    candidates = upward
      ? candidates.slice(0, limit).reverse()
      : candidates.reverse().slice(0, limit);
    const rows = candidates;
    // GoToSocial filters after its query (visibility to the requester), so pages come back short;
    // here direct messages play that part.
    const shown =
      flavour === 'gotosocial' ? rows.filter((post) => post.visibility !== 'direct') : rows;

    const headers: Record<string, string> = {};
    const first = rows[0];
    const last = rows[rows.length - 1];
    // GoToSocial sets next and prev from its query's rows before filtering them
    // (StatusesGet, v0.19.2): a page whose every row was filtered out is `[]` with both links.
    if (first && last) {
      const origin = flavour === 'gotosocial' ? `http://${this.linkHost}` : this.url;
      const link = (cursor: string, value: string) => {
        const target = new URL(url.pathname, origin);
        for (const [key, value2] of p)
          if (!['max_id', 'min_id', 'since_id'].includes(key))
            target.searchParams.append(key, value2);
        target.searchParams.set(cursor, value);
        return target.href;
      };
      const parts: string[] = [];
      // Mastodon links `next` only after a full page; GoToSocial and Pleroma on every page.
      if (flavour !== 'mastodon' || rows.length === limit)
        parts.push(`<${link('max_id', last.id)}>; rel="next"`);
      parts.push(`<${link('min_id', first.id)}>; rel="prev"`);
      headers.link = parts.join(', ');
    }
    this.send(
      res,
      200,
      shown.map((post) => this.status(post)),
      headers,
    );
  }

  /** ApiCallService's error answer: `{error: {message, code, id, kind, info?}}`. */
  private misskeyError(
    res: ServerResponse,
    failure: Omit<ApiFailure, 'id'> & { id?: string },
    headers: Record<string, string> = {},
  ): void {
    const { status, code, message, kind, info } = failure;
    this.send(
      res,
      status,
      {
        error: {
          message,
          code,
          id: failure.id ?? `${code.toLowerCase()}-id`,
          kind,
          ...(info ? { info } : {}),
        },
      },
      headers,
    );
  }

  private misskey(
    req: IncomingMessage,
    res: ServerResponse,
    url: URL,
    body: Json,
    token: string | undefined,
  ): void {
    const endpoint = url.pathname.replace(/^\/api\//, '');
    const known = ['i', 'users/show', 'users/notes'].includes(endpoint);
    if (req.method === 'GET') {
      // ApiServerService: a known endpoint without allowGet is 405 with no body; any other
      // /api/ path answers the GET catch-all.
      if (known) {
        res.writeHead(405, { 'content-length': '0' });
        res.end();
        return;
      }
      return this.misskeyError(res, {
        status: 404,
        code: 'UNKNOWN_API_ENDPOINT',
        message: 'Unknown API endpoint.',
        id: '2ca3b769-540a-4f08-9dd5-b5a825b6d0f1',
        kind: 'client',
      });
    }
    if (!known) {
      // Only GET has a catch-all; other methods meet Fastify's own 404.
      return this.send(res, 404, {
        message: `Route ${req.method ?? 'POST'}:${url.pathname} not found`,
        error: 'Not Found',
        statusCode: 404,
      });
    }
    if (token !== undefined && token !== this.token) {
      return this.misskeyError(
        res,
        {
          status: 401,
          code: 'AUTHENTICATION_FAILED',
          message: 'Authentication failed. Please ensure your token is correct.',
          id: 'b0a7f5f8-dc2f-4171-b91f-de88ad238e14',
          kind: 'client',
        },
        {
          'www-authenticate':
            'Bearer realm="Misskey", error="invalid_token", error_description="Authentication failed. Please ensure your token is correct."',
        },
      );
    }
    const owner = token === this.token;
    switch (endpoint) {
      case 'i':
        if (!owner) {
          return this.misskeyError(
            res,
            {
              status: 401,
              code: 'CREDENTIAL_REQUIRED',
              message: 'Credential required.',
              id: '1384574d-a912-4b81-8601-c7b1c4085df1',
              kind: 'client',
            },
            { 'www-authenticate': 'Bearer realm="Misskey"' },
          );
        }
        return this.send(res, 200, this.account());
      case 'users/show':
        return this.showUser(res, body);
      default:
        return this.notes(res, body, owner);
    }
  }

  /** users/show.ts (Misskey 2025.10.2; Sharkey answers the same for these cases). */
  private showUser(res: ServerResponse, body: Json): void {
    if (
      body.userId !== undefined &&
      !(typeof body.userId === 'string' && /^[a-zA-Z0-9]+$/.test(body.userId))
    ) {
      return this.misskeyError(res, {
        status: 400,
        code: 'INVALID_PARAM',
        message: 'Invalid param.',
        id: '3d81ceae-475f-4600-b2a8-2bc116157532',
        kind: 'client',
        info: {
          param: '#/allOf/0/anyOf/0/properties/userId/format',
          reason: 'must match format "misskey:id"',
        },
      });
    }
    const ownHost = new URL(this.url).host.toLowerCase();
    const host = typeof body.host === 'string' ? body.host.toLowerCase() : null;
    if (typeof body.username === 'string' && host !== null && host !== ownHost) {
      // RemoteUserResolveService could not reach the other server: kind 'server', so HTTP 500.
      return this.misskeyError(res, {
        status: 500,
        code: 'FAILED_TO_RESOLVE_REMOTE_USER',
        message: 'Failed to resolve remote user.',
        id: 'ef7b9be4-9cba-4e6f-ab41-90ed171c7d3c',
        kind: 'server',
      });
    }
    // Local names are looked up trimmed and case-insensitively (usernameLower).
    const byName =
      typeof body.username === 'string' &&
      body.username.trim().toLowerCase() === this.username.toLowerCase();
    if (byName || body.userId === this.accountId) return this.send(res, 200, this.account());
    this.misskeyError(res, {
      status: 404,
      code: 'NO_SUCH_USER',
      message: 'No such user.',
      id: '4362f8dc-731f-4ad8-a694-be5a88922a24',
      kind: 'client',
    });
  }

  private notes(res: ServerResponse, body: Json, owner: boolean): void {
    if (this.injectFault(res)) return;
    let headers: Record<string, string> = {};
    if (this.userNotes.fork === 'sharkey') {
      // Sharkey checks its rate limit first (ApiCallService.call), per user or per IP.
      const actor = owner ? 'owner' : 'anonymous';
      let bucket = this.buckets.get(actor);
      if (!bucket) {
        bucket = new LeakyBucket(20, 250);
        this.buckets.set(actor, bucket);
      }
      let now = Date.now();
      if (this.sharkeyClock === 'paced') {
        this.pacedNow += 10 + this.pacedOwed;
        this.pacedOwed = 0;
        now = this.pacedNow;
      }
      const info = bucket.take(now);
      this.sharkeyAnswers.push({ at: Date.now(), blocked: info.blocked });
      if (info.blocked) this.pacedOwed = info.resetSec * 1000;
      headers = rateLimitHeaders(info);
      if (info.blocked) {
        return this.misskeyError(
          res,
          {
            status: 429,
            code: 'RATE_LIMIT_EXCEEDED',
            message: 'Rate limit exceeded. Please try again later.',
            id: 'd5826d14-3982-4d2e-8011-b9e9f02499ef',
            kind: 'client',
            info: { ...info },
          },
          headers,
        );
      }
    }
    const params = readNotesParams(body);
    if ('status' in params) return this.misskeyError(res, params, headers);
    const ps = { ...params, untilId: this.slipped(params.untilId) };
    const rows = ps.userId === this.accountId ? this.posts.map((post) => this.noteRow(post)) : [];
    const selected = this.userNotes.select(rows, ps, owner);
    if (!Array.isArray(selected)) return this.misskeyError(res, selected, headers);
    const byId = new Map(this.posts.map((post) => [post.id, post]));
    this.send(
      res,
      200,
      selected.map((row) => this.note(byId.get(row.id) as Post)),
      headers,
    );
  }
}
