/**
 * .github/workflows/e2e.yml, run here step by step as the runner would run it on ubuntu-latest
 * (harness/workflow.ts): the background servers, `uses: ./` for exchange, validate with
 * export-env, revoke and client-credentials with revoke-on-exit, `uses: ./snapshot` full then
 * incremental, the final checks, and the post steps. What is left for GitHub is the runner
 * itself on each system. Edited copies of the workflow show that its checks can fail.
 */
import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runJob, type JobRun, type Workflow } from './harness/workflow.ts';

const CHECKOUT = /^actions\/checkout@[0-9a-f]{40}$/;

let runnerTemp: string;
let runs: JobRun[] = [];
beforeEach(() => {
  runnerTemp = mkdtempSync(join(tmpdir(), 'fedi-token-e2e-'));
  runs = [];
});
afterEach(() => {
  // A failed run must not leave the servers behind.
  for (const run of runs) {
    const pid = Number(run.steps.find((step) => step.id === 'servers')?.main?.state.pid);
    if (pid && alive(pid)) process.kill(pid);
  }
  rmSync(runnerTemp, { recursive: true, force: true });
});

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function e2e(edit?: (workflow: Workflow) => void): Promise<JobRun> {
  const run = await runJob('.github/workflows/e2e.yml', 'action', {
    matrix: { os: 'ubuntu-latest' },
    runnerTemp,
    edit,
  });
  runs.push(run);
  return run;
}

const step = (run: JobRun, id: string) => {
  const found = run.steps.find((s) => s.id === id);
  if (!found) throw new Error(`no step ${id}`);
  return found;
};

/** Every value some step masked, visible nowhere in the job's log as the runner shows it. */
function expectNoLeaks(run: JobRun): void {
  expect(run.masks.length).toBeGreaterThan(0);
  const visible = run.masks.filter((mask) => mask.length >= 6 && run.maskedLog.includes(mask));
  expect(visible).toEqual([]);
}

describe('e2e.yml', () => {
  it('passes: every step succeeds, the final checks pass, revoke-on-exit revoked, the servers stop', async () => {
    const run = await e2e();
    // A failing step is named with its error lines, which never hold a secret.
    const failed = run.steps
      .filter((s) => s.outcome !== 'success')
      .map(
        (s) =>
          `${s.label}\n${s.log
            .split('\n')
            .filter((l) => l.startsWith('::error::'))
            .join('\n')}`,
      );
    expect(failed).toEqual([]);
    expect(run.failed).toBe(false);
    // Only the checkout comes from elsewhere: here the repository is the checkout.
    expect(run.notRun).toEqual([expect.stringMatching(CHECKOUT)]);
    // Every input the workflow gives has an effect: the action warns of none.
    expect(run.log).not.toMatch(/^::warning::/m);

    const checks = run.steps.at(-1);
    expect(checks?.label).toBe('Check the outputs, the exported variable and the file');
    expect(checks?.log).toMatch(/^All \d+ checks passed\.$/m);
    expect(checks?.log).not.toMatch(/::error::/);

    // The client-credentials step revoked its token in its post step, before the servers' post
    // step looked, and the servers are gone.
    expect(step(run, 'app').post?.exitCode).toBe(0);
    const servers = step(run, 'servers');
    expect(servers.post?.log).toMatch(/All 1 tokens to be revoked on exit were revoked\./);
    expect(servers.post?.exitCode).toBe(0);
    expect(alive(Number(servers.main?.state.pid))).toBe(false);

    // Secrets: the servers' client secret, code and tokens were masked from the first line on.
    expect(step(run, 'servers').main?.masks).toHaveLength(3);
    expectNoLeaks(run);
    expect(existsSync(join(runnerTemp, 'fedi-token-e2e', 'site', 'statuses.json'))).toBe(true);
  });

  it('fails when export-env is not set: the final step reads the variable', async () => {
    const run = await e2e((workflow) => {
      delete workflow.jobs.action?.steps.find((s) => s.id === 'validate')?.with?.['export-env'];
    });
    expect(run.failed).toBe(true);
    const checks = run.steps.at(-1);
    expect(checks?.outcome).toBe('failure');
    expect(checks?.log).toMatch(
      /^::error::validate: export-env set FEDI_E2E_TOKEN for later steps, to the token: not set$/m,
    );
    expect(checks?.log).toMatch(/^\d+ passed, 1 failed$/m);
    expectNoLeaks(run);
  });

  it('fails when revoke-on-exit is off: the servers post step finds the token live', async () => {
    const run = await e2e((workflow) => {
      const app = workflow.jobs.action?.steps.find((s) => s.id === 'app');
      if (app?.with) app.with['revoke-on-exit'] = false;
    });
    expect(run.failed).toBe(true);
    expect(run.steps.filter((s) => s.outcome === 'failure').map((s) => s.label)).toEqual([]);
    const servers = step(run, 'servers');
    expect(servers.post?.exitCode).toBe(1);
    expect(servers.post?.log).toMatch(
      /^::error::1 of the 1 tokens to be revoked on exit are still live$/m,
    );
    expect(alive(Number(servers.main?.state.pid))).toBe(false);
  });
});
