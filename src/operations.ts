/**
 * Config → provider call → result. Shared by the action's main and post steps and by the CLI; it
 * knows nothing of @actions/core (secrets reach the runner through `mask`).
 */
import { InputError, UnsupportedError } from './errors.ts';
import { Http } from './http.ts';
import { type Operation, type Platform, type TokenConfig } from './config.ts';
import { checkRequiredInputs, inputsWithoutEffect } from './inputs.ts';
import type { OperationResult } from './publish.ts';
import { detectPlatform } from './providers/detect.ts';
import type { Provider, ProviderContext, Software } from './providers/provider.ts';
import { providerFor } from './providers/registry.ts';

export interface Runtime {
  mask(secret: string): void;
  log(message: string): void;
  /** Warnings, shown as such; without it they are logged like progress. */
  warn?(message: string): void;
  http?: Http;
  /**
   * Wraps a refresh when `secret-name` asks for the rotated token to be written back. Given only
   * by the main step, so the write-back and libsodium stay out of every other bundle.
   */
  writeBack?: (refresh: () => Promise<OperationResult>) => Promise<OperationResult>;
}

export interface Resolved {
  provider: Provider;
  ctx: ProviderContext;
  software?: Software;
}

/** The provider method behind each operation. */
const METHOD = {
  exchange: 'exchangeCode',
  'client-credentials': 'clientCredentials',
  refresh: 'refresh',
  validate: 'validate',
  revoke: 'revoke',
} as const satisfies Record<Operation, keyof Provider>;

/** Platforms `auto` can detect: a config that none of them accepts fails before detection. */
const DETECTABLE: readonly Platform[] = ['mastodon', 'misskey'];

/** Why `provider` cannot run this config, or undefined when it can. */
function rejection(
  provider: Provider,
  config: TokenConfig,
  software?: Software,
): Error | undefined {
  if (!provider[METHOD[config.operation]]) {
    return new UnsupportedError(provider.unsupported(config.operation));
  }
  try {
    checkRequiredInputs(config);
    provider.checkInputs(config.operation, config, software);
  } catch (error) {
    if (error instanceof InputError) return error;
    throw error;
  }
  if (config.revokeOnExit && !provider.revoke) {
    return new InputError('revoke-on-exit', provider.unsupported('revoke'));
  }
  return undefined;
}

/**
 * With `auto`, every platform detection could find refuses the config: one reason each, the
 * platforms that lack the operation first, since no input can change their answer.
 */
function noCandidateAccepts(refused: { provider: Provider; error: Error }[]): Error {
  const [first] = refused;
  if (!first) throw new Error('noCandidateAccepts needs at least one rejection');
  if (refused.every(({ error }) => error.message === first.error.message)) return first.error;
  const reasons = [...refused]
    .sort(
      (a, b) =>
        Number(b.error instanceof UnsupportedError) - Number(a.error instanceof UnsupportedError),
    )
    .map(({ provider, error }) => {
      const reason = error.message.replace(/\.$/, '');
      return reason.includes(provider.title) ? reason : `${provider.title}: ${reason}`;
    });
  return new UnsupportedError(
    `No platform that 'auto' can detect accepts these inputs. ${reasons.join('. ')}`,
  );
}

/** Find the platform (detecting it only for `auto`), then check the platform's own inputs. */
export async function resolve(config: TokenConfig, runtime: Runtime): Promise<Resolved> {
  const http =
    runtime.http ?? new Http({ timeoutMs: config.timeoutMs, maxAttempts: config.maxAttempts });
  const instance = config.instance ?? originOf(config);
  let platform: Platform;
  let software: Software | undefined;
  if (config.platform === 'auto') {
    // Detection costs requests; inputs that no detectable platform accepts fail before them.
    const refused = DETECTABLE.flatMap((candidate) => {
      const provider = providerFor(candidate);
      const error = rejection(provider, config);
      return error ? [{ provider, error }] : [];
    });
    if (refused.length === DETECTABLE.length) throw noCandidateAccepts(refused);
    ({ platform, software } = await detectPlatform(http, instance));
    runtime.log(
      `Detected ${platform}${software ? ` (${software.name})` : ''} at ${instance.origin}`,
    );
  } else {
    platform = config.platform;
  }
  const provider = providerFor(platform);
  const rejected = rejection(provider, config, software);
  if (rejected) throw rejected;
  const ctx: ProviderContext = {
    http,
    instance,
    config,
    mask: runtime.mask,
    log: runtime.log,
    warn: runtime.warn ?? runtime.log,
    software,
  };
  return { provider, ctx, software };
}

export async function runOperation(
  config: TokenConfig,
  runtime: Runtime,
): Promise<OperationResult> {
  const { provider, ctx, software } = await resolve(config, runtime);
  // Once the platform is known and before its requests. Here, not in resolve: the post step's
  // revoke reads the same inputs and would repeat the warnings.
  for (const warning of inputsWithoutEffect(config, provider.platform)) ctx.warn(warning);
  const base = { operation: config.operation, platform: provider.platform, software };
  const call = <K extends keyof Provider>(
    name: K,
    operation: Operation,
  ): NonNullable<Provider[K]> => {
    const method = provider[name];
    if (!method) throw new UnsupportedError(provider.unsupported(operation));
    return method as NonNullable<Provider[K]>;
  };
  switch (config.operation) {
    case 'exchange':
      return { ...base, ...(await call('exchangeCode', 'exchange').call(provider, ctx)) };
    case 'client-credentials':
      return {
        ...base,
        ...(await call('clientCredentials', 'client-credentials').call(provider, ctx)),
      };
    case 'refresh': {
      const refresh = call('refresh', 'refresh');
      const run = async (): Promise<OperationResult> => ({
        ...base,
        ...(await refresh.call(provider, ctx)),
      });
      return config.secretName && runtime.writeBack ? runtime.writeBack(run) : run();
    }
    case 'validate': {
      const validation = await call('validate', 'validate').call(
        provider,
        ctx,
        required(config.accessToken),
      );
      return { ...base, ...validation };
    }
    case 'revoke': {
      // The refresh token first: revoking it ends the grant, so no new access token can follow.
      // Providers without revokeRefreshToken have refused a revoke without access-token already.
      if (config.refreshToken && provider.revokeRefreshToken) {
        await provider.revokeRefreshToken(ctx, config.refreshToken);
      }
      if (config.accessToken)
        await call('revoke', 'revoke').call(provider, ctx, config.accessToken);
      return { ...base, revoked: true };
    }
  }
}

/** Revoke a token with the platform already known (the post step). */
export async function revokeWith(
  config: TokenConfig,
  platform: Platform,
  accessToken: string,
  runtime: Runtime,
): Promise<void> {
  const { provider, ctx } = await resolve(
    { ...config, platform, operation: 'revoke', accessToken },
    runtime,
  );
  if (!provider.revoke) throw new UnsupportedError(provider.unsupported('revoke'));
  await provider.revoke(ctx, accessToken);
}

function required(value: string | undefined): string {
  // checkRequiredInputs guarantees these for the operations that use them.
  if (value === undefined) throw new Error('missing value that inputs.ts should have required');
  return value;
}

function originOf(config: TokenConfig): URL {
  const endpoint = config.endpoints.token;
  if (!endpoint) throw new InputError('instance', 'is required');
  return new URL(endpoint.origin);
}
