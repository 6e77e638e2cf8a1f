/**
 * The download path for untrusted media hosts (src/download.ts), in process against the loopback
 * media origin: what is sent, what is refused before any request, how the size cap, the content
 * type, redirects, stalls and trickles end a download, and that every failure leaves no file and
 * no open connection behind.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from '@jest/globals';
import { Downloader, type DownloadRequest } from '../src/download.ts';
import { NetworkError, ServerError } from '../src/errors.ts';
import { Http } from '../src/http.ts';
import { MediaServer, png } from './servers/media.ts';

let cdn: MediaServer;
let other: MediaServer;
let dir: string;
let http: Http;
let downloader: Downloader;
const waits: number[] = [];
const picture = png(40, 30, (x, y) => [x * 6, y * 8, 120]);

beforeAll(async () => {
  [cdn, other] = await Promise.all([MediaServer.start(), MediaServer.start()]);
  cdn.put('/a.png', { body: picture, type: 'image/png' });
  other.put('/b.png', { body: picture, type: 'image/png' });
});
afterAll(() => Promise.all([cdn.close(), other.close()]));
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'download-'));
  waits.length = 0;
  http = new Http({
    timeoutMs: 2000,
    maxAttempts: 3,
    sleep: async (ms) => {
      waits.push(ms);
    },
  });
  downloader = new Downloader(http);
  cdn.clearFaults();
  cdn.requests.length = 0;
  other.requests.length = 0;
});
afterEach(() => {
  downloader.close();
  rmSync(dir, { recursive: true, force: true });
});

function request(path: string, extra: Partial<DownloadRequest> = {}): DownloadRequest {
  return {
    url: new URL(path, cdn.url),
    file: join(dir, 'out.tmp'),
    maxBytes: 1024 * 1024,
    allowHttp: true,
    accept: (type) => type.startsWith('image/'),
    ...extra,
  };
}

async function failure(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (error) {
    return error as Error;
  }
  throw new Error('the download did not fail');
}

/** Waits until the server has seen the client go away (the socket was destroyed). */
async function abandoned(server: MediaServer, path: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (server.served(path).every((r) => r.abandoned)) return;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error(`the connection for ${path} stayed open`);
}

