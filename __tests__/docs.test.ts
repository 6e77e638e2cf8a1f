/**
 * The README stays a front page, every page in docs/ is reachable from it, and no link between
 * them points at a heading that is not there (GitHub's anchor rules). The YAML examples are
 * checked by actionlint in `npm run lint`.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { describe, expect, it } from '@jest/globals';
import { ROOT } from './harness/action.ts';

/** Pages the README links to that other branches write: checked like any other once they exist. */
const WRITTEN_ELSEWHERE = ['docs/media.md', 'docs/releasing.md'];

const pages = ['README.md', ...readdirSync(join(ROOT, 'docs')).map((name) => `docs/${name}`)]
  .filter((path) => path.endsWith('.md'))
  .sort();
const read = (path: string): string => readFileSync(join(ROOT, path), 'utf8');

/** GitHub's heading anchor: lower case, punctuation dropped, spaces as hyphens. */
function slug(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s_-]/gu, '')
    .replace(/\s/g, '-');
}

function anchors(markdown: string): Set<string> {
  const prose = markdown.replace(/```[\s\S]*?```/g, '');
  return new Set([...prose.matchAll(/^#{1,6} (.+)$/gm)].map((match) => slug(match[1] ?? '')));
}

/** Relative links `[text](target)` and reference definitions `[name]: target`, outside code. */
function links(markdown: string): string[] {
  const prose = markdown.replace(/```[\s\S]*?```/g, '');
  const inline = [...prose.matchAll(/\]\(([^)\s]+)\)/g)].map((match) => match[1] ?? '');
  const defined = [...prose.matchAll(/^\[[^\]]+\]: (\S+)$/gm)].map((match) => match[1] ?? '');
  return [...inline, ...defined].filter((target) => !/^[a-z]+:/.test(target));
}

describe('documentation', () => {
  it('keeps the README under 16 000 bytes', () => {
    expect(Buffer.byteLength(read('README.md'))).toBeLessThan(16_000);
  });

  it('links every page in docs/ from the README', () => {
    const linked = new Set(links(read('README.md')).map((target) => target.split('#')[0]));
    const missing = pages.filter((page) => page.startsWith('docs/') && !linked.has(page));
    expect(missing).toEqual([]);
  });

  it('links only to files and headings that exist', () => {
    const broken: string[] = [];
    for (const page of pages) {
      for (const target of links(read(page))) {
        const [file = '', anchor] = target.split('#');
        const path = file ? relative(ROOT, join(ROOT, dirname(page), file)) : page;
        if (!existsSync(join(ROOT, path))) {
          if (WRITTEN_ELSEWHERE.includes(path)) continue;
          broken.push(`${page}: ${target} (no such file)`);
        } else if (anchor && path.endsWith('.md') && !anchors(read(path)).has(anchor)) {
          broken.push(`${page}: ${target} (no such heading)`);
        }
      }
    }
    expect(broken).toEqual([]);
  });
});
