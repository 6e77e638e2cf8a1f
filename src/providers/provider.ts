/**
 * The interface every platform implements, and the registry the entry points use. Providers speak
 * HTTP through `ctx.http` and report secrets they receive through `ctx.mask`; they never touch
 * @actions/core, so the CLI and tests use them unchanged.
 */
import type { Http } from '../http.ts';
import type { Operation, Platform, TokenConfig } from '../config.ts';

export interface TokenSet {
  accessToken: string;
  refreshToken?: string;
  tokenType: string;
  scope?: string;
  /** Undefined when the token never expires (Mastodon user tokens). */
  expiresAt?: Date;
  /**
   * When the server answered with a token it had issued before this request (its `created_at`
   * lies well before the answer): a token that may already be in use elsewhere.
   */
  issuedEarlier?: Date;
}

export interface Identity {
  /** Always a string: Mastodon snowflakes exceed 2^53. */
  id: string;
  username: string;
  url?: string;
  /** An app-only (client-credentials) token has no user behind it. */
  kind?: 'user' | 'app';
}

export interface Software {
  name: string;
  version?: string;
}

/** What a token-obtaining operation returns. */
export interface TokenResult {
  tokens: TokenSet;
  identity?: Identity;
  /**
   * Why `revoke-on-exit` must leave this token alone (revoking it would end something the user
   * keeps), for the main step to say instead of saving the token for the post step.
   */
  keepOnExit?: string;
}

export interface Validation {
  valid: boolean;
  /** Why an invalid token is invalid, for the log (`revoked or unknown`, `expired at …`). */
  reason?: string;
  identity?: Identity;
  scope?: string;
  expiresAt?: Date;
}

export interface ProviderContext {
  http: Http;
  /** The server, resolved (AnyWeb's default filled in). */
  instance: URL;
  config: TokenConfig;
  /** Register a secret received from a server before it can reach any output. */
  mask(secret: string): void;
  /** Progress for the log; never pass a secret. */
  log(message: string): void;
  /** Something the user should act on or know (a warning in the workflow); never a secret. */
  warn(message: string): void;
  /** What detection found; absent when `platform` was given. */
  software?: Software;
}

export interface Provider {
  readonly platform: Platform;
  /** Display name for messages ("Mastodon-API server", "Misskey", …). */
  readonly title: string;
  /**
   * Platform-specific input checks for `operation`, run after the platform is known and before
   * any operation request (and before a write-back's first secret write). Throws InputError, or
   * UnsupportedError when the `software` detection found lacks the operation.
   */
  checkInputs(operation: Operation, config: TokenConfig, software?: Software): void;
  exchangeCode?(ctx: ProviderContext): Promise<TokenResult>;
  clientCredentials?(ctx: ProviderContext): Promise<TokenResult>;
  refresh?(ctx: ProviderContext): Promise<TokenResult>;
  validate?(ctx: ProviderContext, accessToken: string): Promise<Validation>;
  revoke?(ctx: ProviderContext, accessToken: string): Promise<void>;
  /** Revoke a refresh token, which ends its grant (rotating refresh tokens included). */
  revokeRefreshToken?(ctx: ProviderContext, refreshToken: string): Promise<void>;
  /** For operations the platform lacks: a sentence naming the platform and the alternative. */
  unsupported(operation: Operation): string;
}

/** Expiry from an `expires_in` lifetime in seconds; absent, zero or negative means never. */
export function expiryFromLifetime(
  expiresIn: number | string | undefined,
  now = Date.now(),
): Date | undefined {
  const seconds = typeof expiresIn === 'string' ? Number(expiresIn) : expiresIn;
  if (seconds === undefined || !Number.isFinite(seconds) || seconds <= 0) return undefined;
  return new Date(now + seconds * 1000);
}
