/** Registering an app on a Mastodon-API server (POST /api/v1/apps), the step users did with curl. */
import * as z from 'zod/mini';
import { ServerError } from '../errors.ts';
import type { Http } from '../http.ts';

export interface RegisteredClient {
  clientId: string;
  clientSecret: string;
}

const registration = z.object({
  client_id: z.string().check(z.minLength(1)),
  client_secret: z.string().check(z.minLength(1)),
});

export interface AppRequest {
  name: string;
  website: string;
  redirectUris: string[];
  scope: string;
}

export async function registerApp(
  http: Http,
  instance: URL,
  app: AppRequest,
  mask: (secret: string) => void,
): Promise<RegisteredClient> {
  const url = new URL('api/v1/apps', withSlash(instance));
  const request = {
    method: 'POST' as const,
    url,
    form: {
      client_name: app.name,
      // One string, newline-separated: arrays are Mastodon 4.3+ only and GoToSocial and
      // Pleroma reject them.
      redirect_uris: app.redirectUris.join('\n'),
      scopes: app.scope,
      website: app.website,
    },
  };
  let data: z.infer<typeof registration>;
  try {
    ({ data } = await http.json(request, registration));
  } catch (error) {
    throw error instanceof ServerError && error.status === 429 ? rateLimited(error) : error;
  }
  mask(data.client_secret);
  return { clientId: data.client_id, clientSecret: data.client_secret };
}

/**
 * Mastodon lets one address register 5 apps per 10 minutes (Rack::Attack's
 * throttle_oauth_application_registrations/ip, config/initializers/rack_attack.rb, v4.5.15), and
 * its 429 says in X-RateLimit-Reset when the window ends, up to 600 s away. A wait that short
 * is taken by the HTTP layer; a longer one is the user's to take.
 */
function rateLimited(error: ServerError, now = Date.now()): ServerError {
  const when = error.retryAt
    ? `after ${error.retryAt.toISOString().replace(/\.\d+Z$/, 'Z')} (in ${inWords(error.retryAt.getTime() - now)})`
    : 'in a few minutes (Mastodon counts 10-minute windows)';
  return new ServerError({
    server: error.server,
    endpoint: error.endpoint,
    status: error.status,
    code: error.code,
    description: error.description,
    retryAt: error.retryAt,
    hint: `The server limits app registrations (Mastodon: 5 per 10 minutes from one address). Try again ${when}, or reuse an app you registered before with --client-id and --client-secret`,
  });
}

function inWords(ms: number): string {
  const seconds = Math.max(1, Math.ceil(ms / 1000));
  if (seconds < 120) return `${seconds} s`;
  const minutes = Math.ceil(seconds / 60);
  return minutes < 120 ? `${minutes} min` : `${Math.ceil(minutes / 60)} h`;
}

export function withSlash(instance: URL): URL {
  const url = new URL(instance);
  if (!url.pathname.endsWith('/')) url.pathname += '/';
  return url;
}
