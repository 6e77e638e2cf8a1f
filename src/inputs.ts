/**
 * The only reader of action inputs. Every input is read once, validated, and turned into a typed
 * config; secrets are masked the moment they are read, before anything can print them. Every
 * failure is an InputError naming the input and what it accepts, raised before any request.
 */
import * as core from '@actions/core';
import * as z from 'zod/mini';
import { InputError, oneLine } from './errors.ts';
import { LOOPBACK_HOSTS } from './loopback-host.ts';
import { maskSecret } from './publish.ts';
import {
  ANYWEB_INSTANCE,
  AUTH_METHODS,
  OOB_REDIRECT_URI,
  OPERATIONS,
  PLATFORMS,
  type Operation,
  type Platform,
  type TokenConfig,
} from './config.ts';

/** Where inputs come from and how secrets are masked; tests pass their own. */
export interface InputSource {
  get(name: string): string;
  mask(secret: string): void;
}

export const actionInputs: InputSource = {
  get: (name) => core.getInput(name),
  mask: maskSecret,
};

/** What each operation cannot do without, whatever the platform. */
const REQUIRED_BY_OPERATION: Record<Operation, readonly (readonly [string, keyof TokenConfig])[]> =
  {
    exchange: [['code', 'code']],
    'client-credentials': [
      ['client-id', 'clientId'],
      ['client-secret', 'clientSecret'],
    ],
    refresh: [['refresh-token', 'refreshToken']],
    validate: [['access-token', 'accessToken']],
    // 'access-token' or, on oauth2, 'refresh-token': checked below.
    revoke: [],
  };

/**
 * The inputs `config.operation` needs on every platform. Not part of parseTokenInputs: a platform
 * that lacks the operation says so first (operations.ts), since its alternative is the useful
 * answer, not a demand for an input the operation would need elsewhere.
 */
export function checkRequiredInputs(config: TokenConfig): void {
  for (const [name, key] of REQUIRED_BY_OPERATION[config.operation]) {
    if (!config[key]) {
      throw new InputError(name, `is required for operation '${config.operation}'`);
    }
  }
  if (config.operation === 'revoke' && !config.accessToken && !config.refreshToken) {
    throw new InputError(
      'access-token',
      "is required for operation 'revoke' (or 'refresh-token', with platform oauth2)",
    );
  }
}

/** Where an input is read: an operation, or the post step's revoke that `revoke-on-exit` asks for. */
type Use = Operation | 'revoke-on-exit';

interface InputEffect {
  /** Where the input changes what the step does: each use → the platforms that read it there. */
  on: Partial<Record<Use, readonly Platform[]>>;
  /** The default in action.yml: the runner passes it when the workflow gives nothing. */
  default?: string;
  /** Another input without which this one does nothing. */
  with?: { input: string; key: keyof TokenConfig };
}

const EVERY: readonly Platform[] = ['mastodon', 'misskey', 'anyweb', 'oauth2'];
const MASTODON_OAUTH2: readonly Platform[] = ['mastodon', 'oauth2'];
const CLIENT_AUTH: readonly Platform[] = ['anyweb', 'oauth2'];
const OAUTH2: readonly Platform[] = ['oauth2'];
const ON_EVERY_OAUTH2_CALL: InputEffect['on'] = {
  exchange: OAUTH2,
  'client-credentials': OAUTH2,
  refresh: OAUTH2,
  validate: OAUTH2,
  revoke: OAUTH2,
  'revoke-on-exit': OAUTH2,
};

/**
 * Which inputs matter to which operation on which platform: the one place that says so. An input
 * given a value anywhere else draws a warning that names it (`inputsWithoutEffect`), never silent
 * neglect. `operation`, `instance`, `platform`, `timeout-seconds` and `max-attempts` matter to
 * every run. `revoke-on-exit` and `secret-name` are not here: each asks for an action (a revoke, a
 * secret written) whose absence nobody would notice, so anywhere else they fail the step
 * (parseTokenInputs). Platforms that lack an operation fail before this table is read.
 */
