/**
 * The only caller of setSecret, setOutput, exportVariable, saveState and the job summary. Secrets
 * are masked before any of them is written; the summary shows non-secret facts only.
 */
import * as core from '@actions/core';
import type { Operation, Platform } from './config.ts';
import { oneLine } from './errors.ts';
import { rememberSecret } from './known-secrets.ts';
import type { Identity, Software, TokenSet } from './providers/provider.ts';

/** Register a secret with the runner, each of its lines too (see rememberSecret). */
export function maskSecret(secret: string): void {
  for (const part of rememberSecret(secret)) core.setSecret(part);
}

export interface OperationResult {
  operation: Operation;
  platform: Platform;
  software?: Software;
  tokens?: TokenSet;
  identity?: Identity;
  /** Set by `validate`. */
  valid?: boolean;
  reason?: string;
  scope?: string;
  expiresAt?: Date;
  /** Set by `revoke`. */
  revoked?: boolean;
  /** Why revoke-on-exit must leave the token alone (see TokenResult). */
  keepOnExit?: string;
  /**
   * The step must fail although it has results to publish (the rotated refresh token could not be
   * written back): the outputs are set first, then the step fails with this message.
   */
  failure?: string;
}

export interface PublishOptions {
  /** Export `token` as this environment variable for the job's later steps. */
  exportEnv?: string;
  /** The access token the step ends with: obtained, or validated (already masked as an input). */
  token?: string;
}

export function publishResult(result: OperationResult, options: PublishOptions = {}): void {
  const { tokens } = result;
  // Masking again is harmless and makes this function safe on its own.
  if (tokens) {
    maskSecret(tokens.accessToken);
    if (tokens.refreshToken) maskSecret(tokens.refreshToken);
  }
  const scope = tokens?.scope ?? result.scope;
  const expiresAt = tokens?.expiresAt ?? result.expiresAt;
  const outputs: Record<string, string> = {
    'access-token': tokens?.accessToken ?? '',
    'refresh-token': tokens?.refreshToken ?? '',
    'token-type': tokens?.tokenType ?? '',
    scope: scope ?? '',
    'expires-at': expiresAt?.toISOString() ?? '',
    'account-id': result.identity?.id ?? '',
    username: result.identity?.username ?? '',
    platform: result.platform,
    software: formatSoftware(result.software),
    valid: result.valid === undefined ? '' : String(result.valid),
  };
  for (const [name, value] of Object.entries(outputs)) core.setOutput(name, value);
  if (options.exportEnv && options.token) {
    maskSecret(options.token);
    core.exportVariable(options.exportEnv, options.token);
  }
}

export function formatSoftware(software: Software | undefined): string {
  if (!software) return '';
  return software.version ? `${software.name} ${software.version}` : software.name;
}

/** What the post step needs to revoke the token this step obtained. */
export interface RevokeState {
  accessToken: string;
  platform: Platform;
  expiresAt?: Date;
}

const STATE_TOKEN = 'revoke-token';
const STATE_PLATFORM = 'revoke-platform';
const STATE_EXPIRES = 'revoke-expires-at';

export function saveRevokeState(state: RevokeState): void {
  core.saveState(STATE_TOKEN, state.accessToken);
  core.saveState(STATE_PLATFORM, state.platform);
  core.saveState(STATE_EXPIRES, state.expiresAt?.toISOString() ?? '');
}

export function loadRevokeState(): RevokeState | undefined {
  const accessToken = core.getState(STATE_TOKEN);
  if (!accessToken) return undefined;
  maskSecret(accessToken);
  const expires = core.getState(STATE_EXPIRES);
  return {
    accessToken,
    platform: core.getState(STATE_PLATFORM) as Platform,
    expiresAt: expires ? new Date(expires) : undefined,
  };
}

/** A picture for the job summary: an http(s) URL from a server and its alt text. */
export interface SummaryPicture {
  url: string;
  alt: string;
}

/**
 * Rows of non-secret facts for the job summary, after an optional strip of pictures; values come
 * from servers, so they are escaped.
 */
export async function writeSummary(
  title: string,
  rows: [string, string][],
  pictures: readonly SummaryPicture[] = [],
): Promise<void> {
  if (!process.env.GITHUB_STEP_SUMMARY) return;
  const table = [
    [
      { data: 'Fact', header: true },
      { data: 'Value', header: true },
    ],
    ...rows.map(([fact, value]) => [fact, escapeHtml(value || '—')]),
  ];
  const summary = core.summary.addHeading(title, 3);
  const strip = pictures
    .filter(({ url }) => /^https?:\/\//i.test(url))
    .map(
      ({ url, alt }) =>
        `<img src="${escapeHtml(url)}" alt="${escapeHtml(oneLine(alt, 200))}" height="96">`,
    );
  if (strip.length > 0) summary.addRaw(`<p>${strip.join(' ')}</p>`, true);
  await summary.addTable(table).write();
}

export function summaryRows(result: OperationResult): [string, string][] {
  const rows: [string, string][] = [
    ['Operation', result.operation],
    ['Platform', result.platform],
  ];
  if (result.software) rows.push(['Software', formatSoftware(result.software)]);
  if (result.identity) {
    const who =
      result.identity.kind === 'app'
        ? `app ${result.identity.username}`
        : `@${result.identity.username}`;
    if (result.identity.username || result.identity.id) {
      rows.push(['Account', result.identity.id ? `${who} (id ${result.identity.id})` : who]);
    }
  }
  const scope = result.tokens?.scope ?? result.scope;
  if (scope) rows.push(['Scopes', scope]);
  if (result.tokens || result.valid) {
    const expiresAt = result.tokens?.expiresAt ?? result.expiresAt;
    rows.push(['Expires', expiresAt ? expiresAt.toISOString() : 'never']);
  }
  if (result.valid !== undefined) {
    rows.push(['Valid', result.valid ? 'yes' : `no${result.reason ? ` (${result.reason})` : ''}`]);
  }
  if (result.revoked) rows.push(['Revoked', 'yes']);
  return rows;
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"'|]/g, (c) => `&#${c.charCodeAt(0)};`);
}

/**
 * One log line that the runner cannot read as a workflow command. It takes `::name::data` at the
 * start of a line (after spaces) and `##[name]data` anywhere in it (ActionCommand.TryParseV2 and
 * TryParse, actions/runner). A server's text in a message (a software or user name) could
 * otherwise send `stop-commands`, after which every `::add-mask::` is printed instead of obeyed.
 * Warnings and errors are commands of their own, their text escaped by @actions/core.
 */
export function info(message: string): void {
  const line = oneLine(message, Number.POSITIVE_INFINITY).replaceAll('##[', '## [');
  core.info(line.startsWith('::') ? `- ${line}` : line);
}

export function warn(message: string): void {
  core.warning(message);
}

export function fail(message: string): void {
  core.setFailed(message);
}

/** Set several outputs at once; for entry points whose outputs hold no secrets. */
export function setOutputs(outputs: Record<string, string>): void {
  for (const [name, value] of Object.entries(outputs)) core.setOutput(name, value);
}
