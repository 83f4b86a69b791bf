import * as fs from 'fs';
import * as path from 'path';
import * as ts from 'typescript';
import { REPO } from '../../helpers/build';

/*
 * The layers import one way (docs/ARCHITECTURE.md); a cycle between two modules means neither can
 * be understood, tested or replaced without the other. Every import counts: `import type` (a type
 * shared both ways belongs in a module of its own), lazy `require()` and `typeof import()` (they
 * still make the two modules one unit, only loaded later).
 */
const LAYERS = ['cli', 'config', 'constructs', 'stacks', 'runtime'];

function sources(): string[] {
  const files = [path.join(REPO, 'main.ts')];
  const walk = (dir: string): void => {
    for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) walk(full);
      else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts')) files.push(full);
    }
  };
  for (const layer of LAYERS) walk(path.join(REPO, layer));
  return files;
}

/** Every module specifier `file` imports, by any kind of import. */
function specifiers(text: string): string[] {
  return ts.preProcessFile(text, true, true).importedFiles.map((f) => f.fileName);
}

/** The project's own modules `file` imports, by any kind of import. */
function localImports(file: string, text: string = fs.readFileSync(file, 'utf8')): string[] {
  const found = specifiers(text).filter((s) => s.startsWith('.'));
  const resolved: string[] = [];
  for (const specifier of found) {
    const base = path.resolve(path.dirname(file), specifier);
    const target = [`${base}.ts`, path.join(base, 'index.ts')].find((f) => fs.existsSync(f));
    // A specifier that names a non-TypeScript file (package.json, a template) cannot close a cycle.
    if (target) resolved.push(target);
  }
  return resolved;
}

/** Every cycle's strongly connected component (Tarjan), each as its files, repo-relative and sorted. */
function importCycles(graph: ReadonlyMap<string, readonly string[]>): string[][] {
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const onStack = new Set<string>();
  const stack: string[] = [];
  const cycles: string[][] = [];
  let next = 0;
  const visit = (v: string): void => {
    index.set(v, next);
    low.set(v, next++);
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) !== index.get(v)) return;
    const component: string[] = [];
    let w: string;
    do {
      w = stack.pop()!;
      onStack.delete(w);
      component.push(w);
    } while (w !== v);
    if (component.length > 1 || (graph.get(v) ?? []).includes(v)) cycles.push(component.map((f) => path.relative(REPO, f)).sort());
  };
  for (const v of graph.keys()) if (!index.has(v)) visit(v);
  return cycles;
}

/**
 * Which layers each may import (docs/ARCHITECTURE.md): data flows one way, config -> constructs ->
 * stacks -> main and cli. runtime/ ships alone in the backup agent's image, so it imports no other layer,
 * and holds the rules the agent and the config share (cron, bucket names).
 */
const MAY_IMPORT: Record<string, readonly string[]> = {
  runtime: ['runtime'],
  config: ['config', 'runtime'],
  constructs: ['constructs', 'config', 'runtime'],
  stacks: ['stacks', 'constructs', 'config', 'runtime'],
  'main.ts': ['config', 'stacks'],
  // The operator CLI: nothing imports it, and it reaches constructs only through stacks' synthesis.
  cli: ['cli', 'config', 'stacks', 'runtime'],
};

const layerOf = (file: string) => path.relative(REPO, file).split(path.sep)[0];

describe('layers', () => {
  it('import only the layers below them', () => {
    const wrong = sources().flatMap((file) =>
      localImports(file)
        .filter((target) => !MAY_IMPORT[layerOf(file)].includes(layerOf(target)))
        .map((target) => `${path.relative(REPO, file)} imports ${path.relative(REPO, target)}`),
    );
    expect(wrong).toEqual([]);
  });

  it('reach cdktf\'s internals (cdktf/lib/...) through stacks/cdktf-seam.ts only', () => {
    const deep = sources().filter((file) => specifiers(fs.readFileSync(file, 'utf8')).some((s) => s.startsWith('cdktf/lib/')));
    expect(deep.map((f) => path.relative(REPO, f))).toEqual(['stacks/cdktf-seam.ts']);
  });

  it('config and runtime load no cdktf and no constructs', () => {
    const framework = sources()
      .filter((file) => ['config', 'runtime'].includes(layerOf(file)))
      .filter((file) => specifiers(fs.readFileSync(file, 'utf8')).some((s) => /^(cdktf|constructs|@cdktf\/)/.test(s)));
    expect(framework).toEqual([]);
  });
});

describe('imports among the project\'s own modules', () => {
  it('finds type-only imports, lazy requires and import types', () => {
    const file = path.join(REPO, 'stacks', 'synth.ts');
    const text = [
      "import type { A } from '../config/model';",
      "const b = require('./environment-stack') as typeof import('./backup-image');",
    ].join('\n');
    expect(localImports(file, text).map((f) => path.relative(REPO, f)).sort()).toEqual(['config/model.ts', 'stacks/backup-image.ts', 'stacks/environment-stack.ts']);
  });

  it('reports a cycle of two modules and leaves a chain alone', () => {
    expect(importCycles(new Map([[path.join(REPO, 'a.ts'), [path.join(REPO, 'b.ts')]], [path.join(REPO, 'b.ts'), [path.join(REPO, 'a.ts')]]]))).toEqual([['a.ts', 'b.ts']]);
    expect(importCycles(new Map([[path.join(REPO, 'a.ts'), [path.join(REPO, 'b.ts')]], [path.join(REPO, 'b.ts'), []]]))).toEqual([]);
  });

  it(`of main.ts, ${LAYERS.join('/, ')}/ form no cycle`, () => {
    const graph = new Map(sources().map((file) => [file, localImports(file)] as const));
    expect(graph.size).toBeGreaterThan(50);
    expect(importCycles(graph)).toEqual([]);
  });
});