describe('Downloader', () => {
  it('streams the body to the file, with its MD5, sending no credential', async () => {
    const got = await downloader.download(request('/a.png', { md5: true }));
    expect(readFileSync(join(dir, 'out.tmp')).equals(picture)).toBe(true);
    expect(got).toMatchObject({ bytes: picture.length, contentType: 'image/png' });
    expect(got.md5).toBe(createHash('md5').update(picture).digest('hex'));
    const [sent] = cdn.requests;
    expect(Object.keys(sent?.headers ?? {}).sort()).toEqual([
      'accept',
      'connection',
      'host',
      'user-agent',
    ]);
    expect(sent?.headers['user-agent']).toMatch(/^fedi-token\//);
    expect(http.requestCount).toBe(1);
  });

  it('refuses plain http unless the instance is loopback (never to other hosts), and URLs with credentials, before any request to them', async () => {
    const refused = await failure(downloader.download(request('/a.png', { allowHttp: false })));
    expect(refused).toBeInstanceOf(NetworkError);
    expect(refused.message).toMatch(/refused plain http: media is fetched over https only/);
    const elsewhere = await failure(
      downloader.download(request('/a.png', { url: new URL('http://example.invalid/a.png') })),
    );
    expect(elsewhere.message).toMatch(/refused plain http/);
    const ftp = await failure(
      downloader.download(request('/a.png', { url: new URL('ftp://127.0.0.1/a.png') })),
    );
    expect(ftp.message).toMatch(/refused a "ftp:" URL/);
    expect(cdn.requests).toEqual([]);
    expect(http.requestCount).toBe(0);

    const userinfo = new URL('/a.png', cdn.url);
    userinfo.username = 'user';
    userinfo.password = 'secret';
    cdn.fault('/moved.png', { kind: 'redirect', location: userinfo.href });
    const withCredentials = await failure(downloader.download(request('/moved.png')));
    expect(withCredentials.message).toBe(
      `${cdn.url} GET /a.png: refused a URL with a user name or password in it`,
    );
    expect(cdn.requests.map((r) => r.path)).toEqual(['/moved.png']);
    expect(http.requestCount).toBe(1);
  });

  it('refuses an answer announced larger than the cap without reading it', async () => {
    cdn.fault('/big.png', { kind: 'oversized', bytes: 8 * 1024 * 1024, contentLength: true });
    const error = await failure(downloader.download(request('/big.png')));
    expect(error).toBeInstanceOf(NetworkError);
    expect((error as NetworkError).failure).toBe('too-large');
    expect(error.message).toMatch(/larger than the 1 MiB cap \(media-max-bytes\)/);
    expect(existsSync(join(dir, 'out.tmp'))).toBe(false);
    expect(cdn.served('/big.png')).toHaveLength(1);
    await abandoned(cdn, '/big.png');
    expect(cdn.served('/big.png')[0]?.sent).toBeLessThan(4 * 1024 * 1024);
  });

  it('cuts off an unannounced oversized body at the cap, keeping none of it', async () => {
    cdn.fault('/big.png', { kind: 'oversized', bytes: 64 * 1024 * 1024, contentLength: false });
    const error = await failure(downloader.download(request('/big.png', { maxBytes: 100_000 })));
    expect((error as NetworkError).failure).toBe('too-large');
    expect(existsSync(join(dir, 'out.tmp'))).toBe(false);
    await abandoned(cdn, '/big.png');
    // The host got no further than the cap and what the socket buffers held when it was cut.
    expect(cdn.served('/big.png')[0]?.sent).toBeLessThan(16 * 1024 * 1024);
    expect(cdn.served('/big.png')).toHaveLength(1);
  });

  it('refuses a content type it does not keep before writing a byte, and does not retry', async () => {
    cdn.fault('/a.png', { kind: 'type', type: 'text/html; charset=utf-8' });
    const error = await failure(downloader.download(request('/a.png')));
    expect(error).toBeInstanceOf(ServerError);
    expect(error.message).toBe(
      `${cdn.url} GET /a.png answered HTTP 200: the content type is "text/html", not one kept for this attachment`,
    );
    expect(existsSync(join(dir, 'out.tmp'))).toBe(false);
    expect(cdn.served('/a.png')).toHaveLength(1);
  });

  it('follows a redirect to another origin with nothing but the same two headers', async () => {
    cdn.fault('/moved.png', { kind: 'redirect', location: `${other.url}/b.png` });
    const got = await downloader.download(request('/moved.png'));
    expect(got.url.href).toBe(`${other.url}/b.png`);
    expect(readFileSync(join(dir, 'out.tmp')).equals(picture)).toBe(true);
    const headers = other.requests[0]?.headers ?? {};
    expect(Object.keys(headers).sort()).toEqual(['accept', 'connection', 'host', 'user-agent']);
    expect(http.requestCount).toBe(2);
  });

  it('gives up after five redirects, without retrying', async () => {
    for (let i = 0; i < 7; i++) {
      cdn.fault(`/loop${i}.png`, { kind: 'redirect', location: `/loop${i + 1}.png` });
    }
    const error = await failure(downloader.download(request('/loop0.png')));
    expect(error.message).toBe(`${cdn.url} GET /loop5.png: more than 5 redirects`);
    expect(cdn.requests.map((r) => r.path)).toEqual([0, 1, 2, 3, 4, 5].map((i) => `/loop${i}.png`));
  });

  it('retries a 503 after its Retry-After and a reset mid-body; a 404 is final', async () => {
    cdn.fault('/a.png', { kind: 'status', status: 503, retryAfter: '2' }, 1);
    await downloader.download(request('/a.png'));
    expect(waits).toEqual([2000]);
    expect(cdn.served('/a.png')).toHaveLength(2);

    cdn.fault('/a.png', { kind: 'reset' }, 1);
    await downloader.download(request('/a.png', { file: join(dir, 'second.tmp') }));
    expect(readFileSync(join(dir, 'second.tmp')).equals(picture)).toBe(true);
    expect(cdn.served('/a.png')).toHaveLength(4);

    const missing = await failure(downloader.download(request('/missing.png')));
    expect(missing.message).toBe(`${cdn.url} GET /missing.png answered HTTP 404`);
    expect(cdn.served('/missing.png')).toHaveLength(1);
  });

  it('ends a stalled body at the idle timeout and closes the connection', async () => {
    http = new Http({ timeoutMs: 300, maxAttempts: 1 });
    downloader.close();
    downloader = new Downloader(http);
    cdn.fault('/a.png', { kind: 'stall' });
    const error = await failure(downloader.download(request('/a.png')));
    expect((error as NetworkError).failure).toBe('timeout');
    expect(error.message).toBe(`${cdn.url} GET /a.png: no data for 0.3 s`);
    expect(existsSync(join(dir, 'out.tmp'))).toBe(false);
    await abandoned(cdn, '/a.png');
  });

  it('ends a trickle that is never idle at the total deadline and closes the connection', async () => {
    http = new Http({ timeoutMs: 400, maxAttempts: 1 });
    downloader.close();
    downloader = new Downloader(http);
    cdn.fault('/a.png', { kind: 'trickle', intervalMs: 40 });
    // Deadline: the idle timeout plus the cap at 256 KiB/s, 0.4 s + 0.25 s.
    const error = await failure(downloader.download(request('/a.png', { maxBytes: 64 * 1024 })));
    expect((error as NetworkError).failure).toBe('timeout');
    expect(error.message).toBe(`${cdn.url} GET /a.png: the download did not finish within 1 s`);
    expect(existsSync(join(dir, 'out.tmp'))).toBe(false);
    await abandoned(cdn, '/a.png');
    expect(cdn.served('/a.png')[0]?.sent).toBeGreaterThan(3);
  });
});