const INPUT_EFFECTS: Record<string, InputEffect> = {
  'client-id': {
    on: {
      // MiAuth and Misskey's legacy flow need no client id; AnyWeb's refresh sends none.
      exchange: ['mastodon', 'anyweb', 'oauth2'],
      'client-credentials': EVERY,
      refresh: MASTODON_OAUTH2,
      validate: CLIENT_AUTH,
      revoke: MASTODON_OAUTH2,
      'revoke-on-exit': MASTODON_OAUTH2,
    },
  },
  'client-secret': {
    on: {
      // Misskey's legacy flow takes the app secret here.
      exchange: EVERY,
      'client-credentials': EVERY,
      refresh: MASTODON_OAUTH2,
      validate: CLIENT_AUTH,
      revoke: MASTODON_OAUTH2,
      'revoke-on-exit': MASTODON_OAUTH2,
    },
  },
  code: { on: { exchange: EVERY } },
  'redirect-uri': {
    default: OOB_REDIRECT_URI,
    // GoToSocial wants it on every grant, so Mastodon-API requests always carry it.
    on: { exchange: MASTODON_OAUTH2, 'client-credentials': ['mastodon'], refresh: ['mastodon'] },
  },
  scope: { on: { exchange: ['mastodon'], 'client-credentials': EVERY, refresh: OAUTH2 } },
  'code-verifier': { on: { exchange: MASTODON_OAUTH2 } },
  'access-token': { on: { validate: EVERY, revoke: EVERY } },
  'refresh-token': { on: { refresh: EVERY, revoke: OAUTH2 } },
  // Also the server's address when `instance` is not given.
  'token-endpoint': { on: ON_EVERY_OAUTH2_CALL },
  'revocation-endpoint': { on: { revoke: OAUTH2, 'revoke-on-exit': OAUTH2 } },
  'introspection-endpoint': { on: { validate: OAUTH2 } },
  'userinfo-endpoint': { on: { exchange: OAUTH2, validate: OAUTH2 } },
  'token-endpoint-auth-method': { default: 'auto', on: ON_EVERY_OAUTH2_CALL },
  'export-env': {
    on: { exchange: EVERY, 'client-credentials': EVERY, refresh: EVERY, validate: EVERY },
  },
  'fail-on-invalid': { default: 'true', on: { validate: EVERY } },
  'github-token': {
    on: { refresh: EVERY },
    with: { input: 'secret-name', key: 'secretName' },
  },
};

/** The table's inputs that the workflow gave a value other than the default. */
function givenInputs(source: InputSource): ReadonlySet<string> {
  const given = Object.entries(INPUT_EFFECTS).filter(([name, effect]) => {
    const value = optional(source.get(name));
    return value !== undefined && value.toLowerCase() !== effect.default?.toLowerCase();
  });
  return new Set(given.map(([name]) => name));
}

/**
 * A warning for each input that was given a value but does nothing in this run: wrong operation,
 * wrong platform, or missing its companion input. Run once the platform is known.
 */
export function inputsWithoutEffect(config: TokenConfig, platform: Platform): string[] {
  const given = config.given;
  if (!given) return [];
  const uses: Use[] = config.revokeOnExit
    ? [config.operation, 'revoke-on-exit']
    : [config.operation];
  const warnings: string[] = [];
  for (const [name, effect] of Object.entries(INPUT_EFFECTS)) {
    if (!given.has(name)) continue;
    if (effect.with && !config[effect.with.key]) {
      warnings.push(`Input '${name}' has no effect without '${effect.with.input}'; it was ignored`);
    } else if (!uses.some((use) => effect.on[use]?.includes(platform))) {
      // Named with the platform when another platform would read it for this operation.
      const where = effect.on[config.operation] ? ` on ${platform}` : '';
      warnings.push(
        `Input '${name}' has no effect on operation '${config.operation}'${where}; it was ignored`,
      );
    }
  }
  return warnings;
}

