/** Where to send the browser: the authorize URL for OAuth 2.0 servers and for MiAuth. */
import * as z from 'zod/mini';
import { ServerError, UnsupportedError } from '../errors.ts';
import type { Http } from '../http.ts';
import { withSlash } from './register.ts';

export interface AuthorizeParams {
  clientId: string;
  redirectUri: string;
  scope?: string;
  state: string;
  codeChallenge: string;
}

export function authorizeUrl(endpoint: URL, params: AuthorizeParams): URL {
  const url = new URL(endpoint);
  url.searchParams.set('response_type', 'code');
  url.searchParams.set('client_id', params.clientId);
  url.searchParams.set('redirect_uri', params.redirectUri);
  if (params.scope) url.searchParams.set('scope', params.scope);
  url.searchParams.set('state', params.state);
  url.searchParams.set('code_challenge', params.codeChallenge);
  url.searchParams.set('code_challenge_method', 'S256');
  return url;
}

export function mastodonAuthorizeEndpoint(instance: URL): URL {
  return new URL('oauth/authorize', withSlash(instance));
}

const metadata = z.object({ authorization_endpoint: z.string() });

/** RFC 8414 metadata first, then OpenID Connect discovery, as generic servers offer one or both. */
export async function discoverAuthorizeEndpoint(http: Http, instance: URL): Promise<URL> {
  const tried: string[] = [];
  for (const path of ['oauth-authorization-server', 'openid-configuration']) {
    const url = new URL(`/.well-known/${path}`, instance);
    try {
      const { data } = await http.json({ method: 'GET', url }, metadata);
      return new URL(data.authorization_endpoint, url);
    } catch (error) {
      if (!(error instanceof ServerError)) throw error;
      tried.push(`${url.pathname} (HTTP ${error.status})`);
    }
  }
  throw new UnsupportedError(
    `${instance.origin} publishes no authorization endpoint; tried ${tried.join(', ')}`,
  );
}

/** Misskey permissions are comma-separated, and a plain `read` does not exist there. */
export function miAuthUrl(
  instance: URL,
  session: string,
  options: { name: string; callback?: string; permissions: string[] },
): URL {
  const url = new URL(`miauth/${encodeURIComponent(session)}`, withSlash(instance));
  url.searchParams.set('name', options.name);
  if (options.callback) url.searchParams.set('callback', options.callback);
  url.searchParams.set('permission', options.permissions.join(','));
  return url;
}
