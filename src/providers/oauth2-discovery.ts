/**
 * Where a generic OAuth 2.0 server keeps its endpoints: the explicit `*-endpoint` inputs first,
 * then RFC 8414 metadata (`/.well-known/oauth-authorization-server`, falling back to OpenID
 * Connect's `/.well-known/openid-configuration`). Discovery costs a request, so it runs only when
 * an endpoint the operation needs was not given.
 */
import * as z from 'zod/mini';
import { InputError, NetworkError, ServerError } from '../errors.ts';
import type { Http } from '../http.ts';
import type { AuthMethod, TokenConfig } from '../config.ts';
import { LOOPBACK_HOSTS } from '../loopback-host.ts';
import type { ClientAuth } from './oauth-token.ts';

export type EndpointName = 'token' | 'revocation' | 'introspection' | 'userinfo';

export const ENDPOINT_INPUTS: Record<EndpointName, string> = {
  token: 'token-endpoint',
  revocation: 'revocation-endpoint',
  introspection: 'introspection-endpoint',
  userinfo: 'userinfo-endpoint',
};

const metadataSchema = z.object({
  issuer: z.optional(z.string()),
  token_endpoint: z.optional(z.string()),
  revocation_endpoint: z.optional(z.string()),
  introspection_endpoint: z.optional(z.string()),
  userinfo_endpoint: z.optional(z.string()),
  grant_types_supported: z.optional(z.array(z.string())),
  token_endpoint_auth_methods_supported: z.optional(z.array(z.string())),
});
type Metadata = z.infer<typeof metadataSchema>;

export interface ServerEndpoints {
  token?: URL;
  revocation?: URL;
  introspection?: URL;
  userinfo?: URL;
  /** Undefined when the server published no metadata (or it was not needed). */
  authMethods?: readonly string[];
  grantTypes?: readonly string[];
}

/**
 * The endpoints for an operation. `needed` must all be found; `wanted` are used when present
 * (validate takes introspection or userinfo, whichever the server has).
 */
export async function findEndpoints(
  http: Http,
  config: TokenConfig,
  instance: URL | undefined,
  needed: readonly EndpointName[],
  wanted: readonly EndpointName[] = [],
): Promise<ServerEndpoints> {
  const explicit: ServerEndpoints = { ...config.endpoints };
  const missing = [...needed, ...wanted].filter((name) => !explicit[name]);
  if (missing.length === 0 || !instance) {
    requireAll(explicit, needed, instance === undefined);
    return explicit;
  }
  const { metadata, url } = await discover(http, instance);
  const found: ServerEndpoints = {
    authMethods: metadata.token_endpoint_auth_methods_supported,
    grantTypes: metadata.grant_types_supported,
  };
  for (const name of ['token', 'revocation', 'introspection', 'userinfo'] as const) {
    found[name] = explicit[name] ?? endpointFrom(metadata, name, url);
  }
  requireAll(found, needed, false, instance);
  return found;
}

function requireAll(
  endpoints: ServerEndpoints,
  needed: readonly EndpointName[],
  noInstance: boolean,
  discoveredAt?: URL,
): void {
  for (const name of needed) {
    if (endpoints[name]) continue;
    const where = discoveredAt
      ? `the server's metadata at ${discoveredAt.origin} lists no ${name}_endpoint`
      : noInstance
        ? "there is no 'instance' to discover it from"
        : 'it was not given';
    throw new InputError(ENDPOINT_INPUTS[name], `is required: ${where}`);
  }
}

/** RFC 8414 §3 puts the well-known segment before an issuer's path; OIDC appends it. */
function metadataUrls(instance: URL): URL[] {
  const path = instance.pathname.replace(/\/+$/, '');
  return [
    new URL(`/.well-known/oauth-authorization-server${path}`, instance.origin),
    new URL(`${path}/.well-known/openid-configuration`, instance.origin),
  ];
}

/** The first metadata document the server has, and where it was found. */
async function discover(http: Http, instance: URL): Promise<{ metadata: Metadata; url: URL }> {
  const tried: string[] = [];
  for (const url of metadataUrls(instance)) {
    try {
      const { data } = await http.json({ method: 'GET', url }, metadataSchema);
      checkIssuer(data, instance, url);
      return { metadata: data, url };
    } catch (error) {
      // Only "not here" moves on to the next document; a broken or mismatched one is reported.
      const absent =
        (error instanceof ServerError && [400, 401, 403, 404, 405, 410].includes(error.status)) ||
        (error instanceof NetworkError && error.failure === 'refused');
      if (!absent) throw error;
      tried.push(
        `${url.pathname} (${error instanceof ServerError ? `HTTP ${error.status}` : error.failure})`,
      );
    }
  }
  throw new InputError(
    'token-endpoint',
    `is required: ${instance.origin} publishes no OAuth metadata (tried ${tried.join(', ')})`,
  );
}

/**
 * RFC 8414 §3.3: the metadata's issuer must be the address it was fetched for, or another server
 * could send our client secret to endpoints of its choosing.
 */
function checkIssuer(metadata: Metadata, instance: URL, url: URL): void {
  if (metadata.issuer === undefined) return;
  const normalise = (value: string): string => value.replace(/\/+$/, '');
  if (normalise(metadata.issuer) !== normalise(instance.href)) {
    throw new ServerError({
      server: url.origin,
      endpoint: `GET ${url.pathname}`,
      status: 200,
      description: `the metadata names issuer ${JSON.stringify(metadata.issuer.slice(0, 120))}, not ${instance.href}`,
      hint: "Set 'instance' to the issuer URL exactly",
    });
  }
}

function endpointFrom(metadata: Metadata, name: EndpointName, source: URL): URL | undefined {
  const value = metadata[`${name}_endpoint`];
  if (value === undefined) return undefined;
  const url = URL.canParse(value) ? new URL(value) : undefined;
  const safe =
    url &&
    (url.protocol === 'https:' || (url.protocol === 'http:' && LOOPBACK_HOSTS.test(url.hostname)));
  if (!url || !safe) {
    throw new ServerError({
      server: source.origin,
      endpoint: `GET ${source.pathname}`,
      status: 200,
      description: `${name}_endpoint is not an https:// URL`,
      hint: `Give '${ENDPOINT_INPUTS[name]}' explicitly`,
    });
  }
  return url;
}

/**
 * Client authentication for the token, revocation and introspection endpoints. `auto` takes what
 * the server lists, preferring Basic (RFC 6749 requires servers to support it, and RFC 8414 makes
 * it the default when nothing is listed); without a client secret the client is public.
 */
export function chooseClientAuth(
  configured: AuthMethod,
  clientSecret: string | undefined,
  authMethods: readonly string[] | undefined,
): ClientAuth {
  if (configured !== 'auto') return configured;
  if (!clientSecret) return 'none';
  if (!authMethods || authMethods.includes('client_secret_basic')) return 'client_secret_basic';
  if (authMethods.includes('client_secret_post')) return 'client_secret_post';
  return 'client_secret_basic';
}
