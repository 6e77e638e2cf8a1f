/**
 * The loopback servers of .github/workflows/e2e.yml, as one long-running process: the Mastodon
 * server of the demo (exchange, validate, revoke, client-credentials) with an app registered and
 * an approval code issued, the timeline server of the snapshot tests, and a small control server
 * through which the workflow's own scripts ask what the servers saw. Started in the background
 * by start.mjs, which passes the file to write the addresses and values to; stopped by
 * finish.mjs, or after 30 minutes at the latest, so a forgotten process never lingers.
 *
 * Control (POST, JSON body): /revoked {token} → {revoked}; /expect-revoked {token} notes a token
 * that must be revoked by the time the job ends; /check → {expected, live}; /stop.
 *
 * Usage: node scripts/e2e/serve.ts READY_FILE (Node 24 runs the TypeScript as it is)
 */
import { randomBytes } from 'node:crypto';
import { renameSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { OOB, startMastodonServer } from '../../__tests__/servers/mastodon.ts';
import { TimelineServer } from '../../__tests__/servers/timeline.ts';

const LIFETIME_MS = 30 * 60 * 1000;

export interface Ready {
  pid: number;
  mastodonUrl: string;
  clientId: string;
  clientSecret: string;
  code: string;
  timelineUrl: string;
  timelineToken: string;
  controlUrl: string;
}

const readyFile = process.argv[2];
if (!readyFile) throw new Error('usage: serve.ts READY_FILE');

const mastodon = await startMastodonServer({ flavour: 'mastodon' });
const app = mastodon.registerApp({ name: 'fedi-token e2e', scopes: ['read', 'write'] });
// Stands in for the person who opens /oauth/authorize and approves the app.
const code = mastodon.issueCode({ clientId: app.clientId, redirectUri: OOB });
const timeline = await TimelineServer.start({
  flavour: 'mastodon',
  posts: 300,
  token: `e2e-${randomBytes(24).toString('base64url')}`,
});

const expected = new Set<string>();

async function readJson(req: IncomingMessage): Promise<Record<string, unknown>> {
  let text = '';
  for await (const chunk of req) text += String(chunk);
  return text ? (JSON.parse(text) as Record<string, unknown>) : {};
}

function send(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
}

async function stop(): Promise<void> {
  await Promise.allSettled([mastodon.close(), timeline.close()]);
  control.closeAllConnections();
  control.close();
  process.exit(0);
}

const control = createServer((req, res) => {
  void (async () => {
    const body = req.method === 'POST' ? await readJson(req) : {};
    const token = typeof body.token === 'string' ? body.token : '';
    switch (`${req.method} ${req.url}`) {
      case 'POST /revoked':
        return send(res, 200, { revoked: mastodon.isRevoked(token) });
      case 'POST /expect-revoked':
        if (!token) return send(res, 400, { error: 'token is required' });
        expected.add(token);
        return send(res, 200, { expected: expected.size });
      case 'POST /check': {
        const live = [...expected].filter((value) => !mastodon.isRevoked(value)).length;
        return send(res, 200, { expected: expected.size, live });
      }
      case 'POST /stop':
        res.on('finish', () => void stop());
        return send(res, 200, { stopping: true });
    }
    send(res, 404, { error: 'no such control' });
  })().catch(() => send(res, 500, { error: 'control failed' }));
});
await new Promise<void>((resolve) => control.listen(0, '127.0.0.1', resolve));

setTimeout(() => void stop(), LIFETIME_MS);

const ready: Ready = {
  pid: process.pid,
  mastodonUrl: mastodon.url,
  clientId: app.clientId,
  clientSecret: app.clientSecret,
  code,
  timelineUrl: timeline.url,
  timelineToken: timeline.token,
  controlUrl: `http://127.0.0.1:${(control.address() as AddressInfo).port}`,
};
// Whole or not at all: start.mjs polls for the file and must never read half of it.
writeFileSync(`${readyFile}.tmp`, JSON.stringify(ready));
renameSync(`${readyFile}.tmp`, readyFile);
console.log(`Mastodon ${mastodon.url}, timeline ${timeline.url}, control ${ready.controlUrl}`);
