/**
 * A loopback GitHub Actions-secrets API: it makes an X25519 key pair, serves the public half at
 * `GET [base]/repos/{owner}/{repo}/actions/secrets/public-key`, and on
 * `PUT [base]/repos/{owner}/{repo}/actions/secrets/{name}` opens the sealed box with the private half,
 * so a test reads back exactly what the action encrypted. Like GitHub it answers 401 for a bad
 * token, 404 for a repository the token cannot see, 201 for a new secret and 204 for an update
 * (operations actions/get-repo-public-key and actions/create-or-update-repo-secret in GitHub's
 * OpenAPI description, github/rest-api-description
 * descriptions/api.github.com/api.github.com.2022-11-28.yaml, API version 2022-11-28).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import sodium from 'libsodium-wrappers';
import { FaultQueue, serveFault, type Fault } from './faults.ts';
import { bearerToken, listen, readText, sendJson } from './util.ts';

export interface GitHubOptions {
  owner?: string;
  repo?: string;
  /** The token that may write secrets; any other answers 401. */
  token: string;
  /** Tokens that authenticate but may not write secrets (like a workflow's GITHUB_TOKEN): 403. */
  readOnlyTokens?: string[];
  /** Where the REST API lives: '' like api.github.com, '/api/v3' like GitHub Enterprise Server. */
  basePath?: string;
}

export interface SecretWrite {
  name: string;
  /** The decrypted value. */
  value: string;
  status: number;
}

export interface GitHubServer {
  /** The origin; GITHUB_API_URL is this plus the base path. */
  url: string;
  repository: string;
  /** The decrypted current values, by secret name. */
  secrets: Map<string, string>;
  writes: SecretWrite[];
  /** Every request as `METHOD /path`. */
  requests: string[];
  faults: FaultQueue;
  inject(fault: Fault): void;
  /**
   * After `succeeded` successful writes, answer the next `times` PUTs with `status` (the
   * write-back's last write failing while the first one worked).
   */
  failWritesAfter(succeeded: number, status: number, times?: number): void;
  close(): Promise<void>;
}

const FORBIDDEN = {
  message: 'Resource not accessible by integration',
  documentation_url: 'https://docs.github.com/rest/actions/secrets',
  status: '403',
};

export async function startGitHub(options: GitHubOptions): Promise<GitHubServer> {
  await sodium.ready;
  const owner = options.owner ?? 'octo';
  const repo = options.repo ?? 'fedi-site';
  const keys = sodium.crypto_box_keypair();
  const keyId = `key-${Date.now().toString(36)}`;
  const secrets = new Map<string, string>();
  const writes: SecretWrite[] = [];
  const requests: string[] = [];
  const faults = new FaultQueue();
  const prefix = `${options.basePath ?? ''}/repos/${owner}/${repo}/actions/secrets/`;
  let writeFailure: { after: number; status: number; left: number } | undefined;

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const method = req.method ?? 'GET';
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    requests.push(`${method} ${path}`);
    const fault = faults.take(method, path);
    if (fault) return serveFault(fault, req, res);

    const token = bearerToken(req);
    if (token !== options.token && !options.readOnlyTokens?.includes(token ?? '')) {
      await readText(req);
      return sendJson(res, 401, { message: 'Bad credentials', status: '401' });
    }
    if (!path.startsWith(prefix)) {
      await readText(req);
      return sendJson(res, 404, { message: 'Not Found', status: '404' });
    }
    const rest = path.slice(prefix.length);
    if (method === 'GET' && rest === 'public-key') {
      // GitHub lets read-only integrations see the key; the write is what they are refused.
      return sendJson(res, 200, {
        key_id: keyId,
        key: sodium.to_base64(keys.publicKey, sodium.base64_variants.ORIGINAL),
      });
    }
    if (method === 'PUT' && /^[A-Za-z_][A-Za-z0-9_]*$/.test(rest)) {
      const raw = await readText(req);
      if (token !== options.token) return sendJson(res, 403, FORBIDDEN);
      if (writeFailure && writes.length >= writeFailure.after && writeFailure.left > 0) {
        writeFailure.left--;
        return sendJson(res, writeFailure.status, { message: 'Server Error' });
      }
      let body: { encrypted_value?: unknown; key_id?: unknown };
      try {
        body = JSON.parse(raw) as typeof body;
      } catch {
        return sendJson(res, 400, { message: 'Problems parsing JSON' });
      }
      if (body.key_id !== keyId || typeof body.encrypted_value !== 'string') {
        return sendJson(res, 422, { message: 'Invalid request: key_id or encrypted_value' });
      }
      let value: string;
      try {
        const sealed = sodium.from_base64(body.encrypted_value, sodium.base64_variants.ORIGINAL);
        value = sodium.to_string(
          sodium.crypto_box_seal_open(sealed, keys.publicKey, keys.privateKey),
        );
      } catch {
        return sendJson(res, 422, { message: 'Invalid request: the value does not decrypt' });
      }
      const status = secrets.has(rest) ? 204 : 201;
      secrets.set(rest, value);
      writes.push({ name: rest, value, status });
      res.writeHead(status, { 'content-length': '0' });
      res.end();
      return;
    }
    await readText(req);
    return sendJson(res, 404, { message: 'Not Found', status: '404' });
  }

  const listening = await listen(handle);
  return {
    url: listening.url,
    repository: `${owner}/${repo}`,
    secrets,
    writes,
    requests,
    faults,
    inject: (fault) => faults.inject(fault),
    failWritesAfter: (after, status, times = Number.POSITIVE_INFINITY) => {
      writeFailure = { after, status, left: times };
    },
    close: listening.close,
  };
}
