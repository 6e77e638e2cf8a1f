/**
 * What a Laravel Passport access token says about itself. Pixelfed's OAuth is Passport, whose
 * access tokens are RS256 JWTs written by league/oauth2-server's AccessTokenTrait::convertToJWT
 * (8.5.5): `aud` (client id), `jti`, `iat`, `nbf`, `exp`, `sub` (user id, empty for an app token)
 * and `scopes` (the token's scopes). Its token response has no `scope` field
 * (BearerTokenResponse::generateHttpResponse), so these claims are the only place the granted
 * scopes can be read.
 *
 * Read, never verified: the signing key is the server's. The claims only report what the server
 * issued; whether a token is accepted is always asked of the server itself.
 */

export interface PassportClaims {
  scopes: string[];
  expiresAt?: Date;
  /** The user id; empty for a client-credentials token. */
  subject: string;
}

export function passportClaims(token: string): PassportClaims | undefined {
  const parts = token.split('.');
  if (parts.length !== 3 || !parts[1]) return undefined;
  let payload: unknown;
  try {
    payload = JSON.parse(Buffer.from(parts[1], 'base64url').toString('utf8'));
  } catch {
    return undefined;
  }
  if (!payload || typeof payload !== 'object') return undefined;
  const { scopes, exp, sub, jti } = payload as Record<string, unknown>;
  // `jti` and a `scopes` array together are Passport's mark; any other JWT is not read here.
  if (typeof jti !== 'string' || !Array.isArray(scopes)) return undefined;
  if (!scopes.every((scope): scope is string => typeof scope === 'string')) return undefined;
  // lcobucci/jwt writes dates as seconds, with microseconds when there are any.
  const seconds = typeof exp === 'number' ? exp : typeof exp === 'string' ? Number(exp) : NaN;
  return {
    scopes,
    expiresAt: Number.isFinite(seconds) ? new Date(seconds * 1000) : undefined,
    subject: typeof sub === 'string' ? sub : '',
  };
}

/** Passport's `*` scope grants every other (Passport's Token::can). */
export function claimsGrant(claims: PassportClaims, scope: string): boolean {
  return claims.scopes.includes('*') || claims.scopes.includes(scope);
}
