/**
 * scripts/lint-workflows.ts, the actionlint part of `npm run lint`: which ```yaml blocks of the
 * docs count as workflow or step examples, how steps are wrapped, and that a broken example or
 * workflow fails the script at its own line, while the repository itself passes.
 */
import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { lintExample, lintRepository, toExample, yamlBlocks } from '../scripts/lint-workflows.ts';
import { NODE24, ROOT, spawnLogged } from './harness/action.ts';

const md = (...lines: string[]) => lines.join('\n');

describe('yamlBlocks', () => {
  it('finds ```yaml and ```yml blocks, indented ones too, and no others', () => {
    const blocks = yamlBlocks(
      md(
        '# Title', //                                         1
        '```yaml', //                                         2
        'a: 1', //                                            3
        '```', //                                             4
        '```sh', //                                           5
        'echo not yaml', //                                   6
        '```', //                                             7
        '1. A list item', //                                  8
        '   ```yml', //                                       9
        '   - run: echo indented', //                         10
        '     shell: bash', //                                11
        '   ```', //                                          12
        '````yaml', //                                        13
        'b: |', //                                            14
        '  ```', //                                           15
        '````', //                                            16
      ),
    );
    expect(blocks).toEqual([
      { line: 3, text: 'a: 1' },
      { line: 10, text: '- run: echo indented\n  shell: bash' },
      { line: 14, text: 'b: |\n  ```' },
    ]);
  });
});

describe('toExample', () => {
  const kind = (text: string) => toExample({ line: 1, text }).kind;

  it('tells workflows, steps and other YAML apart', () => {
    expect(kind('on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps: []')).toBe(
      'workflow',
    );
    expect(kind('jobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n      - run: x')).toBe(
      'workflow',
    );
    expect(kind('- uses: actions/checkout@v5\n- run: echo hi')).toBe('steps');
    expect(kind('steps:\n  - run: echo hi')).toBe('steps');
    expect(kind('uses: OWNER/fedi-token@v1\nwith:\n  operation: validate')).toBe('steps');
    expect(kind('inputs:\n  operation:\n    description: x')).toBe('other');
    expect(kind('version: 2\nupdates: []')).toBe('other');
    expect(toExample({ line: 1, text: 'a: [' }).error).toMatch(/not valid YAML/);
  });

  it('wraps steps in a workflow_dispatch job on ubuntu-latest', () => {
    const example = toExample({ line: 1, text: '- run: echo hi' });
    expect(example.text).toBe(
      md(
        'on: workflow_dispatch',
        'jobs:',
        '  example:',
        '    runs-on: ubuntu-latest',
        '    steps:',
        '      - run: echo hi',
      ),
    );
  });
});

describe('lintExample', () => {
  const lint = (text: string, line = 40) => lintExample('README.md', toExample({ line, text }));

  it('passes an example that carries the step it refers to', async () => {
    const good = md(
      '- id: snapshot',
      '  uses: OWNER/fedi-token/snapshot@v1',
      '  with:',
      '    instance: https://social.example',
      "- if: steps.snapshot.outputs.changed == 'true'",
      '  run: git push',
    );
    expect(await lint(good)).toEqual([]);
  });

  it('fails a fragment that uses steps.snapshot without a step with id snapshot, at its line', async () => {
    const broken = md(
      '- uses: OWNER/fedi-token/snapshot@v1', //                    line 40
      '  with:', //                                                 41
      '    instance: https://social.example', //                    42
      "- if: steps.snapshot.outputs.changed == 'true'", //          43
      '  run: git push', //                                         44
    );
    const problems = await lint(broken);
    expect(problems).toEqual([
      expect.objectContaining({ file: 'README.md', line: 43, column: 7, kind: 'expression' }),
    ]);
    expect(problems[0]?.message).toMatch(/property "snapshot" is not defined/);
  });

  it('fails an example that reads a workflow_dispatch input it does not declare', async () => {
    const problems = await lint('- run: echo "${{ inputs.session }}"');
    expect(problems.map((p) => p.message)).toEqual([
      expect.stringMatching(/property "session" is not defined/),
    ]);
  });

  it('fails a workflow with a runner label that does not exist', async () => {
    const workflow = md('on: push', 'jobs:', '  a:', '    runs-on: ubuntu-lastest', '    steps:');
    const problems = await lint(`${workflow}\n      - run: echo`, 10);
    expect(problems).toEqual([expect.objectContaining({ line: 13, kind: 'runner-label' })]);
  });
});

describe('the script', () => {
  let root: string;
  beforeEach(() => {
    root = mkdtempSync(join(tmpdir(), 'lint-workflows-'));
    mkdirSync(join(root, '.github', 'workflows'), { recursive: true });
    mkdirSync(join(root, 'docs'));
  });
  afterEach(() => rmSync(root, { recursive: true, force: true }));

  const run = () =>
    spawnLogged(NODE24, [join(ROOT, 'scripts', 'lint-workflows.ts'), root], {
      env: { PATH: process.env.PATH ?? '' },
      cwd: ROOT,
      timeoutMs: 60_000,
    });
  const workflow = md(
    'on: push',
    'jobs:',
    '  a:',
    '    runs-on: ubuntu-latest',
    '    steps:',
    '      - run: echo hi',
  );

  it('exits 0 on clean workflows and docs, 1 on a broken docs example, naming file and line', async () => {
    writeFileSync(join(root, '.github', 'workflows', 'ci.yml'), workflow);
    writeFileSync(join(root, 'README.md'), md('# Read me', '```yaml', '- run: echo hi', '```'));
    const clean = await run();
    expect(clean.exitCode).toBe(0);
    expect(clean.stdout).toMatch(/1 workflow files and 1 workflow or step examples/);

    writeFileSync(
      join(root, 'docs', 'snapshot.md'),
      md(
        'Text',
        '',
        '```yaml',
        "- if: steps.snapshot.outputs.changed == 'true'",
        '  run: x',
        '```',
      ),
    );
    const broken = await run();
    expect(broken.exitCode).toBe(1);
    expect(broken.stderr).toMatch(/^docs\/snapshot\.md:4:7: property "snapshot" is not defined/m);
  });

  it('exits 1 on a broken workflow file', async () => {
    writeFileSync(join(root, '.github', 'workflows', 'ci.yml'), `${workflow}\n        with: {}`);
    const broken = await run();
    expect(broken.exitCode).toBe(1);
    expect(broken.stderr).toMatch(/^\.github\/workflows\/ci\.yml:7:/m);
  });

  it('passes on this repository', async () => {
    const report = await lintRepository(ROOT);
    expect(report.problems).toEqual([]);
    expect(report.workflows).toBeGreaterThanOrEqual(1);
    expect(report.examples).toBeGreaterThan(0);
  });
});
