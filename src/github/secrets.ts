/**
 * Writing one repository secret through the GitHub REST API: fetch the repository's public key,
 * seal the value to it, PUT the sealed value. Values never leave this module unencrypted.
 */
import * as z from 'zod/mini';
import { InputError, ServerError } from '../errors.ts';
import type { Http, HttpRequest } from '../http.ts';
import { LOOPBACK_HOSTS } from '../loopback-host.ts';
import { withHint } from '../providers/oauth-token.ts';
import { sealForKey } from './sealed-box.ts';

export interface Repository {
  apiUrl: URL;
  owner: string;
  name: string;
}

const REPOSITORY = /^([A-Za-z0-9_.-]+)\/([A-Za-z0-9_.-]+)$/;

/** The repository this workflow runs in, from the variables the runner sets. */
export function repositoryFromEnv(env: NodeJS.ProcessEnv = process.env): Repository {
  const match = REPOSITORY.exec(env.GITHUB_REPOSITORY ?? '');
  if (!match?.[1] || !match[2]) {
    throw new InputError(
      'secret-name',
      'needs GITHUB_REPOSITORY (owner/name), which the runner sets; set it when running elsewhere',
    );
  }
  const apiUrl = new URL(env.GITHUB_API_URL || 'https://api.github.com');
  if (apiUrl.protocol !== 'https:' && !LOOPBACK_HOSTS.test(apiUrl.hostname)) {
    throw new InputError('secret-name', 'needs GITHUB_API_URL to be an https:// URL');
  }
  return { apiUrl, owner: match[1], name: match[2] };
}

const publicKeySchema = z.object({ key_id: z.string(), key: z.string() });

/** What a github-token needs, for messages about a refused or missing repository. */
export const PERMISSION_HINT =
  "The 'github-token' must be allowed to write this repository's Actions secrets: a fine-grained " +
  "personal access token with 'Secrets: Read and write' on the repository, or a classic token with " +
  "the 'repo' scope. The workflow's own GITHUB_TOKEN cannot write secrets";

export class RepositorySecrets {
  private readonly http: Http;
  private readonly repository: Repository;
  private readonly token: string;

  constructor(http: Http, repository: Repository, token: string) {
    this.http = http;
    this.repository = repository;
    this.token = token;
  }

  get label(): string {
    return `${this.repository.owner}/${this.repository.name}`;
  }

  /** Encrypt and store `value` as secret `name` (created or replaced). */
  async write(name: string, value: string): Promise<void> {
    const { key_id, key } = await this.publicKey();
    let sealed: string;
    try {
      sealed = await sealForKey(key, value);
    } catch (error) {
      throw new ServerError({
        server: this.repository.apiUrl.origin,
        endpoint: `GET ${this.path('secrets/public-key')}`,
        status: 200,
        description: `unusable public key (${error instanceof Error ? error.message : 'encryption failed'})`,
      });
    }
    await this.send({
      method: 'PUT',
      url: this.url(`secrets/${encodeURIComponent(name)}`),
      json: { encrypted_value: sealed, key_id },
      // Storing the same value twice leaves the same secret: safe to repeat.
      idempotent: true,
    });
  }

  private async publicKey(): Promise<z.infer<typeof publicKeySchema>> {
    const request: HttpRequest = { method: 'GET', url: this.url('secrets/public-key') };
    try {
      const { data } = await this.http.json(this.withAuth(request), publicKeySchema);
      return data;
    } catch (error) {
      throw this.explain(error);
    }
  }

  private async send(request: HttpRequest): Promise<void> {
    try {
      await this.http.send(this.withAuth(request));
    } catch (error) {
      throw this.explain(error);
    }
  }

  private withAuth(request: HttpRequest): HttpRequest {
    return {
      ...request,
      // GitHub answers 500 now and then; both requests are safe to repeat, and the final write
      // is the one that must not be lost.
      retryStatuses: [500],
      bearer: this.token,
      headers: { accept: 'application/vnd.github+json', 'x-github-api-version': '2022-11-28' },
    };
  }

  private path(rest: string): string {
    const base = this.repository.apiUrl.pathname.replace(/\/+$/, '');
    const { owner, name } = this.repository;
    return `${base}/repos/${encodeURIComponent(owner)}/${encodeURIComponent(name)}/actions/${rest}`;
  }

  private url(rest: string): URL {
    return new URL(this.path(rest), this.repository.apiUrl.origin);
  }

  private explain(error: unknown): unknown {
    if (!(error instanceof ServerError)) return error;
    if (error.status === 401) {
      return withHint(error, "The 'github-token' is invalid or expired");
    }
    if (error.status === 403) return withHint(error, PERMISSION_HINT);
    if (error.status === 404) {
      // GitHub hides repositories a token cannot see behind 404.
      return withHint(
        error,
        `Repository ${this.label} was not found, or the token cannot see it. ${PERMISSION_HINT}`,
      );
    }
    return error;
  }
}
