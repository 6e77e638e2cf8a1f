/**
 * The login itself: get an app, send the user to approve, receive the answer on the loopback
 * listener (or from a paste), then exchange and check the token with the action's own providers.
 */
import { randomUUID } from 'node:crypto';
import type { Readable } from 'node:stream';
import { oneLine, ServerError, UnsupportedError } from '../errors.ts';
import type { Http } from '../http.ts';
import { OOB_REDIRECT_URI, type Platform, type TokenConfig } from '../config.ts';
import { runOperation, type Runtime } from '../operations.ts';
import type { OperationResult } from '../publish.ts';
import { detectPlatform } from '../providers/detect.ts';
import type { Software } from '../providers/provider.ts';
import type { LoginOptions } from './args.ts';
import {
  authorizeUrl,
  discoverAuthorizeEndpoint,
  mastodonAuthorizeEndpoint,
  miAuthUrl,
} from './authorize.ts';
import type { Opener } from './browser.ts';
import { CliError, EXIT } from './exit.ts';
import { startLoopback, type LoopbackListener, type Verdict } from './loopback.ts';
import type { Terminal } from './output.ts';
import { readLine, readPastedCode } from './paste.ts';
import { createPkce, createState, sameState } from './pkce.ts';
import { registerApp, type RegisteredClient } from './register.ts';
import type { LoginOutcome } from './result.ts';

export const PROJECT_URL = 'https://github.com/fedi-token/fedi-token';

export interface LoginDeps {
  http: Http;
  terminal: Terminal;
  stdin: Readable;
  open: Opener | undefined;
  /** Aborted by Ctrl-C. */
  signal: AbortSignal;
}

export async function login(options: LoginOptions, deps: LoginDeps): Promise<LoginOutcome> {
  const { terminal, http } = deps;
  let platform: Platform;
  let software: Software | undefined;
  if (options.platform === 'auto') {
    const detected = await detectPlatform(http, options.instance);
    platform = detected.platform;
    software = detected.software;
    terminal.progress(
      `Detected ${detected.software?.name ?? platform} (${platform}) at ${options.instance.origin}`,
    );
    if (platform === 'anyweb') {
      throw new UnsupportedError(
        "AnyWeb codes come from the dApp's anyweb_oauth call, not from a browser login; use the action's 'exchange' operation",
      );
    }
  } else {
    platform = options.platform;
  }
  return platform === 'misskey'
    ? miAuthLogin(options, deps)
    : oauthLogin(options, deps, platform === 'oauth2' ? 'oauth2' : 'mastodon', software);
}

/**
 * Servers that ignore the port of a loopback redirect URI (RFC 8252 §7.3). Mastodon (and its
 * forks that keep its OAuth) match with Doorkeeper's URIChecker.matches?, which ignores it when
 * both URIs are loopback IP literals (lib/doorkeeper/oauth/helpers/uri_checker.rb, since 2019).
 * Pixelfed's Passport runs league/oauth2-server's RedirectUriValidator, which ignores it for
 * http://127.0.0.1 and http://[::1] (8.5.5). GoToSocial, Pleroma and Akkoma compare the strings
 * exactly.
 */
const PORT_FREE_LOOPBACK = new Set(['mastodon', 'hometown', 'glitch-soc', 'glitchsoc', 'pixelfed']);

