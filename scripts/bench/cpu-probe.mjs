// Preloaded with --import into a measured process: at exit it appends the process's own CPU time
// (user + system, microseconds, start-up included) to the file named by CPU_PROBE_FILE.
import { appendFileSync } from 'node:fs';

process.on('exit', () => {
  const { user, system } = process.cpuUsage();
  appendFileSync(process.env.CPU_PROBE_FILE, `${user + system}\n`);
});
