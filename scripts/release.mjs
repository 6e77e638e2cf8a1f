// The steps of .github/workflows/release.yml that are more than one command, so they can be
// tested here (__tests__/release.test.ts):
//   node scripts/release.mjs check TAG           the tag is v<package.json version>, the bundled
//                                                CLI says that version, npm can publish with
//                                                trusted publishing (11.5.1 or later); sets the
//                                                output dist-tag: latest; next for a prerelease;
//                                                latest-<major> for a release older than npm's
//                                                latest (NPM_LATEST), so a backport does not
//                                                become what `npx fedi-token` runs
//   node scripts/release.mjs move-major-tag TAG  points v<major> at the released commit and pushes
//                                                it, so `uses: fedi-token/fedi-token@v1` gets the
//                                                release; a prerelease, or a release older than
//                                                another of its major on origin, moves nothing
// A prerelease is a tag with a suffix (v2.0.0-rc.1) or a release with "Set as a pre-release"
// ticked (PRERELEASE=true, from the release event).
import { execFileSync } from 'node:child_process';
import { appendFileSync, readFileSync } from 'node:fs';
import { EOL } from 'node:os';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const VERSION = /^v(\d+)\.(\d+)\.(\d+)(?:-([0-9A-Za-z.-]+))?(?:\+[0-9A-Za-z.-]+)?$/;
/** The first npm that publishes with trusted publishing (OIDC) and provenance from Actions. */
const NPM_MINIMUM = [11, 5, 1];

class ReleaseError extends Error {}

function parseTag(tag) {
  const match = VERSION.exec(tag);
  if (!match) throw new ReleaseError(`Release tag '${tag}' is not v<major>.<minor>.<patch>`);
  return {
    numbers: [Number(match[1]), Number(match[2]), Number(match[3])],
    prerelease: match[4] !== undefined || process.env.PRERELEASE === 'true',
  };
}

/** `v1` for v1.2.3; undefined for a prerelease (v2.0.0-rc.1), which must not move `v2`. */
export function majorTag(tag) {
  const { numbers, prerelease } = parseTag(tag);
  return prerelease ? undefined : `v${numbers[0]}`;
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
  // A prerelease goes to `next`: `npx fedi-token` (the `latest` tag) must not pick it up. Nor
  // must a fix to an older major, released after a newer one: it goes to `latest-<major>`, npm's
  // own convention (a dist-tag may not look like a version range, so not `v1-latest`).
  const { numbers, prerelease } = parseTag(tag);
  const latest = VERSION.exec(`v${process.env.NPM_LATEST ?? ''}`);
  const behind =
    latest &&
    older(
      numbers,
      [1, 2, 3].map((i) => Number(latest[i])),
    );
  const distTag = prerelease ? 'next' : behind ? `latest-${numbers[0]}` : 'latest';
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
  // v1.9.1 released after v1.10.0 is a fix to an older line: v1 stays at the newest.
  const { numbers } = parseTag(tag);
  const newer = git('ls-remote', '--tags', '--refs', 'origin', `refs/tags/${major}.*`)
    .split('\n')
    .map((line) => line.split('refs/tags/')[1] ?? '')
    .find((other) => {
      const match = VERSION.exec(other);
      if (!match || match[4] !== undefined) return false;
      return older(
        numbers,
        [1, 2, 3].map((i) => Number(match[i])),
      );
    });
  if (newer) {
    console.log(`${tag} is older than ${newer}: ${major} stays where it is.`);
    return;
  }
  // GITHUB_SHA is the released commit on a release event; the tag itself names it elsewhere.
  const commit = process.env.GITHUB_SHA || git('rev-parse', `${tag}^{commit}`);
  git('tag', '--force', major, commit);
  try {
    git('push', '--force', 'origin', `refs/tags/${major}`);
  } catch {
    throw new ReleaseError(
      `Could not push ${major} (git said why above). If GitHub refused to update workflows without the workflows permission, the release changed a file in .github/workflows: store a token that may write contents and workflows as the secret RELEASE_TAG_TOKEN (docs/releasing.md) and re-run this job`,
    );
  }
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
