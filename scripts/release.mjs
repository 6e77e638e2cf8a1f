// The steps of .github/workflows/release.yml that are more than one command, so they can be
// tested here (__tests__/release.test.ts):
//   node scripts/release.mjs check TAG           the tag is v<package.json version>, the bundled
//                                                CLI says that version, npm can publish with
//                                                trusted publishing (11.5.1 or later); sets the
//                                                output dist-tag: latest, or next for a prerelease
//   node scripts/release.mjs move-major-tag TAG  points v<major> at the released commit and pushes
//                                                it, so `uses: fedi-token/fedi-token@v1` gets the
//                                                release; a prerelease moves nothing
import { execFileSync } from 'node:child_process';
import { appendFileSync, readFileSync } from 'node:fs';
import { EOL } from 'node:os';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const VERSION = /^v(\d+)\.(\d+)\.(\d+)(?:-([0-9A-Za-z.-]+))?(?:\+[0-9A-Za-z.-]+)?$/;
/** The first npm that publishes with trusted publishing (OIDC) and provenance from Actions. */
const NPM_MINIMUM = [11, 5, 1];

class ReleaseError extends Error {}

/** `v1` for v1.2.3; undefined for a prerelease (v2.0.0-rc.1), which must not move `v2`. */
export function majorTag(tag) {
  const match = VERSION.exec(tag);
  if (!match) throw new ReleaseError(`Release tag '${tag}' is not v<major>.<minor>.<patch>`);
  return match[4] === undefined ? `v${match[1]}` : undefined;
}

const older = (have, want) => {
  for (let i = 0; i < want.length; i++) {
    if ((have[i] ?? 0) !== want[i]) return (have[i] ?? 0) < want[i];
  }
  return false;
};

function check(tag) {
  majorTag(tag);
  const { version } = JSON.parse(readFileSync('package.json', 'utf8'));
  if (tag !== `v${version}`) {
    throw new ReleaseError(
      `Release tag ${tag} does not match package.json's version ${version}: set "version" to ${tag.slice(1)}, commit, and tag that commit`,
    );
  }
  const cli = execFileSync(process.execPath, ['dist/cli/index.js', '--version'], {
    encoding: 'utf8',
  }).trim();
  if (cli !== version) {
    throw new ReleaseError(
      `The bundled CLI says ${cli}, package.json ${version}: update src/version.ts, run npm run bundle, and commit`,
    );
  }
  const npm = execFileSync('npm', ['--version'], {
    encoding: 'utf8',
    shell: process.platform === 'win32',
  }).trim();
  if (older(npm.split('.').map(Number), NPM_MINIMUM)) {
    throw new ReleaseError(
      `npm ${npm} cannot publish with trusted publishing; ${NPM_MINIMUM.join('.')} or later can`,
    );
  }
  // A prerelease goes to `next`: `npx fedi-token` (the `latest` tag) must not pick it up.
  const distTag = majorTag(tag) ? 'latest' : 'next';
  if (process.env.GITHUB_OUTPUT)
    appendFileSync(process.env.GITHUB_OUTPUT, `dist-tag=${distTag}${EOL}`);
  console.log(`Releasing fedi-token ${version} (tag ${tag}) to npm's ${distTag} with npm ${npm}.`);
}

function moveMajorTag(tag) {
  const major = majorTag(tag);
  if (!major) {
    console.log(`${tag} is a prerelease: the major tag stays where it is.`);
    return;
  }
  const git = (...args) => execFileSync('git', args, { encoding: 'utf8' }).trim();
  // GITHUB_SHA is the released commit on a release event; the tag itself names it elsewhere.
  const commit = process.env.GITHUB_SHA || git('rev-parse', `${tag}^{commit}`);
  git('tag', '--force', major, commit);
  git('push', '--force', 'origin', `refs/tags/${major}`);
  console.log(`${major} now points at ${commit} (${tag}).`);
}

const COMMANDS = { check, 'move-major-tag': moveMajorTag };

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const [command, tag] = process.argv.slice(2);
  try {
    const run = COMMANDS[command ?? ''];
    if (!run || !tag) {
      throw new ReleaseError(
        `Usage: node scripts/release.mjs ${Object.keys(COMMANDS).join('|')} TAG`,
      );
    }
    run(tag);
  } catch (error) {
    if (!(error instanceof ReleaseError)) throw error;
    console.error(`::error::${error.message}`);
    process.exitCode = 1;
  }
}
