export const id = 120;
export const ids = [120];
export const modules = {

/***/ 120:
/***/ ((__unused_webpack___webpack_module__, __webpack_exports__, __webpack_require__) => {

// ESM COMPAT FLAG
__webpack_require__.r(__webpack_exports__);

// EXPORTS
__webpack_require__.d(__webpack_exports__, {
  prepareWriteBack: () => (/* binding */ prepareWriteBack)
});

// EXTERNAL MODULE: ./errors.js
var errors = __webpack_require__(645);
// EXTERNAL MODULE: ./http.js + 3 modules
var http_0 = __webpack_require__(206);
// EXTERNAL MODULE: ../../node_modules/zod/v4/mini/schemas.js + 3 modules
var schemas = __webpack_require__(108);
// EXTERNAL MODULE: ./loopback-host.js
var loopback_host = __webpack_require__(242);
// EXTERNAL MODULE: ./providers/oauth-token.js + 1 modules
var oauth_token = __webpack_require__(813);
;// CONCATENATED MODULE: ./github/sealed-box.js
/**
 * libsodium sealed boxes, the encryption GitHub requires for secret values. libsodium is large
 * (~430 kB with its WebAssembly), so it is imported only when a secret is written: the bundler
 * puts it in a chunk of its own and every other run starts without it.
 */
/** Size of an X25519 public key, the only key a sealed box takes. */
const PUBLIC_KEY_BYTES = 32;
/** Encrypt `value` to the base64 X25519 `publicKey`; returns base64 as GitHub expects it. */
async function sealForKey(publicKey, value) {
    const key = Buffer.from(publicKey, 'base64');
    if (key.length !== PUBLIC_KEY_BYTES) {
        throw new Error(`the public key is ${key.length} bytes, not ${PUBLIC_KEY_BYTES}`);
    }
    const { default: sodium } = await __webpack_require__.e(/* import() */ 724).then(__webpack_require__.bind(__webpack_require__, 724));
    await sodium.ready;
    const sealed = sodium.crypto_box_seal(new TextEncoder().encode(value), key);
    return Buffer.from(sealed).toString('base64');
}

;// CONCATENATED MODULE: ./github/secrets.js
/**
 * Writing one repository secret through the GitHub REST API: fetch the repository's public key,
 * seal the value to it, PUT the sealed value. Values never leave this module unencrypted.
 */





const REPOSITORY = /^([A-Za-z0-9_.-]+)\/([A-Za-z0-9_.-]+)$/;
/** The repository this workflow runs in, from the variables the runner sets. */
function repositoryFromEnv(env = process.env) {
    const match = REPOSITORY.exec(env.GITHUB_REPOSITORY ?? '');
    if (!match?.[1] || !match[2]) {
        throw new errors/* InputError */.dz('secret-name', 'needs GITHUB_REPOSITORY (owner/name), which the runner sets; set it when running elsewhere');
    }
    const apiUrl = new URL(env.GITHUB_API_URL || 'https://api.github.com');
    if (apiUrl.protocol !== 'https:' && !loopback_host/* LOOPBACK_HOSTS */.W.test(apiUrl.hostname)) {
        throw new errors/* InputError */.dz('secret-name', 'needs GITHUB_API_URL to be an https:// URL');
    }
    return { apiUrl, owner: match[1], name: match[2] };
}
const publicKeySchema = schemas/* object */.Ikc({ key_id: schemas/* string */.YjP(), key: schemas/* string */.YjP() });
/** What a github-token needs, for messages about a refused or missing repository. */
const PERMISSION_HINT = "The 'github-token' must be allowed to write this repository's Actions secrets: a fine-grained " +
    "personal access token with 'Secrets: Read and write' on the repository, or a classic token with " +
    "the 'repo' scope. The workflow's own GITHUB_TOKEN cannot write secrets";
class RepositorySecrets {
    http;
    repository;
    token;
    constructor(http, repository, token) {
        this.http = http;
        this.repository = repository;
        this.token = token;
    }
    get label() {
        return `${this.repository.owner}/${this.repository.name}`;
    }
    /** Encrypt and store `value` as secret `name` (created or replaced). */
    async write(name, value) {
        const { key_id, key } = await this.publicKey();
        let sealed;
        try {
            sealed = await sealForKey(key, value);
        }
        catch (error) {
            throw new errors/* ServerError */.gP({
                server: this.repository.apiUrl.origin,
                endpoint: `GET ${this.path('secrets/public-key')}`,
                status: 200,
                description: `unusable public key (${error instanceof Error ? error.message : 'encryption failed'})`,
            });
        }
        await this.send({
            method: 'PUT',
            url: this.url(`secrets/${encodeURIComponent(name)}`),
            json: { encrypted_value: sealed, key_id },
            // Storing the same value twice leaves the same secret: safe to repeat.
            idempotent: true,
        });
    }
    async publicKey() {
        const request = { method: 'GET', url: this.url('secrets/public-key') };
        try {
            const { data } = await this.http.json(this.withAuth(request), publicKeySchema);
            return data;
        }
        catch (error) {
            throw this.explain(error);
        }
    }
    async send(request) {
        try {
            await this.http.send(this.withAuth(request));
        }
        catch (error) {
            throw this.explain(error);
        }
    }
    withAuth(request) {
        return {
            ...request,
            // GitHub answers 500 now and then; both requests are safe to repeat, and the final write
            // is the one that must not be lost.
            retryStatuses: [500],
            bearer: this.token,
            headers: { accept: 'application/vnd.github+json', 'x-github-api-version': '2022-11-28' },
        };
    }
    path(rest) {
        const base = this.repository.apiUrl.pathname.replace(/\/+$/, '');
        const { owner, name } = this.repository;
        return `${base}/repos/${encodeURIComponent(owner)}/${encodeURIComponent(name)}/actions/${rest}`;
    }
    url(rest) {
        return new URL(this.path(rest), this.repository.apiUrl.origin);
    }
    explain(error) {
        if (!(error instanceof errors/* ServerError */.gP))
            return error;
        if (error.status === 401) {
            return (0,oauth_token/* withHint */.mu)(error, "The 'github-token' is invalid or expired");
        }
        if (error.status === 403)
            return (0,oauth_token/* withHint */.mu)(error, PERMISSION_HINT);
        if (error.status === 404) {
            // GitHub hides repositories a token cannot see behind 404.
            return (0,oauth_token/* withHint */.mu)(error, `Repository ${this.label} was not found, or the token cannot see it. ${PERMISSION_HINT}`);
        }
        return error;
    }
}

;// CONCATENATED MODULE: ./refresh-writeback.js
/**
 * Refresh-token rotation without loss. A rotating server invalidates the old refresh token the
 * moment it hands out the new one, so the new one must reach the repository secret or the user has
 * to authorize again. Hence the order: prove the secret can be written (by writing the current
 * value back) before spending the refresh token, then refresh, then write the new value with
 * retries. If that last write still fails, the step fails with instructions while the new token
 * is already masked and is output for a later step to store.
 */



/** The last write is worth more patience than an ordinary request. */
const FINAL_WRITE_MIN_ATTEMPTS = 5;
/**
 * The write-back for `config`, ready to wrap its refresh. The repository comes from the runner's
 * environment and is checked here, so the main step calls this before any request: a run that
 * could never store the new token fails before detection, before the proof write, before the
 * refresh.
 */
function prepareWriteBack(config, runtime) {
    const name = config.secretName;
    const current = config.refreshToken;
    const githubToken = config.githubToken;
    if (!name || !githubToken || !current) {
        throw new Error('write-back needs secret-name, github-token and refresh-token (inputs.ts)');
    }
    const repository = repositoryFromEnv(runtime.env);
    const http = runtime.http ??
        new http_0/* Http */.lw({
            timeoutMs: config.timeoutMs,
            maxAttempts: Math.max(config.maxAttempts, FINAL_WRITE_MIN_ATTEMPTS),
        });
    const secrets = new RepositorySecrets(http, repository, githubToken);
    return async (refresh) => {
        try {
            await secrets.write(name, current);
        }
        catch (error) {
            throw prefixed(error, `Nothing was refreshed: secret ${name} of ${secrets.label} cannot be written. `);
        }
        runtime.log(`Secret ${name} of ${secrets.label} is writable; refreshing`);
        const result = await refresh();
        const next = result.tokens?.refreshToken;
        if (!next || next === current) {
            runtime.log(`The refresh token did not change; secret ${name} already holds it`);
            return result;
        }
        try {
            await secrets.write(name, next);
        }
        catch (error) {
            return {
                ...result,
                failure: `The server rotated the refresh token, but writing it to secret ${name} of ${secrets.label} ` +
                    `failed: ${(0,errors/* describeError */.Uc)(error)}. The old refresh token no longer works. The new one is ` +
                    "this step's output 'refresh-token' (masked): store it in a later step of this job, e.g. " +
                    `with if: failure() and \`gh secret set ${name}\` reading it from an environment variable, ` +
                    'before the job ends, or authorize again',
            };
        }
        runtime.log(`Stored the rotated refresh token in secret ${name} of ${secrets.label}`);
        return result;
    };
}
/** The same error, its message led by what it means for this step. */
function prefixed(error, lead) {
    if (error instanceof Error) {
        error.message = `${lead}${error.message}`;
    }
    return error;
}


/***/ })

};
