/**
 * The leak check every test relies on must itself catch leaks: the real bundle runs with a
 * preloaded script that misbehaves the way a bug in src/ could.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from '@jest/globals';
import { LeakError, runAction } from './harness/action.ts';

const dir = mkdtempSync(join(tmpdir(), 'fedi-token-harness-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const TOKEN = 'harness-secret-token-0123456789';

function preload(name: string, source: string): Record<string, string> {
  const file = join(dir, `${name}.mjs`);
  writeFileSync(file, source);
  return { NODE_OPTIONS: `--import ${file}` };
}

// Bad input: the bundle masks the token and fails before any request, so no server is needed.
const inputs = { operation: 'nonsense', 'access-token': TOKEN };

describe('runAction leak check', () => {
  it('passes a run that masks the token', async () => {
    const run = await runAction('main', inputs);
    expect(run.exitCode).toBe(1);
    expect(run.masks).toContain(TOKEN);
  });

  it.each([
    ['printed before its mask', "console.log(process.env['INPUT_ACCESS-TOKEN']);"],
    [
      'written to the job summary',
      "import { appendFileSync } from 'node:fs';\n" +
        "appendFileSync(process.env.GITHUB_STEP_SUMMARY, process.env['INPUT_ACCESS-TOKEN']);",
    ],
    [
      'set as an output without a mask',
      "import { appendFileSync } from 'node:fs';\n" +
        'appendFileSync(process.env.GITHUB_OUTPUT, `access-token<<EOF\\n${process.env.LEAK}\\nEOF\\n`);',
    ],
  ])('fails a run with a secret %s, without printing it', async (name, source) => {
    const leaked = 'unmasked-output-value-987654';
    const error = await runAction('main', inputs, {
      env: { ...preload(name.replace(/\W+/g, '-'), source), LEAK: leaked },
    }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(LeakError);
    expect(String((error as Error).message)).not.toContain(TOKEN);
    expect(String((error as Error).message)).not.toContain(leaked);
  });
});
