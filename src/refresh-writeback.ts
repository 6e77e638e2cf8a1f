/**
 * Refresh-token rotation without loss. A rotating server invalidates the old refresh token the
 * moment it hands out the new one, so the new one must reach the repository secret or the user has
 * to authorize again. Hence the order: prove the secret can be written (by writing the current
 * value back) before spending the refresh token, then refresh, then write the new value with
 * retries. If that last write still fails, the step fails with instructions while the new token
 * is already masked and is output for a later step to store.
 */
import { describeError } from './errors.ts';
import { Http } from './http.ts';
import type { TokenConfig } from './config.ts';
import type { OperationResult } from './publish.ts';
import { RepositorySecrets, repositoryFromEnv } from './github/secrets.ts';

export interface WriteBackRuntime {
  log(message: string): void;
  env?: NodeJS.ProcessEnv;
  /** The HTTP layer for the GitHub API; by default one with the config's timeouts. */
  http?: Http;
}

/** The last write is worth more patience than an ordinary request. */
const FINAL_WRITE_MIN_ATTEMPTS = 5;

/**
 * The write-back for `config`, ready to wrap its refresh. The repository comes from the runner's
 * environment and is checked here, so the main step calls this before any request: a run that
 * could never store the new token fails before detection, before the proof write, before the
 * refresh.
 */
export function prepareWriteBack(
  config: TokenConfig,
  runtime: WriteBackRuntime,
): (refresh: () => Promise<OperationResult>) => Promise<OperationResult> {
  const name = config.secretName;
  const current = config.refreshToken;
  const githubToken = config.githubToken;
  if (!name || !githubToken || !current) {
    throw new Error('write-back needs secret-name, github-token and refresh-token (inputs.ts)');
  }
  const repository = repositoryFromEnv(runtime.env);
  const http =
    runtime.http ??
    new Http({
      timeoutMs: config.timeoutMs,
      maxAttempts: Math.max(config.maxAttempts, FINAL_WRITE_MIN_ATTEMPTS),
    });
  const secrets = new RepositorySecrets(http, repository, githubToken);

  return async (refresh) => {
    try {
      await secrets.write(name, current);
    } catch (error) {
      throw prefixed(
        error,
        `Nothing was refreshed: secret ${name} of ${secrets.label} cannot be written. `,
      );
    }
    runtime.log(`Secret ${name} of ${secrets.label} is writable; refreshing`);

    const result = await refresh();
    const next = result.tokens?.refreshToken;
    if (!next || next === current) {
      runtime.log(`The refresh token did not change; secret ${name} already holds it`);
      return result;
    }
    try {
      await secrets.write(name, next);
    } catch (error) {
      return {
        ...result,
        failure:
          `The server rotated the refresh token, but writing it to secret ${name} of ${secrets.label} ` +
          `failed: ${describeError(error)}. The old refresh token no longer works. The new one is ` +
          "this step's output 'refresh-token' (masked): store it in a later step of this job, e.g. " +
          `with if: failure() and \`gh secret set ${name}\` reading it from an environment variable, ` +
          'before the job ends, or authorize again',
      };
    }
    runtime.log(`Stored the rotated refresh token in secret ${name} of ${secrets.label}`);
    return result;
  };
}

/** The same error, its message led by what it means for this step. */
function prefixed(error: unknown, lead: string): unknown {
  if (error instanceof Error) {
    error.message = `${lead}${error.message}`;
  }
  return error;
}