const TOKEN_OBTAINING: readonly Operation[] = ['exchange', 'client-credentials', 'refresh'];
const SECRET_INPUTS = [
  'client-secret',
  'code',
  'code-verifier',
  'access-token',
  'refresh-token',
  'github-token',
];

export function parseTokenInputs(source: InputSource = actionInputs): TokenConfig {
  // Mask first: a later error about another input must not run before a secret is registered.
  for (const name of SECRET_INPUTS) {
    const value = source.get(name);
    if (value) source.mask(value);
  }
  const read = (name: string): string | undefined => optional(source.get(name));
  const operation = readEnum(source, 'operation', OPERATIONS, undefined);
  const platform = readEnum(source, 'platform', PLATFORMS, 'auto');

  const endpoints = {
    token: readUrl(source, 'token-endpoint'),
    revocation: readUrl(source, 'revocation-endpoint'),
    introspection: readUrl(source, 'introspection-endpoint'),
    userinfo: readUrl(source, 'userinfo-endpoint'),
  };
  let instance = readUrl(source, 'instance');
  if (!instance && platform === 'anyweb') instance = new URL(ANYWEB_INSTANCE);
  if (!instance && !(platform === 'oauth2' && endpoints.token)) {
    throw new InputError(
      'instance',
      'is required: the server base URL, e.g. https://social.example' +
        (platform === 'oauth2' ? " (or give 'token-endpoint')" : ''),
    );
  }

  const redirectUri = read('redirect-uri') ?? OOB_REDIRECT_URI;
  if (redirectUri !== OOB_REDIRECT_URI && !URL.canParse(redirectUri)) {
    throw new InputError('redirect-uri', `must be an absolute URI or ${OOB_REDIRECT_URI}`);
  }

  const revokeOnExit = readBoolean(source, 'revoke-on-exit', false);
  if (revokeOnExit && !TOKEN_OBTAINING.includes(operation)) {
    throw new InputError(
      'revoke-on-exit',
      `applies only to operations that obtain a token (${TOKEN_OBTAINING.join(', ')}), not '${operation}'`,
    );
  }

  const secretName = readName(source, 'secret-name');
  const githubToken = read('github-token');
  if (secretName) {
    if (operation !== 'refresh') {
      throw new InputError('secret-name', `is used only with operation 'refresh'`);
    }
    if (!githubToken) {
      throw new InputError('github-token', `is required when 'secret-name' is set`);
    }
  }

  return {
    operation,
    platform,
    instance,
    clientId: read('client-id'),
    clientSecret: read('client-secret'),
    code: read('code'),
    redirectUri,
    scope: readScope(source),
    codeVerifier: read('code-verifier'),
    accessToken: read('access-token'),
    refreshToken: read('refresh-token'),
    endpoints,
    tokenEndpointAuthMethod: readEnum(source, 'token-endpoint-auth-method', AUTH_METHODS, 'auto'),
    exportEnv: readName(source, 'export-env'),
    revokeOnExit,
    failOnInvalid: readBoolean(source, 'fail-on-invalid', true),
    secretName,
    githubToken,
    timeoutMs: readNumber(source, 'timeout-seconds', { min: 1, max: 600, fallback: 30 }) * 1000,
    maxAttempts: readNumber(source, 'max-attempts', {
      min: 1,
      max: 10,
      fallback: 3,
      integer: true,
    }),
    given: givenInputs(source),
  };
}

function optional(value: string): string | undefined {
  const trimmed = value.trim();
  return trimmed === '' ? undefined : trimmed;
}

/** A non-secret value quoted for an error message: one line, short. */
function quoted(value: string): string {
  return JSON.stringify(oneLine(value, 60));
}

