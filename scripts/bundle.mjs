// Builds dist/<entry>/index.js for each entry point: tsc emits ESM to .build/ (ncc's own
// TypeScript loader treats .ts as CommonJS and cannot import ESM-only @actions packages), then
// ncc bundles each entry. Deterministic: CI rebuilds and compares with the committed dist/.
import { execFileSync } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';

const entries = ['main', 'post', 'snapshot', 'cli'];
rmSync('.build', { recursive: true, force: true });
execFileSync('node_modules/.bin/tsc', ['-p', 'tsconfig.build.json'], { stdio: 'inherit' });
for (const entry of entries) {
  const source = `.build/${entry}.js`;
  if (!existsSync(source)) continue;
  const out = `dist/${entry}`;
  rmSync(out, { recursive: true, force: true });
  execFileSync(
    'node_modules/.bin/ncc',
    ['build', source, '-o', out, '--minify', '--no-cache', '--quiet', '--target', 'es2022'],
    { stdio: 'inherit' },
  );
}
