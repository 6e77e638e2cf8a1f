/** The token action's main step: parse → act → publish. */
import { describeError } from './errors.ts';
import { type TokenConfig } from './config.ts';
import { parseTokenInputs } from './inputs.ts';
import { runOperation, type Runtime } from './operations.ts';
import {
  fail,
  info,
  maskSecret,
  publishResult,
  saveRevokeState,
  summaryRows,
  warn,
  writeSummary,
  type OperationResult,
} from './publish.ts';

export async function run(): Promise<void> {
  try {
    const config = parseTokenInputs();
    const writeBack = config.secretName ? await prepareWriteBack(config) : undefined;
    const result = await runOperation(config, { mask: maskSecret, log: info, warn, writeBack });
    // The token the step ends with: the one it obtained, or the one validate found valid.
    const token = result.tokens?.accessToken ?? (result.valid ? config.accessToken : undefined);
    publishResult(result, { exportEnv: config.exportEnv, token });
    if (config.exportEnv && !token && result.operation === 'validate') {
      info(`${config.exportEnv} was not exported: the token is not valid`);
    }
    if (config.revokeOnExit && result.tokens && result.keepOnExit) {
      warn(`revoke-on-exit: the post step will not revoke this token: ${result.keepOnExit}`);
    } else if (config.revokeOnExit && result.tokens) {
      saveRevokeState({
        accessToken: result.tokens.accessToken,
        platform: result.platform,
        expiresAt: result.tokens.expiresAt,
      });
    }
    info(describeResult(result));
    await writeSummary(`fedi-token: ${config.operation}`, summaryRows(result));
    if (result.failure) fail(result.failure);
    if (result.valid === false && config.failOnInvalid) {
      fail(`The access token is not valid: ${result.reason ?? 'rejected by the server'}`);
    }
  } catch (error) {
    fail(describeError(error));
  }
}

/**
 * Loaded only when needed: it brings libsodium, which no other run should pay for. Prepared before
 * any request, so a runner environment without the repository fails first.
 */
async function prepareWriteBack(config: TokenConfig): Promise<Runtime['writeBack']> {
  const writeBack = await import('./refresh-writeback.ts');
  return writeBack.prepareWriteBack(config, { log: info });
}

/** One log line of non-secret facts. */
function describeResult(result: OperationResult): string {
  const who = result.identity?.username
    ? ` for ${result.identity.kind === 'app' ? 'app ' : '@'}${result.identity.username}`
    : '';
  const where = `on ${result.platform}`;
  switch (result.operation) {
    case 'validate':
      return result.valid
        ? `The access token is valid${who} ${where}`
        : `The access token is not valid ${where}: ${result.reason ?? 'rejected'}`;
    case 'revoke':
      return `The token was revoked ${where}`;
    default: {
      const expires = result.tokens?.expiresAt?.toISOString() ?? 'never';
      return `Got a ${result.tokens?.tokenType ?? ''} token${who} ${where} (expires: ${expires})`;
    }
  }
}
