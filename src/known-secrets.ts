/**
 * Every secret the program has registered (with the runner, or with the CLI's terminal), so text
 * can be cleaned of them before it is cut short. The runner masks a secret only where it appears
 * whole: a server message shortened through the middle of one it echoed would show its start.
 */
const secrets = new Set<string>();

/**
 * Records a secret and returns what to mask: the value and each of its lines, trimmed (logs are
 * matched line by line, so a multi-line value would otherwise leak one line at a time).
 */
export function rememberSecret(secret: string): string[] {
  if (!secret) return [];
  const parts = new Set([secret]);
  for (const line of secret.split(/\r?\n/)) if (line.trim()) parts.add(line.trim());
  for (const part of parts) secrets.add(part);
  return [...parts];
}

/** The text with each known secret, longest first, replaced by `***`. */
export function withoutSecrets(text: string): string {
  let out = text;
  for (const secret of [...secrets].sort((a, b) => b.length - a.length)) {
    out = out.split(secret).join('***');
  }
  return out;
}
