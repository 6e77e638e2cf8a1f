/**
 * Every secret the program has registered (with the runner, or with the CLI's terminal), so text
 * can be cleaned of them before it is cut short. The runner masks a secret only where it appears
 * whole: a server message shortened through the middle of one it echoed would show its start.
 */
const secrets = new Set<string>();

export function rememberSecret(secret: string): void {
  if (secret) secrets.add(secret);
}

/** The text with each known secret, longest first, replaced by `***`. */
export function withoutSecrets(text: string): string {
  let out = text;
  for (const secret of [...secrets].sort((a, b) => b.length - a.length)) {
    out = out.split(secret).join('***');
  }
  return out;
}
