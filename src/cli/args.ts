/**
 * The command line, parsed and checked before anything is sent: every mistake names the flag and
 * what it accepts. Values are checked with the action's own readers, so the CLI and the action
 * agree on what an instance URL or a scope may be.
 */
import { parseArgs } from 'node:util';
import { InputError } from '../errors.ts';
import { readEnum, readNumber, readUrl, type InputSource } from '../inputs.ts';
import { usageError } from './exit.ts';

export const LOGIN_PLATFORMS = ['auto', 'mastodon', 'misskey', 'oauth2'] as const;
export type LoginPlatform = (typeof LOGIN_PLATFORMS)[number];

export interface LoginOptions {
  instance: URL;
  platform: LoginPlatform;
  scope?: string;
  clientId?: string;
  clientSecret?: string;
  oob: boolean;
  port?: number;
  /** How long the approval may take (--timeout). */
  timeoutMs: number;
  /**
   * How long one request may take: 30 s, or --timeout when that is shorter, so that nothing the
   * login waits for takes longer than --timeout.
   */
  requestTimeoutMs: number;
  gh: boolean;
  repo?: string;
  prefix: string;
  json: boolean;
  appName: string;
}

export type Command =
  | { kind: 'help'; topic?: 'login' }
  | { kind: 'version' }
  | { kind: 'login'; options: LoginOptions };

export const USAGE = `Usage: fedi-token login <instance> [options]

Authorize fedi-token on a fediverse server once, then store the printed values as
repository secrets for the fedi-token GitHub Action.

Options:
  --platform <name>       auto (default), mastodon, misskey or oauth2
  --scope <scopes>        scopes to ask for (default: read on Mastodon-API servers,
                          read:account on Misskey)
  --client-id <id>        use an existing app instead of registering one
  --client-secret <s>     its secret (or set FEDI_TOKEN_CLIENT_SECRET, which no
                          process listing shows)
  --oob                   copy-paste the code instead of the loopback redirect
  --port <n>              loopback port (default: any free one); with your own app,
                          register http://127.0.0.1:<n>/callback as its redirect URI
  --timeout <seconds>     how long to wait for the approval (default 300); no
                          request waits longer either (each waits at most 30 s)
  --gh                    store the secrets with \`gh secret set\` instead of printing them
  --repo <owner/name>     repository for --gh (default: the current one)
  --prefix <NAME>         secret name prefix (default FEDI: FEDI_TOKEN, FEDI_CLIENT_ID, …)
  --name <text>           app name shown on the server (default fedi-token)
  --json                  print the result as JSON on stdout
  -h, --help              show this help
  -V, --version           show the version

Exit codes: 0 done, 1 server or network failure, 2 bad usage or gh not ready
(checked before the login), 3 authorization denied or not ours, 4 timed out,
5 gh could not store a secret (the rest are saved to a private file), 130 interrupted.
`;

