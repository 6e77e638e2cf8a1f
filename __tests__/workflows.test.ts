/**
 * The repository's own workflows, read as files: CI runs exactly the stages .ci/run runs, every
 * action from elsewhere is pinned by commit SHA with its version beside it, Dependabot keeps
 * both kinds of dependency current, and the release job has the permissions it needs and no more.
 * (actionlint checks them too, in `npm run lint`; e2e.yml is run in e2e-workflow.test.ts.)
 */
import { describe, expect, it } from '@jest/globals';
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { ROOT } from './harness/action.ts';

interface Step {
  id?: string;
  name?: string;
  uses?: string;
  run?: string;
  with?: Record<string, unknown>;
  env?: Record<string, string>;
}
interface Job {
  needs?: string | string[];
  permissions?: Record<string, string>;
  'runs-on'?: string;
  strategy?: { matrix?: Record<string, unknown> };
  steps: Step[];
}
interface Workflow {
  on: Record<string, unknown>;
  permissions?: Record<string, string>;
  defaults?: { run?: { shell?: string } };
  jobs: Record<string, Job>;
}

const DIR = join(ROOT, '.github', 'workflows');
const FILES = readdirSync(DIR).filter((name) => /\.ya?ml$/.test(name));
const text = (name: string) => readFileSync(join(DIR, name), 'utf8');
const workflow = (name: string) => parse(text(name)) as Workflow;

it('has the three workflows', () => {
  expect(FILES.sort()).toEqual(['ci.yml', 'e2e.yml', 'release.yml']);
});

describe('ci.yml', () => {
  const stages = execFileSync(process.execPath, [join(ROOT, 'scripts', 'check.mjs'), '--list'], {
    encoding: 'utf8',
  })
    .trim()
    .split('\n');

  it('runs on push and pull request', () => {
    expect(Object.keys(workflow('ci.yml').on).sort()).toEqual(['pull_request', 'push']);
  });

  it('runs every stage of scripts/check.mjs, in order, each once, and nothing else', () => {
    const runs = workflow('ci.yml').jobs.check?.steps.flatMap((step) => step.run ?? []);
    expect(stages.length).toBeGreaterThanOrEqual(8);
    expect(runs).toEqual(stages.map((stage) => `node scripts/check.mjs ${stage}`));
  });

  it('.ci/run runs all of them, through the same script, the last one being npm test', () => {
    const commands = readFileSync(join(ROOT, '.ci', 'run'), 'utf8')
      .split('\n')
      .filter((line) => line.trim() && !line.startsWith('#'));
    expect(commands.slice(-2)).toEqual([
      'node scripts/check.mjs $(node scripts/check.mjs --list | grep -vx test)',
      'npm test',
    ]);
    expect(stages.at(-1)).toBe('test');
    expect(readFileSync(join(ROOT, 'scripts', 'check.mjs'), 'utf8')).toContain(
      "test: () => run('npm', ['test'])",
    );
  });

  it('keeps the test artifacts', () => {
    const upload = workflow('ci.yml').jobs.check?.steps.find((step) =>
      step.uses?.startsWith('actions/upload-artifact@'),
    );
    expect(upload?.with).toMatchObject({ path: 'artifacts/', 'if-no-files-found': 'ignore' });
  });
});

describe('actions from other repositories', () => {
  const uses = FILES.flatMap((file) =>
    text(file)
      .split('\n')
      .flatMap((line, index) => {
        const match = /^\s*(?:-\s+)?uses:\s*(\S+)(.*)$/.exec(line);
        return match && !match[1]?.startsWith('./')
          ? [
              {
                where: `${file}:${index + 1}`,
                ref: match[1] ?? '',
                comment: match[2]?.trim() ?? '',
              },
            ]
          : [];
      }),
  );

  it('are pinned by full commit SHA, with the version in a comment', () => {
    expect(uses.length).toBeGreaterThan(0);
    const loose = uses.filter(
      (use) =>
        !/^[\w.-]+\/[\w.-]+(\/[\w./-]+)?@[0-9a-f]{40}$/.test(use.ref) ||
        !/^# v\d+\.\d+\.\d+$/.test(use.comment),
    );
    expect(loose).toEqual([]);
  });

  it('are pinned to one commit per action across the workflows', () => {
    const pins = new Map<string, Set<string>>();
    for (const use of uses) {
      const [action = '', sha = ''] = use.ref.split('@');
      pins.set(action, new Set([...(pins.get(action) ?? []), `${sha} ${use.comment}`]));
    }
    for (const [action, set] of pins) expect([action, set.size]).toEqual([action, 1]);
  });
});

