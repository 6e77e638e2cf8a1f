/** Registering an app on a Mastodon-API server (POST /api/v1/apps), the step users did with curl. */
import * as z from 'zod/mini';
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
  const { data } = await http.json(
    {
      method: 'POST',
      url,
      form: {
        client_name: app.name,
        // One string, newline-separated: arrays are Mastodon 4.3+ only and GoToSocial and
        // Pleroma reject them.
        redirect_uris: app.redirectUris.join('\n'),
        scopes: app.scope,
        website: app.website,
      },
    },
    registration,
  );
  mask(data.client_secret);
  return { clientId: data.client_id, clientSecret: data.client_secret };
}

export function withSlash(instance: URL): URL {
  const url = new URL(instance);
  if (!url.pathname.endsWith('/')) url.pathname += '/';
  return url;
}