const FLAGS = {
  platform: { type: 'string' },
  scope: { type: 'string' },
  'client-id': { type: 'string' },
  'client-secret': { type: 'string' },
  oob: { type: 'boolean' },
  port: { type: 'string' },
  timeout: { type: 'string' },
  gh: { type: 'boolean' },
  repo: { type: 'string' },
  prefix: { type: 'string' },
  name: { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
  version: { type: 'boolean', short: 'V' },
} as const;

/** The longest one request of the login waits, as long as --timeout is not shorter. */
const REQUEST_TIMEOUT_SECONDS = 30;
const SECRET_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const REPO = /^[A-Za-z0-9_.-]+\/[A-Za-z0-9_.-]+$/;

export function parseCommand(argv: readonly string[], env: NodeJS.ProcessEnv): Command {
  let parsed;
  try {
    parsed = parseArgs({ args: [...argv], options: FLAGS, allowPositionals: true, strict: true });
  } catch (error) {
    throw usageError(`${error instanceof Error ? error.message : String(error)}\n\n${USAGE}`);
  }
  const { values, positionals } = parsed;
  if (values.version) return { kind: 'version' };
  const [command, ...rest] = positionals;
  if (command === undefined || command === 'help') {
    if (values.help || command === 'help') return { kind: 'help' };
    throw usageError(`Missing command\n\n${USAGE}`);
  }
  if (command !== 'login') throw usageError(`Unknown command '${command}'\n\n${USAGE}`);
  if (values.help) return { kind: 'help', topic: 'login' };
  if (rest.length === 0)
    throw usageError(`Missing <instance>, e.g. https://social.example\n\n${USAGE}`);
  if (rest.length > 1) throw usageError(`Unexpected argument '${rest[1]}'`);

  const raw: Record<string, string | undefined> = {
    instance: rest[0],
    platform: values.platform,
    port: values.port,
    timeout: values.timeout,
  };
  const source: InputSource = { get: (name) => raw[name] ?? '', mask: () => undefined };
  const instance = asFlag(() => readUrl(source, 'instance'));
  if (!instance) throw usageError('Missing <instance>, e.g. https://social.example');
  if (values.platform?.toLowerCase() === 'anyweb') {
    throw usageError(
      "--platform anyweb: AnyWeb codes come from the dApp's anyweb_oauth call, not from a browser login; use the action's 'exchange' operation",
    );
  }
  const platform = asFlag(() => readEnum(source, 'platform', LOGIN_PLATFORMS, 'auto'));
  const port = raw.port
    ? asFlag(() => readNumber(source, 'port', { min: 1, max: 65535, fallback: 0, integer: true }))
    : undefined;
  const timeoutSeconds = asFlag(() =>
    readNumber(source, 'timeout', { min: 1, max: 3600, fallback: 300 }),
  );

  const clientId = nonEmpty(values['client-id']);
  const flagSecret = nonEmpty(values['client-secret']);
  if (flagSecret && !clientId) {
    throw usageError('--client-secret needs --client-id (the app the secret belongs to)');
  }
  if (platform === 'misskey' && clientId) {
    throw usageError('--client-id: MiAuth needs no app; leave out --client-id and --client-secret');
  }
  if (platform === 'oauth2' && !clientId) {
    throw usageError(
      '--client-id is required with --platform oauth2 (register a client on the server first)',
    );
  }
  if (values.repo !== undefined && !values.gh) throw usageError('--repo is used only with --gh');
  if (values.repo !== undefined && !REPO.test(values.repo)) {
    throw usageError(`--repo: got ${JSON.stringify(values.repo)}; expected owner/name`);
  }
  const prefix = values.prefix ?? 'FEDI';
  if (!SECRET_NAME.test(prefix) || /^GITHUB_/i.test(prefix)) {
    throw usageError(
      `--prefix: got ${JSON.stringify(prefix)}; expected letters, digits and underscores, not starting with a digit or GITHUB_`,
    );
  }
  return {
    kind: 'login',
    options: {
      instance,
      platform,
      scope: values.scope === undefined ? undefined : parseScope(values.scope),
      clientId,
      // The environment's secret belongs to an app named on the command line, never to ours.
      clientSecret: clientId ? (flagSecret ?? nonEmpty(env.FEDI_TOKEN_CLIENT_SECRET)) : undefined,
      oob: values.oob ?? false,
      port,
      timeoutMs: timeoutSeconds * 1000,
      requestTimeoutMs: Math.min(timeoutSeconds, REQUEST_TIMEOUT_SECONDS) * 1000,
      gh: values.gh ?? false,
      repo: values.repo,
      prefix: prefix.toUpperCase(),
      json: values.json ?? false,
      appName: nonEmpty(values.name) ?? 'fedi-token',
    },
  };
}

/** Space-, comma- or newline-separated, normalised to spaces. */
function parseScope(value: string): string {
  const scopes = value.split(/[\s,]+/).filter(Boolean);
  if (scopes.length === 0) throw usageError('--scope: empty; give at least one scope');
  const invalid = scopes.find((scope) => !/^[\x21\x23-\x5b\x5d-\x7e]+$/.test(scope));
  if (invalid !== undefined) {
    throw usageError(
      `--scope: got ${JSON.stringify(invalid)}; scopes are printable ASCII without quotes or backslashes`,
    );
  }
  return scopes.join(' ');
}

function nonEmpty(value: string | undefined): string | undefined {
  const trimmed = value?.trim();
  return trimmed ? trimmed : undefined;
}

/** The action's readers say "Input 'x'"; on a command line the same problem is "--x". */
function asFlag<T>(read: () => T): T {
  try {
    return read();
  } catch (error) {
    if (!(error instanceof InputError)) throw error;
    const label = error.input === 'instance' ? '<instance>' : `--${error.input}`;
    throw usageError(`${label}${error.message.slice(`Input '${error.input}'`.length)}`);
  }
}