async function oauthLogin(
  options: LoginOptions,
  deps: LoginDeps,
  platform: 'mastodon' | 'oauth2',
  software: Software | undefined,
): Promise<LoginOutcome> {
  const { terminal, http } = deps;
  const scope = options.scope ?? (platform === 'mastodon' ? 'read' : undefined);
  let useOob = options.oob;
  // RFC 8252 §7.3 has generic servers accept any port on a loopback redirect. Of the
  // Mastodon-API servers only Mastodon and Pixelfed do; the others need the registered port.
  if (!useOob && options.clientId && options.port === undefined && platform === 'mastodon') {
    if (software && PORT_FREE_LOOPBACK.has(software.name.toLowerCase())) {
      const name = software.name.toLowerCase() === 'pixelfed' ? 'Pixelfed' : 'Mastodon';
      terminal.progress(
        `${name} accepts a loopback redirect on any port (RFC 8252 §7.3) when the app lists ` +
          'http://127.0.0.1/callback, with or without a port, among its redirect URIs. ' +
          'If the browser says the redirect URI is not valid, the app lacks it: run again with --oob',
      );
    } else {
      terminal.progress(
        'An existing app only accepts the redirect URIs it was registered with, so this login uses copy-paste. ' +
          'For the loopback redirect, register http://127.0.0.1:<port>/callback and pass --port <port>',
      );
      useOob = true;
    }
  }
  let listener: LoopbackListener | undefined;
  let client: RegisteredClient | undefined;
  let code: string;
  let redirectUri: string;
  const pkce = createPkce();
  // The verifier alone turns a leaked code into a token for a public client: never printed.
  terminal.mask(pkce.verifier);
  const state = createState();
  try {
    if (!useOob) listener = await startLoopback(options.port);
    if (options.clientId) {
      client = { clientId: options.clientId, clientSecret: options.clientSecret ?? '' };
      if (client.clientSecret) terminal.mask(client.clientSecret);
    } else {
      ({ client, listener } = await registerWithFallback(options, deps, scope, listener));
    }
    redirectUri = listener?.redirectUri ?? OOB_REDIRECT_URI;
    const endpoint =
      platform === 'mastodon'
        ? mastodonAuthorizeEndpoint(options.instance)
        : await discoverAuthorizeEndpoint(http, options.instance);
    const url = authorizeUrl(endpoint, {
      clientId: client.clientId,
      redirectUri,
      scope,
      state,
      codeChallenge: pkce.challenge,
    });
    present(deps, url, listener !== undefined);
    code = await withTimeout(options, deps, async (signal) => {
      if (!listener) {
        terminal.progress('Paste the code the server shows after you approve, then press Enter:');
        return readPastedCode(deps.stdin, signal);
      }
      const params = await listener.wait({ signal, judge: (p) => judgeOAuth(p, state) });
      return params.get('code') ?? '';
    });
  } finally {
    await listener?.close();
  }
  terminal.mask(code);
  terminal.progress('Approved; exchanging the code for a token');
  const config = tokenConfig(options, platform, {
    clientId: client.clientId,
    clientSecret: client.clientSecret || undefined,
    code,
    redirectUri,
    scope,
    codeVerifier: pkce.verifier,
  });
  const result = await verified(config, await runOperation(config, runtime(deps)), deps);
  // A client given on the command line is the user's own; it is stored only when we made it.
  return {
    instance: options.instance,
    result,
    client: options.clientId ? undefined : client,
  };
}

async function registerWithFallback(
  options: LoginOptions,
  deps: LoginDeps,
  scope: string | undefined,
  listener: LoopbackListener | undefined,
): Promise<{ client: RegisteredClient; listener: LoopbackListener | undefined }> {
  const { terminal, http } = deps;
  const app = { name: options.appName, website: PROJECT_URL, scope: scope ?? 'read' };
  terminal.progress(`Registering the app "${options.appName}" on ${options.instance.origin}`);
  const redirectUris = listener ? [listener.redirectUri, OOB_REDIRECT_URI] : [OOB_REDIRECT_URI];
  try {
    const client = await registerApp(
      http,
      options.instance,
      { ...app, redirectUris },
      terminal.mask,
    );
    return { client, listener };
  } catch (error) {
    if (!listener || !refusesRedirectUri(error)) throw error;
    terminal.progress(
      `The server refused the loopback redirect (${oneLine(error.message, 160)}); using copy-paste instead`,
    );
    await listener.close();
    const client = await registerApp(
      http,
      options.instance,
      { ...app, redirectUris: [OOB_REDIRECT_URI] },
      terminal.mask,
    );
    return { client, listener: undefined };
  }
}

/**
 * Whether a registration failed over the redirect URI itself, so one with only the OOB URI may
 * work. Mastodon's Doorkeeper answers 422 "Validation failed: Redirect URI must be an HTTPS/SSL
 * URI." where https is forced (stock Mastodon does not force it), GoToSocial 400 "Bad Request:
 * error parsing redirect URI: …". Anything else (registrations refused, a bad scope, a rate
 * limit) would fail the second registration too, so it is reported as the server said it.
 */
function refusesRedirectUri(error: unknown): error is ServerError {
  return (
    error instanceof ServerError &&
    (error.status === 400 || error.status === 422) &&
    /redirect[ _]uri/i.test(`${error.code ?? ''} ${error.description ?? ''}`)
  );
}

