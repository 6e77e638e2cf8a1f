// `npm run bench`: every benchmark, one after another, each printing its own numbers.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';

for (const script of ['startup.mjs', 'snapshot.mjs', 'stalls.mjs', 'media.mjs']) {
  const path = join(import.meta.dirname, script);
  if (!existsSync(path)) continue;
  console.log(`\n== ${script}`);
  const result = spawnSync(process.execPath, [path], { stdio: 'inherit' });
  if (result.status !== 0) process.exit(result.status ?? 1);
}
