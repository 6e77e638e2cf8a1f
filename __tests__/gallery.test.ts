/**
 * The example gallery (examples/gallery/) in a real headless Chromium, on a snapshot the bundled
 * action made with media mirrored from the loopback servers' separate media origin. The page is
 * served from its own loopback origin, as a static site would be; the browser must get every
 * picture from the mirror, never from the media origin. Screenshots of each page, as first seen
 * and with its content warnings opened, are saved under artifacts/ for CI to keep.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { extname, join, normalize } from 'node:path';
import type { Browser } from 'playwright-core';
import { ROOT, runAction } from './harness/action.ts';
import { closeBrowser, launchBrowser, withContext } from './harness/browser.ts';
import { MediaLibrary, MediaServer } from './servers/media.ts';
import { TimelineServer, type Flavour } from './servers/timeline.ts';

type Json = Record<string, unknown>;

const ARTIFACTS = join(ROOT, 'artifacts');
const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.css': 'text/css',
  '.js': 'text/javascript',
  '.json': 'application/json',
  '.png': 'image/png',
  '.mp4': 'video/mp4',
  '.mp3': 'audio/mpeg',
};

let browser: Browser | undefined;

beforeAll(async () => {
  browser = await launchBrowser();
});
afterAll(async () => {
  await closeBrowser(browser);
});

/** A static site: the folder's files over loopback http, as GitHub Pages would serve them. */
async function serve(root: string): Promise<{ url: string; server: Server }> {
  const server = createServer((req, res) => {
    const path = normalize(decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname));
    try {
      const body = readFileSync(join(root, path));
      res.writeHead(200, { 'content-type': TYPES[extname(path)] ?? 'application/octet-stream' });
      res.end(body);
    } catch {
      res.writeHead(404).end();
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server };
}

describe('examples/gallery in headless Chromium', () => {
  it.each(['mastodon', 'misskey'] as Flavour[])(
    '%s: every picture decodes from the mirror, with its alt text; content warnings stay closed; video is video',
    async (flavour) => {
      const cdn = await MediaServer.start();
      const library = new MediaLibrary(cdn);
      const timeline = await TimelineServer.start({ flavour, posts: 200, media: library });
      const site = mkdtempSync(join(tmpdir(), 'gallery-'));
      let web: Server | undefined;
      try {
        const run = await runAction(
          'snapshot',
          {
            instance: timeline.url,
            'access-token': timeline.token,
            path: 'statuses.json',
            'media-path': 'media',
            'media-size': 'both',
            count: '60',
          },
          { cwd: site },
        );
        expect(run.exitCode).toBe(0);
        for (const name of readdirSync(join(ROOT, 'examples', 'gallery'))) {
          copyFileSync(join(ROOT, 'examples', 'gallery', name), join(site, name));
        }
        const items = JSON.parse(readFileSync(join(site, 'statuses.json'), 'utf8')) as Json[];
        const files = (item: Json) => (item.media_attachments ?? item.files ?? []) as Json[];
        const warned = (item: Json) => Boolean(item.spoiler_text || item.cw);
        const withMedia = items.filter((item) => files(item).length > 0);
        const alts = (list: Json[]) =>
          list
            .flatMap(files)
            .filter((file) => String(file.type).startsWith('image'))
            .map((file) => String((flavour === 'misskey' ? file.comment : file.description) ?? ''));
        expect(withMedia.some(warned)).toBe(true);
        expect(alts(withMedia)).toContain('');

        const served = await serve(site);
        web = served.server;
        const cdnRequests = cdn.requests.length;
        await withContext(browser as Browser, async (context) => {
          const page = await context.newPage();
          await page.goto(`${served.url}/index.html`);
          await page.waitForFunction(
            "!document.getElementById('gallery').hasAttribute('aria-busy')",
          );

          // One figure per post with media; a warned post's media stays folded under its warning.
          const figures = await page.$$eval('figure.post', (list) =>
            list.map((figure) => ({
              id: figure.getAttribute('data-id'),
              folded: figure.querySelector('details.cw:not([open]) .media') !== null,
              summary: figure.querySelector('summary')?.textContent ?? null,
            })),
          );
          expect(figures.map((f) => f.id)).toEqual(withMedia.map((item) => item.id));
          expect(figures.map((f) => f.folded)).toEqual(withMedia.map(warned));
          expect(figures.filter((f) => f.folded).map((f) => f.summary)).toEqual(
            withMedia.filter(warned).map((item) => item.spoiler_text || item.cw),
          );
          const visible = await page.$$eval(
            'img',
            (images) => images.filter((image) => image.checkVisibility()).length,
          );
          expect(visible).toBe(alts(withMedia.filter((item) => !warned(item))).length);

          // The pictures load now rather than when scrolled to (the page lazy-loads them); the
          // screenshot shows the page as a visitor first sees it, warnings folded.
          await page.$$eval('img', (list) => list.forEach((image) => (image.loading = 'eager')));
          await page.waitForFunction(
            '[...document.images].every((image) => !image.checkVisibility() || (image.complete && image.naturalWidth > 0))',
          );
          mkdirSync(ARTIFACTS, { recursive: true });
          await page.screenshot({
            path: join(ARTIFACTS, `gallery-${flavour}.png`),
            fullPage: true,
          });

          // Open every warning: then every picture must decode, with its attachment's alt text.
          await page.$$eval('details.cw', (list) =>
            list.forEach((details) => (details.open = true)),
          );
          await page.waitForFunction(
            '[...document.images].every((image) => image.complete && image.naturalWidth > 0)',
          );
          const images = await page.$$eval('img', (list) =>
            list.map((image) => ({
              alt: image.getAttribute('alt'),
              src: image.getAttribute('src') ?? '',
              width: image.naturalWidth,
            })),
          );
          expect(images.map((image) => image.alt)).toEqual(alts(withMedia));
          expect(images.every((image) => image.width > 0)).toBe(true);
          expect(images.every((image) => image.src.startsWith(`${served.url}/media/`))).toBe(true);

          // Video is video (a gifv loops muted), sound is audio, each from the mirror.
          const players = await page.$$eval('video, audio', (list) =>
            list.map((player) => ({
              tag: player.tagName.toLowerCase(),
              src: player.getAttribute('src') ?? '',
              loop: player.hasAttribute('loop'),
            })),
          );
          const expected = withMedia.flatMap(files).flatMap((file) => {
            const kind =
              flavour === 'misskey' ? String(file.type).split('/')[0] : String(file.type);
            const local = (file.local as { original: string }).original;
            if (kind === 'image') return [];
            const tag = kind === 'audio' ? 'audio' : 'video';
            return [{ tag, src: `${served.url}/${local}`, loop: kind === 'gifv' }];
          });
          expect(players).toEqual(expected);
          expect(players.some((player) => player.tag === 'video')).toBe(true);
          await page.screenshot({
            path: join(ARTIFACTS, `gallery-${flavour}-opened.png`),
            fullPage: true,
          });
        });
        // Everything came from the site: the media origin saw no request from the browser.
        expect(cdn.requests.length).toBe(cdnRequests);
      } finally {
        web?.close();
        web?.closeAllConnections();
        await Promise.all([timeline.close(), cdn.close()]);
        rmSync(site, { recursive: true, force: true });
      }
    },
  );
});