export function readEnum<const T extends readonly string[]>(
  source: InputSource,
  name: string,
  allowed: T,
  fallback: T[number] | undefined,
): T[number] {
  const value = optional(source.get(name));
  if (value === undefined) {
    if (fallback !== undefined) return fallback;
    throw new InputError(name, `is required; allowed values: ${allowed.join(', ')}`);
  }
  const parsed = z.safeParse(z.enum(allowed), value.toLowerCase());
  if (!parsed.success) {
    throw new InputError(name, `got ${quoted(value)}; allowed values: ${allowed.join(', ')}`);
  }
  return parsed.data as T[number];
}

const TRUE_VALUES = ['true', 'True', 'TRUE'];
const FALSE_VALUES = ['false', 'False', 'FALSE'];

/** YAML 1.2 core-schema booleans, as the runner documents them. */
export function readBoolean(source: InputSource, name: string, fallback: boolean): boolean {
  const value = optional(source.get(name));
  if (value === undefined) return fallback;
  if (TRUE_VALUES.includes(value)) return true;
  if (FALSE_VALUES.includes(value)) return false;
  throw new InputError(name, `got ${quoted(value)}; allowed values: true, false`);
}

export function readNumber(
  source: InputSource,
  name: string,
  rule: { min: number; max: number; fallback: number; integer?: boolean },
): number {
  const value = optional(source.get(name));
  if (value === undefined) return rule.fallback;
  const number = Number(value);
  const kind = rule.integer ? 'a whole number' : 'a number';
  if (
    !/^\d+(\.\d+)?$/.test(value) ||
    (rule.integer && !Number.isInteger(number)) ||
    number < rule.min ||
    number > rule.max
  ) {
    throw new InputError(
      name,
      `got ${quoted(value)}; expected ${kind} from ${rule.min} to ${rule.max}`,
    );
  }
  return number;
}

/** A server URL: https, or http only on loopback; no credentials, query or fragment. */
export function readUrl(source: InputSource, name: string): URL | undefined {
  const value = optional(source.get(name));
  if (value === undefined) return undefined;
  const expected = 'expected an https:// URL such as https://social.example';
  if (!URL.canParse(value)) throw new InputError(name, `got ${quoted(value)}; ${expected}`);
  const url = new URL(value);
  if (url.protocol === 'http:' && !LOOPBACK_HOSTS.test(url.hostname)) {
    throw new InputError(
      name,
      `plain http:// is allowed only for loopback addresses (localhost, 127.0.0.1, [::1]); ${expected}`,
    );
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    throw new InputError(name, `got ${quoted(url.protocol)} URL; ${expected}`);
  }
  if (url.username || url.password) {
    throw new InputError(name, 'must not contain a user name or password');
  }
  if (url.search || url.hash) {
    throw new InputError(name, 'must not contain a query (?…) or fragment (#…)');
  }
  return url;
}

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,99}$/;
const RESERVED_NAME = /^(GITHUB_|RUNNER_|ACTIONS_|INPUT_|STATE_)|^(PATH|NODE_OPTIONS|HOME|CI)$/i;

/** An environment variable or secret name; reserved prefixes would break the runner. */
function readName(source: InputSource, name: string): string | undefined {
  const value = optional(source.get(name));
  if (value === undefined) return undefined;
  if (!ENV_NAME.test(value) || RESERVED_NAME.test(value)) {
    throw new InputError(
      name,
      `got ${quoted(value)}; expected letters, digits and underscores, not starting with a digit, ` +
        'GITHUB_, RUNNER_, ACTIONS_, INPUT_ or STATE_',
    );
  }
  return value;
}

/** Scopes are space-separated; commas and newlines are accepted too and normalised. */
function readScope(source: InputSource): string | undefined {
  const value = optional(source.get('scope'));
  if (value === undefined) return undefined;
  const scopes = value.split(/[\s,]+/).filter(Boolean);
  const invalid = scopes.find((scope) => !/^[\x21\x23-\x5b\x5d-\x7e]+$/.test(scope));
  if (invalid !== undefined) {
    throw new InputError(
      'scope',
      `got ${quoted(invalid)}; scopes are printable ASCII without quotes or backslashes`,
    );
  }
  return scopes.join(' ');
}
