/**
 * platform: oauth2 against a real OAuth 2.0 server (oidc-provider on loopback), run as the runner
 * runs the action: dist/main/index.js in a Node 24 subprocess. Every log is checked for leaks.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { findLeaks, runAction, type ActionRun } from './harness/action.ts';
import { REDIRECT_URI, startOidc, type OidcServer } from './servers/oidc.ts';
import { listen, sendJson } from './servers/util.ts';

let oidc: OidcServer;
beforeAll(async () => {
  oidc = await startOidc();
});
afterAll(async () => {
  await oidc.close();
});

/** Every secret a run could have printed. */
const secrets: string[] = [];
function remember(...values: (string | undefined)[]): void {
  for (const value of values) if (value) secrets.push(value);
}

async function run(inputs: Record<string, string>): Promise<ActionRun> {
  const result = await runAction('main', { platform: 'oauth2', 'max-attempts': '1', ...inputs });
  remember(result.outputs['access-token'], result.outputs['refresh-token']);
  remember(oidc.basic.secret, oidc.post.secret);
  expect(findLeaks(result, secrets)).toEqual([]);
  return result;
}

/** A fresh user authorization and its exchange through the action. */
async function exchange(client = () => oidc.basic, extra: Record<string, string> = {}) {
  const { code, verifier } = await oidc.authorize({ client: client() });
  remember(code, verifier);
  const before = oidc.requests.length;
  const result = await run({
    operation: 'exchange',
    instance: oidc.issuer,
    'client-id': client().id,
    'client-secret': client().secret,
    code,
    'code-verifier': verifier,
    'redirect-uri': REDIRECT_URI,
    ...extra,
  });
  return { result, requests: oidc.requests.slice(before), auth: oidc.clientAuth.slice(-1)[0] };
}

describe('exchange', () => {
  it('discovers the endpoints, exchanges the code with PKCE and names the user', async () => {
    const { result, requests, auth } = await exchange();
    expect(result.exitCode).toBe(0);
    expect(result.outputs['access-token']).toMatch(/^\S{20,}$/);
    expect(result.outputs['refresh-token']).toMatch(/^\S{20,}$/);
    expect(result.outputs['token-type']).toBe('Bearer');
    expect(result.outputs.scope).toBe('openid offline_access profile api:read');
    expect(Date.parse(result.outputs['expires-at'] ?? '')).toBeGreaterThan(Date.now());
    expect(result.outputs.username).toBe('alice');
    expect(result.outputs.platform).toBe('oauth2');
    expect(result.masks).toEqual(
      expect.arrayContaining([result.outputs['access-token'], result.outputs['refresh-token']]),
    );
    // RFC 8414 metadata is what oidc-provider serves first; one document is enough.
    expect(requests).toEqual([
      'GET /.well-known/oauth-authorization-server',
      'POST /token',
      'GET /me',
    ]);
    // The metadata lists client_secret_basic, which auto prefers.
    expect(auth).toBe('basic');
  });

  it('fails with invalid_grant and a hint when the code is spent, without leaking it', async () => {
    const { code, verifier } = await oidc.authorize({ client: oidc.basic });
    remember(code, verifier);
    const inputs = {
      operation: 'exchange',
      instance: oidc.issuer,
      'client-id': oidc.basic.id,
      'client-secret': oidc.basic.secret,
      code,
      'code-verifier': verifier,
      'redirect-uri': REDIRECT_URI,
    };
    expect((await run(inputs)).exitCode).toBe(0);
    const again = await run(inputs);
    expect(again.exitCode).toBe(1);
    expect(again.stdout).toMatch(/POST \/token answered HTTP 400 \(invalid_grant\)/);
    expect(again.stdout).toMatch(/get a new code/);
  });

  it('needs the PKCE verifier the code was requested with', async () => {
    const { code, verifier } = await oidc.authorize({ client: oidc.basic });
    remember(code, verifier);
    const result = await run({
      operation: 'exchange',
      instance: oidc.issuer,
      'client-id': oidc.basic.id,
      'client-secret': oidc.basic.secret,
      code,
      'code-verifier': `${verifier.slice(0, -4)}AAAA`,
      'redirect-uri': REDIRECT_URI,
    });
    expect(result.exitCode).toBe(1);
    expect(result.stdout).toMatch(/invalid_grant/);
  });
});