async function miAuthLogin(options: LoginOptions, deps: LoginDeps): Promise<LoginOutcome> {
  const { terminal } = deps;
  // The session id becomes the token's key at the check: it is a secret from the start.
  const session = randomUUID();
  terminal.mask(session);
  const permissions = (options.scope ?? 'read:account').split(' ');
  let listener: LoopbackListener | undefined;
  try {
    if (!options.oob) listener = await startLoopback(options.port);
    const url = miAuthUrl(options.instance, session, {
      name: options.appName,
      callback: listener?.redirectUri,
      permissions,
    });
    present(deps, url, listener !== undefined);
    await withTimeout(options, deps, async (signal) => {
      if (!listener) {
        terminal.progress('Press Enter here after you approve in the browser');
        await readLine(deps.stdin, signal);
        return;
      }
      await listener.wait({
        signal,
        judge: (params) =>
          sameState(session, params.get('session'))
            ? { ok: true }
            : { ok: false, error: notOurs('session') },
      });
    });
  } finally {
    await listener?.close();
  }
  terminal.progress('Approved; fetching the token');
  const config = tokenConfig(options, 'misskey', { code: session, scope: options.scope });
  const result = await verified(config, await runOperation(config, runtime(deps)), deps);
  return { instance: options.instance, result };
}

function judgeOAuth(params: URLSearchParams, state: string): Verdict {
  if (!sameState(state, params.get('state'))) return { ok: false, error: notOurs('state') };
  const error = params.get('error');
  if (error === 'access_denied') {
    return {
      ok: false,
      error: new CliError(
        EXIT.notAuthorized,
        'The authorization was denied in the browser (access_denied)',
      ),
    };
  }
  if (error) {
    const description = params.get('error_description');
    return {
      ok: false,
      error: new CliError(
        EXIT.notAuthorized,
        `The server refused the authorization (${oneLine(error, 60)})${description ? `: ${oneLine(description, 160)}` : ''}`,
      ),
    };
  }
  if (!params.get('code')) {
    return {
      ok: false,
      error: new CliError(EXIT.notAuthorized, 'The server redirected back without a code'),
    };
  }
  return { ok: true };
}

function notOurs(what: 'state' | 'session'): CliError {
  return new CliError(
    EXIT.notAuthorized,
    `The answer's ${what} does not match this login: it belongs to another authorization attempt (or another site sent it). Nothing was exchanged; run the login again`,
  );
}

function present(deps: LoginDeps, url: URL, loopback: boolean): void {
  const { terminal } = deps;
  terminal.progress('Open this page in your browser and approve the access:');
  terminal.link(url.href);
  if (deps.open) deps.open(url.href);
  if (loopback) terminal.progress('Waiting for the approval (Ctrl-C to cancel)…');
}

/** The approval wait ends with the answer, with Ctrl-C, or after --timeout. */
async function withTimeout<T>(
  options: LoginOptions,
  deps: LoginDeps,
  wait: (signal: AbortSignal) => Promise<T>,
): Promise<T> {
  const timer = new AbortController();
  const seconds = Math.round(options.timeoutMs / 1000);
  const handle = setTimeout(
    () =>
      timer.abort(
        new CliError(
          EXIT.timeout,
          `No approval arrived within ${seconds} s (--timeout); nothing was stored. Run the login again`,
        ),
      ),
    options.timeoutMs,
  );
  try {
    return await wait(AbortSignal.any([deps.signal, timer.signal]));
  } finally {
    clearTimeout(handle);
  }
}

/** A token is handed out only once its server has accepted it back. */
async function verified(
  config: TokenConfig,
  result: OperationResult,
  deps: LoginDeps,
): Promise<OperationResult> {
  if (result.identity || !result.tokens) return result;
  const check = await runOperation(
    { ...config, operation: 'validate', accessToken: result.tokens.accessToken },
    runtime(deps),
  );
  if (!check.valid) {
    throw new CliError(
      EXIT.failure,
      `The server issued a token but does not accept it: ${check.reason ?? 'rejected'}`,
    );
  }
  return { ...result, identity: check.identity, scope: result.scope ?? check.scope };
}

function runtime(deps: LoginDeps): Runtime {
  return {
    mask: deps.terminal.mask,
    log: deps.terminal.progress,
    warn: (message) => deps.terminal.progress(`Warning: ${message}`),
    http: deps.http,
  };
}

function tokenConfig(
  options: LoginOptions,
  platform: Platform,
  values: Partial<TokenConfig>,
): TokenConfig {
  return {
    operation: 'exchange',
    platform,
    instance: options.instance,
    redirectUri: OOB_REDIRECT_URI,
    endpoints: {},
    tokenEndpointAuthMethod: 'auto',
    revokeOnExit: false,
    failOnInvalid: false,
    timeoutMs: options.requestTimeoutMs,
    maxAttempts: 3,
    ...values,
  };
}
