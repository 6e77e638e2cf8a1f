/**
 * The two action.yml files as the GitHub Marketplace reads them: a branding icon it accepts, an
 * author, and a description for every input and output (the Marketplace page and the workflow
 * editor show them; an empty one is a hole in the documentation).
 */
import { describe, expect, it } from '@jest/globals';
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { parse } from 'yaml';

const ROOT = resolve(import.meta.dirname, '..');
const ACTIONS = ['action.yml', 'snapshot/action.yml'];

/** The Feather icon set (the npm package of the icons GitHub's branding draws from). */
const FEATHER = new Set(
  Object.keys(
    createRequire(import.meta.url)('feather-icons/dist/icons.json') as Record<string, string>,
  ),
);
/**
 * Feather icons GitHub does not accept in `branding.icon`, from the "branding" section of
 * "Metadata syntax for GitHub Actions" (docs.github.com), quoted in issue 9.
 */
const EXCLUDED = [
  'coffee',
  'columns',
  'divide',
  'divide-circle',
  'divide-square',
  'frown',
  'hexagon',
  'key',
  'meh',
  'mouse-pointer',
  'smile',
  'tool',
  'x-octagon',
];
/** `branding.color` values, from the same section. */
const COLORS = [
  'white',
  'black',
  'yellow',
  'blue',
  'green',
  'orange',
  'red',
  'purple',
  'gray-dark',
];

interface Metadata {
  name?: string;
  description?: string;
  author?: string;
  branding?: { icon?: string; color?: string };
  inputs?: Record<string, { description?: string } | null>;
  outputs?: Record<string, { description?: string } | null>;
  runs?: { using?: string; main?: string; post?: string };
}

const read = (file: string): Metadata => parse(readFileSync(join(ROOT, file), 'utf8')) as Metadata;

it('the Feather list is the real set, and every excluded icon is in it', () => {
  // Guards the check below: an empty or wrong set would let any icon through.
  expect(FEATHER.size).toBeGreaterThan(250);
  for (const icon of EXCLUDED) expect(FEATHER).toContain(icon);
});

describe.each(ACTIONS)('%s', (file) => {
  const metadata = read(file);

  it('has a name, a description and an author', () => {
    expect(metadata.name?.trim()).toBeTruthy();
    expect(metadata.description?.trim()).toBeTruthy();
    expect(metadata.author?.trim()).toBeTruthy();
  });

  it('has a branding icon and colour the Marketplace accepts', () => {
    const icon = metadata.branding?.icon ?? '';
    expect(FEATHER).toContain(icon);
    expect(EXCLUDED).not.toContain(icon);
    expect(COLORS).toContain(metadata.branding?.color);
  });

  it('describes every input and output', () => {
    const undescribed = (entries: Metadata['inputs']) =>
      Object.entries(entries ?? {})
        .filter(([, spec]) => !spec?.description?.trim())
        .map(([name]) => name);
    expect(Object.keys(metadata.inputs ?? {}).length).toBeGreaterThan(0);
    expect(Object.keys(metadata.outputs ?? {}).length).toBeGreaterThan(0);
    expect(undescribed(metadata.inputs)).toEqual([]);
    expect(undescribed(metadata.outputs)).toEqual([]);
  });

  it('runs committed bundles on node24', () => {
    expect(metadata.runs?.using).toBe('node24');
    for (const script of [metadata.runs?.main, metadata.runs?.post]) {
      if (script !== undefined) expect(existsSync(join(ROOT, dirname(file), script))).toBe(true);
    }
  });
});