describe('client authentication', () => {
  it('sends the secret in the form when told to', async () => {
    const { result, auth } = await exchange(() => oidc.post, {
      'token-endpoint-auth-method': 'client_secret_post',
    });
    expect(result.exitCode).toBe(0);
    expect(auth).toBe('body');
    // The output is the token the server issued: its userinfo endpoint names the user by it.
    const valid = await run({
      operation: 'validate',
      instance: oidc.issuer,
      'access-token': result.outputs['access-token'] ?? '',
    });
    expect(valid.outputs.valid).toBe('true');
    expect(valid.outputs.username).toBe('alice');
  });

  it('a public client (no secret) exchanges with PKCE and refreshes, sending only its client_id', async () => {
    const { result, auth } = await exchange(() => oidc.public);
    expect(result.exitCode).toBe(0);
    expect(auth).toBe('body');
    expect(result.outputs.username).toBe('alice');
    const first = result.outputs['refresh-token'] ?? '';
    expect(first).toMatch(/^\S{20,}$/);
    const refreshed = await run({
      operation: 'refresh',
      instance: oidc.issuer,
      'client-id': oidc.public.id,
      'refresh-token': first,
    });
    expect(refreshed.exitCode).toBe(0);
    expect(oidc.clientAuth.at(-1)).toBe('body');
    expect(refreshed.outputs['refresh-token']).toMatch(/^\S{20,}$/);
    expect(refreshed.outputs['refresh-token']).not.toBe(first);
  });

  it('picks client_secret_post from metadata that lists only it; a forced other method is refused', async () => {
    const strict = await startOidc({ authMethods: ['client_secret_post'] });
    try {
      const client = {
        instance: strict.issuer,
        'client-id': strict.post.id,
        'client-secret': strict.post.secret,
        scope: 'api:read',
      };
      remember(strict.post.secret, strict.basic.secret);
      const auto = await run({ operation: 'client-credentials', ...client });
      expect(auto.exitCode).toBe(0);
      expect(auto.outputs['access-token']).toMatch(/^\S{20,}$/);
      expect(strict.clientAuth).toEqual(['body']);
      const forced = await run({
        operation: 'client-credentials',
        'token-endpoint-auth-method': 'client_secret_basic',
        ...client,
      });
      // The override, not the metadata, decided: Basic went out and the server refused it.
      expect(strict.clientAuth).toEqual(['body', 'basic']);
      expect(forced.exitCode).toBe(1);
      expect(forced.outputs['access-token']).toBeUndefined();
      expect(forced.stdout).toMatch(
        /::error::.*POST \/token answered HTTP 401 \(invalid_client\).*registered for 'token-endpoint-auth-method: client_secret_basic' \(auto follows the server's metadata\)/,
      );
    } finally {
      await strict.close();
    }
  });

  it('refuses client_secret_post from a client registered for client_secret_basic', async () => {
    const forced = await run({
      operation: 'client-credentials',
      instance: oidc.issuer,
      'client-id': oidc.basic.id,
      'client-secret': oidc.basic.secret,
      'token-endpoint-auth-method': 'client_secret_post',
      scope: 'api:read',
    });
    expect(oidc.clientAuth.at(-1)).toBe('body');
    expect(forced.exitCode).toBe(1);
    expect(forced.stdout).toMatch(
      /HTTP 401 \(invalid_client\).*'token-endpoint-auth-method: client_secret_post'/,
    );
  });
});

describe('client-credentials, validate and revoke', () => {
  it('gets an app token, introspects it as valid, revokes it, and then finds it inactive', async () => {
    const client = {
      instance: oidc.issuer,
      'client-id': oidc.basic.id,
      'client-secret': oidc.basic.secret,
    };
    const got = await run({ operation: 'client-credentials', scope: 'api:read', ...client });
    expect(got.exitCode).toBe(0);
    const token = got.outputs['access-token'] ?? '';
    expect(token).not.toBe('');
    expect(got.outputs.scope).toBe('api:read');
    expect(got.outputs['refresh-token']).toBe('');

    const valid = await run({ operation: 'validate', 'access-token': token, ...client });
    expect(valid.exitCode).toBe(0);
    expect(valid.outputs.valid).toBe('true');
    expect(valid.outputs.scope).toBe('api:read');
    expect(valid.outputs['account-id']).toBe(oidc.basic.id);

    const before = oidc.requests.length;
    const hints = oidc.tokenTypeHints.length;
    const revoked = await run({ operation: 'revoke', 'access-token': token, ...client });
    expect(revoked.exitCode).toBe(0);
    expect(oidc.requests.slice(before)).toContain('POST /token/revocation');
    expect(oidc.tokenTypeHints.slice(hints)).toEqual(['access_token']);

    const after = await run({
      operation: 'validate',
      'access-token': token,
      'fail-on-invalid': 'false',
      ...client,
    });
    expect(after.exitCode).toBe(0);
    expect(after.outputs.valid).toBe('false');
    const failing = await run({ operation: 'validate', 'access-token': token, ...client });
    expect(failing.exitCode).toBe(1);
    expect(failing.stdout).toMatch(/not valid: the server reports it inactive/);
  });

  it('validates a user token at the discovered userinfo endpoint when no client is given', async () => {
    const { result } = await exchange();
    const token = result.outputs['access-token'] ?? '';
    const valid = await run({
      operation: 'validate',
      'access-token': token,
      instance: oidc.issuer,
    });
    expect(valid.exitCode).toBe(0);
    expect(valid.outputs.valid).toBe('true');
    expect(valid.outputs.username).toBe('alice');
    const bogus = await run({
      operation: 'validate',
      'access-token': 'not-a-token-at-all-0123456789',
      instance: oidc.issuer,
      'fail-on-invalid': 'false',
    });
    expect(bogus.outputs.valid).toBe('false');
  });
});

describe('refresh', () => {
  it('rotates the refresh token; the old one is then refused with a hint', async () => {
    const { result } = await exchange();
    const first = result.outputs['refresh-token'] ?? '';
    const client = {
      instance: oidc.issuer,
      'client-id': oidc.basic.id,
      'client-secret': oidc.basic.secret,
    };
    const refreshed = await run({ operation: 'refresh', 'refresh-token': first, ...client });
    expect(refreshed.exitCode).toBe(0);
    const second = refreshed.outputs['refresh-token'] ?? '';
    expect(second).not.toBe('');
    expect(second).not.toBe(first);
    expect(refreshed.stdout).toMatch(/rotated the refresh token/);

    const replay = await run({ operation: 'refresh', 'refresh-token': first, ...client });
    expect(replay.exitCode).toBe(1);
    expect(replay.stdout).toMatch(/\(invalid_grant\).*already rotated; authorize again/);
  });

  it('revokes a refresh token alone, which ends the grant: refreshing with it then fails', async () => {
    const { result } = await exchange();
    const refreshToken = result.outputs['refresh-token'] ?? '';
    const accessToken = result.outputs['access-token'] ?? '';
    const client = {
      instance: oidc.issuer,
      'client-id': oidc.basic.id,
      'client-secret': oidc.basic.secret,
    };
    const before = oidc.requests.length;
    const hints = oidc.tokenTypeHints.length;
    const revoked = await run({ operation: 'revoke', 'refresh-token': refreshToken, ...client });
    expect(revoked.exitCode).toBe(0);
    expect(revoked.stdout).toMatch(/The token was revoked on oauth2/);
    expect(oidc.requests.slice(before)).toEqual([
      'GET /.well-known/oauth-authorization-server',
      'POST /token/revocation',
    ]);
    expect(oidc.tokenTypeHints.slice(hints)).toEqual(['refresh_token']);

    const refreshed = await run({ operation: 'refresh', 'refresh-token': refreshToken, ...client });
    expect(refreshed.exitCode).toBe(1);
    expect(refreshed.stdout).toMatch(/POST \/token answered HTTP 400 \(invalid_grant\)/);
    // RFC 7009 §2.1: revoking a refresh token should also end the access tokens of its grant,
    // and oidc-provider does.
    const after = await run({
      operation: 'validate',
      'access-token': accessToken,
      'fail-on-invalid': 'false',
      ...client,
    });
    expect(after.outputs.valid).toBe('false');
  });

  it('works from explicit endpoints without an instance, making no discovery request', async () => {
    const { result } = await exchange();
    const before = oidc.requests.length;
    const refreshed = await run({
      operation: 'refresh',
      'token-endpoint': `${oidc.issuer}/token`,
      'client-id': oidc.basic.id,
      'client-secret': oidc.basic.secret,
      'refresh-token': result.outputs['refresh-token'] ?? '',
    });
    expect(refreshed.exitCode).toBe(0);
    expect(oidc.requests.slice(before)).toEqual(['POST /token']);
  });
});

describe('explicit endpoints', () => {
  it('introspects and revokes at the given endpoints without an instance or discovery', async () => {
    const client = {
      'token-endpoint': `${oidc.issuer}/token`,
      'introspection-endpoint': `${oidc.issuer}/token/introspection`,
      'revocation-endpoint': `${oidc.issuer}/token/revocation`,
      'client-id': oidc.basic.id,
      'client-secret': oidc.basic.secret,
    };
    const before = oidc.requests.length;
    const got = await run({ operation: 'client-credentials', scope: 'api:read', ...client });
    expect(got.exitCode).toBe(0);
    const token = got.outputs['access-token'] ?? '';
    const valid = await run({ operation: 'validate', 'access-token': token, ...client });
    expect(valid.outputs.valid).toBe('true');
    const revoked = await run({ operation: 'revoke', 'access-token': token, ...client });
    expect(revoked.exitCode).toBe(0);
    const after = await run({
      operation: 'validate',
      'access-token': token,
      'fail-on-invalid': 'false',
      ...client,
    });
    expect(after.outputs.valid).toBe('false');
    expect(oidc.requests.slice(before)).toEqual([
      'POST /token',
      'POST /token/introspection',
      'POST /token/revocation',
      'POST /token/introspection',
    ]);
  });
});

describe('bad configuration fails before any token request', () => {
  it('names token-endpoint when the server publishes no metadata', async () => {
    const before = oidc.requests.length;
    const result = await run({
      operation: 'client-credentials',
      instance: `${oidc.issuer}/nothing-here`,
      'client-id': oidc.basic.id,
      'client-secret': oidc.basic.secret,
    });
    expect(result.exitCode).toBe(1);
    expect(result.stdout).toMatch(
      /Input 'token-endpoint': is required: .* publishes no OAuth metadata/,
    );
    const seen = oidc.requests.slice(before);
    expect(seen).toEqual([
      'GET /.well-known/oauth-authorization-server/nothing-here',
      'GET /nothing-here/.well-known/openid-configuration',
    ]);
  });

  it('revoke needs access-token; only oauth2 revokes a refresh token alone', async () => {
    const client = {
      operation: 'revoke',
      instance: oidc.issuer,
      'client-id': oidc.basic.id,
      'client-secret': oidc.basic.secret,
    };
    const before = oidc.requests.length;
    const neither = await run(client);
    expect(neither.exitCode).toBe(1);
    expect(neither.stdout).toMatch(
      /Input 'access-token': is required for operation 'revoke' \(or 'refresh-token', with platform oauth2\)/,
    );
    const onMastodon = await run({
      ...client,
      platform: 'mastodon',
      'refresh-token': 'x'.repeat(30),
    });
    expect(onMastodon.exitCode).toBe(1);
    expect(onMastodon.stdout).toMatch(
      /Input 'access-token': is required by Mastodon-API servers to revoke/,
    );
    expect(oidc.requests.length).toBe(before);
  });

  it('names client-id when it is missing', async () => {
    const result = await run({
      operation: 'refresh',
      instance: oidc.issuer,
      'refresh-token': 'x'.repeat(30),
    });
    expect(result.exitCode).toBe(1);
    expect(result.stdout).toMatch(/Input 'client-id': is required/);
  });
});

describe('discovery', () => {
  it('falls back to openid-configuration and refuses metadata naming another issuer', async () => {
    let issuer = '';
    let tokenEndpoint = `${oidc.issuer}/token`;
    const seen: string[] = [];
    // Serves only the OpenID document, naming oidc-provider's endpoints.
    const front = await listen((req, res) => {
      seen.push(req.url ?? '');
      if (req.url !== '/.well-known/openid-configuration') return sendJson(res, 404, {});
      sendJson(res, 200, {
        issuer,
        token_endpoint: tokenEndpoint,
        token_endpoint_auth_methods_supported: ['client_secret_post'],
      });
    });
    try {
      const inputs = {
        operation: 'client-credentials',
        instance: front.url,
        'client-id': oidc.post.id,
        'client-secret': oidc.post.secret,
        scope: 'api:read',
      };
      issuer = front.url;
      const auth = oidc.clientAuth.length;
      const good = await run(inputs);
      expect(good.exitCode).toBe(0);
      expect(seen).toEqual([
        '/.well-known/oauth-authorization-server',
        '/.well-known/openid-configuration',
      ]);
      expect(oidc.clientAuth.slice(auth)).toEqual(['body']);

      issuer = 'https://elsewhere.example';
      const before = oidc.requests.length;
      const bad = await run(inputs);
      expect(bad.exitCode).toBe(1);
      expect(bad.stdout).toMatch(
        /names issuer "https:\/\/elsewhere.example".*Set 'instance' to the issuer URL/,
      );
      expect(oidc.requests.length).toBe(before);

      // An unsafe endpoint is blamed on the document that named it.
      issuer = front.url;
      tokenEndpoint = 'http://auth.example/token';
      const unsafe = await run(inputs);
      expect(unsafe.exitCode).toBe(1);
      expect(unsafe.stdout).toContain(
        `${front.url} GET /.well-known/openid-configuration answered HTTP 200: token_endpoint is not an https:// URL. Give 'token-endpoint' explicitly`,
      );
      expect(oidc.requests.length).toBe(before);
    } finally {
      await front.close();
    }
  });
});