it('every workflow starts from read-only permissions (or none), jobs ask for more', () => {
  const wider = FILES.map((file) => {
    const { permissions } = workflow(file);
    if (permissions === undefined) return [file, 'no top-level permissions'];
    return [file, Object.entries(permissions).filter(([, level]) => level !== 'read')];
  });
  expect(wider).toEqual(FILES.map((file) => [file, []]));
});

describe('dependabot.yml', () => {
  const config = parse(readFileSync(join(ROOT, '.github', 'dependabot.yml'), 'utf8')) as {
    version: number;
    updates: { 'package-ecosystem': string; directory: string }[];
  };

  it('updates the npm packages and the actions', () => {
    expect(config.version).toBe(2);
    expect(config.updates.map((u) => [u['package-ecosystem'], u.directory]).sort()).toEqual([
      ['github-actions', '/'],
      ['npm', '/'],
    ]);
  });
});

describe('release.yml', () => {
  const release = workflow('release.yml');
  const publish = release.jobs.publish;
  const majorTag = release.jobs['major-tag'];

  it('runs when a release is published', () => {
    expect(release.on).toEqual({ release: { types: ['published'] } });
  });

  it('publishes with provenance from a job that may mint an OIDC token but not write', () => {
    expect(publish?.permissions).toEqual({ contents: 'read', 'id-token': 'write' });
    const runs = publish?.steps.flatMap((step) => step.run ?? []) ?? [];
    expect(runs).toEqual([
      'echo "latest=$(npm view fedi-token dist-tags.latest 2>/dev/null || true)" >> "$GITHUB_OUTPUT"',
      'node scripts/release.mjs check "$TAG"',
      'node scripts/check.mjs install',
      'node scripts/check.mjs dist',
      'node scripts/check.mjs start',
      'if [ -n "$NPM_TOKEN" ]; then echo \'//registry.npmjs.org/:_authToken=${NPM_TOKEN}\' >> ~/.npmrc; fi\n' +
        'npm publish --provenance --access public --tag "$DIST_TAG"\n',
    ]);
    const setup = publish?.steps.find((step) => step.uses?.startsWith('actions/setup-node@'));
    expect(setup?.with).toMatchObject({ 'package-manager-cache': false });
    // setup-node's registry-url would write a token line reading NODE_AUTH_TOKEN, empty once
    // trusted publishing replaces NPM_TOKEN.
    expect(setup?.with).not.toHaveProperty('registry-url');
  });

  it("tells the script npm's latest version and the pre-release box", () => {
    const check = publish?.steps.find((step) => step.id === 'check');
    expect(check?.env).toEqual({
      TAG: '${{ github.event.release.tag_name }}',
      PRERELEASE: '${{ github.event.release.prerelease }}',
      NPM_LATEST: '${{ steps.npm.outputs.latest }}',
    });
    const move = majorTag?.steps.find((step) => step.run?.includes('move-major-tag'));
    expect(move?.env).toMatchObject({ PRERELEASE: '${{ github.event.release.prerelease }}' });
  });

  it('moves the major tag after the publish, from a job that may write but not mint', () => {
    expect(majorTag?.needs).toBe('publish');
    expect(majorTag?.permissions).toEqual({ contents: 'write' });
    expect(majorTag?.steps.flatMap((step) => step.run ?? [])).toEqual([
      'node scripts/release.mjs move-major-tag "$TAG"',
    ]);
    const checkout = majorTag?.steps.find((step) => step.uses?.startsWith('actions/checkout@'));
    expect(checkout?.with).toEqual({ token: '${{ secrets.RELEASE_TAG_TOKEN || github.token }}' });
  });

  it('passes the tag through the environment, never into the script text', () => {
    for (const step of [...(publish?.steps ?? []), ...(majorTag?.steps ?? [])]) {
      expect(step.run ?? '').not.toMatch(/\$\{\{/);
    }
  });
});

describe('e2e.yml', () => {
  const e2e = workflow('e2e.yml');

  it('runs on Linux, Windows and macOS, every run step with bash', () => {
    expect(e2e.jobs.action?.strategy?.matrix?.os).toEqual([
      'ubuntu-latest',
      'windows-latest',
      'macos-latest',
    ]);
    expect(e2e.defaults?.run?.shell).toBe('bash');
  });

  it('runs node scripts, no shell-only commands', () => {
    const runs = e2e.jobs.action?.steps.flatMap((step) => step.run ?? []) ?? [];
    expect(runs.length).toBeGreaterThan(0);
    for (const run of runs) expect(run).toMatch(/^node scripts\/e2e\/[\w-]+\.mjs$/);
  });
});
