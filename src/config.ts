/**
 * The token action's typed config and the value lists it is made of. Every module that acts on a
 * config reads its shape from here; only inputs.ts builds one. Kept apart from inputs.ts so that
 * data flows one way: inputs → config → providers → publish, with no module importing back.
 */
export const OPERATIONS = [
  'exchange',
  'client-credentials',
  'refresh',
  'validate',
  'revoke',
] as const;
export type Operation = (typeof OPERATIONS)[number];

export const PLATFORMS = ['auto', 'mastodon', 'misskey', 'anyweb', 'oauth2'] as const;
export type PlatformInput = (typeof PLATFORMS)[number];
export type Platform = Exclude<PlatformInput, 'auto'>;

export const AUTH_METHODS = ['auto', 'client_secret_basic', 'client_secret_post'] as const;
export type AuthMethod = (typeof AUTH_METHODS)[number];

export const OOB_REDIRECT_URI = 'urn:ietf:wg:oauth:2.0:oob';
export const ANYWEB_INSTANCE = 'https://api.anyweb.cc';

export interface TokenConfig {
  operation: Operation;
  platform: PlatformInput;
  /** Undefined only when the platform supplies a default (AnyWeb) or endpoints are explicit. */
  instance: URL | undefined;
  clientId?: string;
  clientSecret?: string;
  code?: string;
  redirectUri: string;
  scope?: string;
  codeVerifier?: string;
  accessToken?: string;
  refreshToken?: string;
  endpoints: {
    token?: URL;
    revocation?: URL;
    introspection?: URL;
    userinfo?: URL;
  };
  tokenEndpointAuthMethod: AuthMethod;
  exportEnv?: string;
  revokeOnExit: boolean;
  failOnInvalid: boolean;
  secretName?: string;
  githubToken?: string;
  timeoutMs: number;
  maxAttempts: number;
  /**
   * The inputs the workflow gave a value other than the default, for the warnings about inputs
   * that have no effect (inputs.ts). Absent where the config does not come from inputs (the CLI).
   */
  given?: ReadonlySet<string>;
}
