// Builds dist/<entry>/index.js for each entry point: tsc emits ESM (ncc's own TypeScript loader
// treats .ts as CommonJS and cannot import the ESM-only @actions packages), then ncc bundles each
// entry. Type errors are the typecheck step's business; this only needs the emitted JavaScript.
// Output is deterministic: CI rebuilds and compares with the committed dist/.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';

const entries = ['main', 'post', 'snapshot', 'cli'];
// The action steps export `run()` (so @github/local-action can import and call them, and must not
// end its process); their bundles start from a launcher that runs the step and then ends the
// process (src/end-process.ts says why). The CLI starts and ends itself.
const launched = new Set(['main', 'post', 'snapshot']);
// Private folders, so two bundles built at once cannot mix their files.
const build = `.build/${process.pid}`;
const staging = resolve(`dist/.staging-${process.pid}`);
const ncc = resolve('node_modules/.bin/ncc');
spawnSync('node_modules/.bin/tsc', ['-p', 'tsconfig.build.json', '--outDir', build], {
  stdio: 'inherit',
});
try {
  for (const entry of entries) {
    if (!existsSync(`${build}/${entry}.js`)) continue;
    let source = `${entry}.js`;
    if (launched.has(entry)) {
      source = `launch-${entry}.js`;
      writeFileSync(
        `${build}/${source}`,
        `import { run } from './${entry}.js';\nimport { endProcess } from './end-process.js';\n` +
          'await run();\nendProcess();\n',
      );
    }
    // Run from inside the build folder: webpack's module ids hash paths relative to it, so the
    // bundle is byte-identical whatever the folder is called.
    execFileSync(
      ncc,
      [
        'build',
        source,
        '-o',
        `${staging}/${entry}`,
        '--minify',
        '--no-cache',
        '--quiet',
        '--target',
        'es2022',
      ],
      { stdio: 'inherit', cwd: build },
    );
  }
  mkdirSync('dist', { recursive: true });
  for (const entry of entries) {
    if (!existsSync(`${staging}/${entry}`)) continue;
    rmSync(`dist/${entry}`, { recursive: true, force: true });
    renameSync(`${staging}/${entry}`, `dist/${entry}`);
  }
} finally {
  rmSync(build, { recursive: true, force: true });
  rmSync(staging, { recursive: true, force: true });
}
