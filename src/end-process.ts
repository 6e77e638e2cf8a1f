/**
 * How every entry point ends (the action's launchers, written by scripts/bundle.mjs, and the CLI):
 * once its work is done, the process exits, with the exit code the step set.
 *
 * Why an explicit exit rather than waiting for the event loop to empty: by the time `run()` (or the
 * CLI's `main()`) returns, the result is complete. Outputs, state and exported variables are
 * appended synchronously; the job summary, the snapshot's atomic write, the unstored-secrets file
 * and a refresh token's write-back are all awaited; `process.exitCode` is set. Anything still open
 * after that can only hold the process up: a proxy tunnel whose CONNECT is never answered (the
 * tunnel agent has no timeout, and its socket is out of reach), a DNS lookup still running in the
 * thread pool, or a socket some future change forgets to destroy. Node would wait for each of them,
 * and the runner with it, up to the job's timeout (issue 12).
 *
 * It never cuts off a write in progress: no write of a step is left running when its work returns,
 * and the one output that may still be in flight, the log on stdout and stderr (pipes are
 * asynchronous on macOS runners, a terminal on Windows), is flushed first.
 */
export function endProcess(): void {
  let open = 2;
  const flushed = (): void => {
    open--;
    if (open === 0) process.exit();
  };
  // A write's callback runs once it and every write before it has left the process (or failed:
  // a closed pipe has nothing left to flush).
  process.stdout.write('', flushed);
  process.stderr.write('', flushed);
}
