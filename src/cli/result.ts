/** The secrets a login produces, named for the repository, and how they are shown. */
import { formatSoftware, type OperationResult } from '../publish.ts';
import type { Terminal } from './output.ts';
import type { RegisteredClient } from './register.ts';

export interface LoginOutcome {
  instance: URL;
  result: OperationResult;
  /** The app the token belongs to (needed later to refresh or revoke); absent for MiAuth. */
  client?: RegisteredClient;
}

export interface NamedSecret {
  name: string;
  value: string;
}

export function secretsOf(outcome: LoginOutcome, prefix: string): NamedSecret[] {
  const { tokens } = outcome.result;
  const list: NamedSecret[] = [];
  if (tokens) list.push({ name: `${prefix}_TOKEN`, value: tokens.accessToken });
  if (tokens?.refreshToken)
    list.push({ name: `${prefix}_REFRESH_TOKEN`, value: tokens.refreshToken });
  if (outcome.client) {
    list.push({ name: `${prefix}_CLIENT_ID`, value: outcome.client.clientId });
    list.push({ name: `${prefix}_CLIENT_SECRET`, value: outcome.client.clientSecret });
  }
  return list;
}

/** Non-secret facts, shared by the human and the JSON output. */
export function factsOf(outcome: LoginOutcome) {
  const { result } = outcome;
  const tokens = result.tokens;
  return {
    instance: outcome.instance.origin,
    platform: result.platform,
    software: formatSoftware(result.software) || undefined,
    account: result.identity
      ? { id: result.identity.id, username: result.identity.username }
      : undefined,
    scope: tokens?.scope ?? result.scope,
    expiresAt: (tokens?.expiresAt ?? result.expiresAt)?.toISOString() ?? null,
  };
}

export function describeLogin(outcome: LoginOutcome): string {
  const facts = factsOf(outcome);
  const who = facts.account ? `@${facts.account.username}` : 'an account';
  return (
    `Logged in as ${who} on ${facts.instance} (${facts.platform}); ` +
    `scopes: ${facts.scope ?? 'as granted'}; expires: ${facts.expiresAt ?? 'never'}`
  );
}

export function printSecrets(terminal: Terminal, secrets: NamedSecret[]): void {
  terminal.stdout.write(
    `${terminal.heading('Store these as repository secrets')} (Settings → Secrets and variables → Actions):\n\n` +
      secrets.map((secret) => `${secret.name}=${secret.value}\n`).join('') +
      '\n',
  );
}

export function printJson(
  terminal: Terminal,
  outcome: LoginOutcome,
  secrets: NamedSecret[],
  stored: boolean,
): void {
  const body = {
    ...factsOf(outcome),
    ...(stored
      ? { stored: secrets.map((secret) => secret.name) }
      : { secrets: Object.fromEntries(secrets.map((secret) => [secret.name, secret.value])) }),
  };
  terminal.stdout.write(`${JSON.stringify(body, null, 2)}\n`);
}
