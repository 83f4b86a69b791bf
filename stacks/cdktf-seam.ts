import type { App, ISynthesisSession, Manifest, StackManifest, StackAnnotation, TerraformElement, TerraformStack } from 'cdktf';
import type { IConstruct } from 'constructs';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

/*
 * The seam between Tenantry and cdktf's internals: every deep import of cdktf (`cdktf/lib/...`),
 * every private member Tenantry touches and every byte-layout cdktf does not promise live here,
 * and only here. They are used only with the cdktf version they were written against
 * (KNOWN_CDKTF_VERSION); with any other (a patched cdktf, or its fork cdktn, whose tokens capture
 * their stacks inside their own module and which replaced json-stable-stringify), synthesis takes
 * cdktf's own public path (prepareStack, the stack's StackSynthesizer) and says so once.
 *
 * What the fast path changes, and why no byte of output changes (figures: docs/benchmarks.md):
 *
 * 1. Token stack traces off (configureTokenStackTraces). cdktf records a full stack trace for
 *    every token it creates; they only appear in cdktf's own "Object creation stack" errors.
 *    TENANTRY_CDKTF_STACK_TRACES=1 turns them back on for debugging.
 * 2. No preparing resolve pass. Each environment is synthesized in an App of its own, where a
 *    cross-stack reference (all that pass looks for) cannot exist; the backend check still runs.
 * 3. cdktf 0.21.0's StackSynthesizer.synthesize (JSON branch) and TerraformStack.toTerraform,
 *    step for step (synthesizeStack), except that:
 *    - each element's fragment is resolved by resolvePlainFast: literal data is copied as it is and
 *      only what holds a token goes through cdktf's resolve (which otherwise builds a resolution
 *      context for every key and value of a document of millions of them);
 *    - the second resolve of the whole merged document (a full copy that changes nothing, as no
 *      token survives resolution) runs only on the "//" metadata and on stack-level overrides;
 *    - the text json-stable-stringify would build in memory (several times the output size at
 *      its peak) is streamed to the file by writeStableJson, in the same layout.
 *
 * TENANTRY_SYNTH_CDKTF puts cdktf's own code back step by step (useCdktfStep); TENANTRY_SYNTH_VERIFY=1
 * also runs cdktf's own StackSynthesizer into a scratch folder and fails if a single byte differs.
 */

/** The cdktf version whose internals this module was written against and checked on. */
export const KNOWN_CDKTF_VERSION = '0.21.0';

/** Set to 1 to record cdktf's per-token creation stack traces (slow; for debugging cdktf errors). */
export const STACK_TRACES_ENV = 'TENANTRY_CDKTF_STACK_TRACES';

/**
 * Escape hatch and benchmark switch: run cdktf's own code for these steps (comma separated):
 * `prepare` (the preparing resolve pass), `resolve` (cdktf's resolve on every element's
 * plain data too), `synthesizer` (cdktf's StackSynthesizer, which implies `resolve`), or `all`.
 * The output must not change; if it does, that is a bug in Tenantry's shortcut.
 */
export const CDKTF_STEPS_ENV = 'TENANTRY_SYNTH_CDKTF';

/** Set to 1 to check every stack the fast path writes against cdktf's own synthesis of it (slow; a safety net). */
export const VERIFY_ENV = 'TENANTRY_SYNTH_VERIFY';

/** cdktf's fork cdktn reads this instead of letting its tokens' stack traces be switched off from outside. */
const CDKTN_CREATION_STACK_ENV = 'CDKTN_DISABLE_CREATION_STACK';

let installed: string | undefined;
/** The installed cdktf's version, from its package.json (which loads none of cdktf). */
export function cdktfVersion(): string {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return (installed ??= (require('cdktf/package.json') as { version: string }).version);
}

/** Whether Tenantry's fast path may run with this cdktf version. */
export function knowsCdktf(version: string = cdktfVersion()): boolean {
  return version === KNOWN_CDKTF_VERSION;
}

/** What a run on an unknown cdktf version prints, once. */
export function fallbackNotice(version: string): string {
  return `tenantry: cdktf ${version} is installed and Tenantry's fast synthesis knows the internals of cdktf ${KNOWN_CDKTF_VERSION} only; synthesizing with cdktf's own synthesizer (the same output, slower).`;
}

/** Whether `step` should run cdktf's own code (TENANTRY_SYNTH_CDKTF). */
export function useCdktfStep(step: 'prepare' | 'synthesizer' | 'resolve', env: NodeJS.ProcessEnv = process.env): boolean {
  const steps = (env[CDKTF_STEPS_ENV] ?? '').split(',').map((s) => s.trim());
  return steps.includes('all') || steps.includes(step);
}

const DISABLED_TRACE: readonly string[] = Object.freeze([`(token creation stack traces are off; set ${STACK_TRACES_ENV}=1 to record them)`]);

/**
 * Switches cdktf's per-token stack traces off unless TENANTRY_CDKTF_STACK_TRACES=1. On the known
 * version, cdktf's token classes call `captureStackTrace` through the module object of
 * `cdktf/lib/tokens/private/stack-trace` (`(0, stack_trace_1.captureStackTrace)()`), so replacing
 * the export replaces it for every token created afterwards. On any other version only cdktn's
 * public switch is set (threads started later inherit it). Call it before any construct exists,
 * in every thread that synthesizes (each worker has its own module instances). Returns whether
 * traces stay on.
 */
export function configureTokenStackTraces(env: NodeJS.ProcessEnv = process.env, fast: boolean = knowsCdktf()): boolean {
  const enabled = env[STACK_TRACES_ENV] === '1' || env[STACK_TRACES_ENV] === 'true';
  if (!fast) {
    if (!enabled) process.env[CDKTN_CREATION_STACK_ENV] ??= '1';
    return enabled;
  }
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const stackTrace = require('cdktf/lib/tokens/private/stack-trace') as { captureStackTrace: (below?: unknown) => readonly string[] };
  const original = (stackTrace as { __tenantryOriginal?: typeof stackTrace.captureStackTrace }).__tenantryOriginal ?? stackTrace.captureStackTrace;
  Object.defineProperty(stackTrace, '__tenantryOriginal', { value: original, configurable: true });
  stackTrace.captureStackTrace = enabled ? original : () => DISABLED_TRACE;
  return enabled;
}

/**
 * cdktf's Manifest class. The main thread of a parallel run only writes the manifest: on the known
 * version it loads that one module instead of all of cdktf (~0.1 s).
 */
function manifestClass(version: string): typeof Manifest {
  /* eslint-disable @typescript-eslint/no-require-imports */
  if (knowsCdktf(version)) return (require('cdktf/lib/manifest') as typeof import('cdktf')).Manifest;
  return (require('cdktf') as typeof import('cdktf')).Manifest;
  /* eslint-enable @typescript-eslint/no-require-imports */
}

/** cdktf's folder of stack directories under an output directory ("stacks"). */
export function stacksFolder(version: string = cdktfVersion()): string {
  return manifestClass(version).stacksFolder;
}

/** Writes the manifest `App.synth()` would write for an App holding all these stacks, with cdktf's own Manifest class. */
export function writeManifest(outdir: string, stacks: readonly StackManifest[], version: string = cdktfVersion()): void {
  const manifest = new (manifestClass(version))(cdktfVersion(), outdir, false);
  for (const stack of [...stacks].sort((a, b) => a.name.localeCompare(b.name))) (manifest.stacks as Record<string, StackManifest>)[stack.name] = stack;
  manifest.writeToFile();
}

/**
 * An App holding one stack, synthesized as `app.synth()` would, minus the manifest file (the
 * caller writes one for all environments): prepareStack, the stack's synthesizer, the App's own
 * validations. `fast` (a known cdktf version) takes the shortcuts above; otherwise it is cdktf's
 * code throughout.
 */
export function synthesizeSingleStackApp(app: App, stack: TerraformStack, fast: boolean): StackManifest {
  if (!fast || useCdktfStep('prepare')) stack.prepareStack();
  else stack.ensureBackendExists();
  const session: ISynthesisSession = { outdir: app.outdir, skipValidation: false, manifest: app.manifest };
  if (fast && fastPathApplies(stack)) synthesizeStack(stack, session);
  else stack.synthesizer.synthesize(session);
  const appErrors = app.node.validate();
  if (appErrors.length > 0) throw new Error(`App validation failed with the following errors:\n  ${appErrors.join('\n  ')}`);
  return app.manifest.stacks[stack.node.id];
}

/** Error annotations of the App's constructs, as construct path and message. */
export function errorAnnotations(app: App): { readonly path: string; readonly message: string }[] {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { AnnotationMetadataEntryType } = require('cdktf') as typeof import('cdktf');
  return app.node.findAll().flatMap((node) => node.node.metadata.filter((m) => m.type === AnnotationMetadataEntryType.ERROR).map((m) => ({ path: node.node.path, message: String(m.data) })));
}

// ------------------------------------------------------------------ cdktf 0.21.0's internals

// Loaded on first use, and kept: only the fast path, which runs on the known version only, needs
// them, and resolve() runs for every token of a stack.
let lib: typeof import('cdktf') | undefined;
let deep: { invokeAspects(root: IConstruct): void; deepMerge(target: unknown, ...sources: unknown[]): unknown } | undefined;
/* eslint-disable @typescript-eslint/no-require-imports */
const cdktf = () => (lib ??= require('cdktf') as typeof import('cdktf'));
const internals = () =>
  (deep ??= {
    invokeAspects: (require('cdktf/lib/synthesize/synthesizer') as { invokeAspects(root: IConstruct): void }).invokeAspects,
    deepMerge: (require('cdktf/lib/util') as { deepMerge(target: unknown, ...sources: unknown[]): unknown }).deepMerge,
  });
/* eslint-enable @typescript-eslint/no-require-imports */

const CUSTOM_SYNTHESIS = Symbol.for('cdktf/customSynthesis');
let tokenResolver: import('cdktf').ITokenResolver | undefined;

function fastPathApplies(stack: TerraformStack): boolean {
  const hcl = process.env.SYNTH_HCL_OUTPUT === 'true' || process.env.SYNTH_HCL_OUTPUT === '1';
  return !hcl && !stack.hasResourceMove() && !useCdktfStep('synthesizer');
}

/** Synthesizes one stack into `session.outdir` and records it in `session.manifest`, like `stack.synthesizer.synthesize(session)`. */
function synthesizeStack(stack: TerraformStack, session: ISynthesisSession): void {
  const { AnnotationMetadataEntryType } = cdktf();
  const { invokeAspects } = internals();
  invokeAspects(stack);
  if (!session.skipValidation) stack.runAllValidations();

  const stackManifest = session.manifest.forStack(stack);
  const workingDirectory = path.join(session.outdir, stackManifest.workingDirectory);
  fs.mkdirSync(workingDirectory, { recursive: true });

  // Custom synthesis of child nodes (leaves first): assets, for example.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { ConstructOrder } = require('constructs') as typeof import('constructs');
  for (const node of stack.node.findAll(ConstructOrder.POSTORDER)) {
    (node as unknown as Record<symbol, { onSynthesize(s: ISynthesisSession): void } | undefined>)[CUSTOM_SYNTHESIS]?.onSynthesize(session);
  }

  const levels: readonly string[] = [AnnotationMetadataEntryType.INFO, AnnotationMetadataEntryType.WARN, AnnotationMetadataEntryType.ERROR];
  const annotations: StackAnnotation[] = stack.node.findAll().flatMap((node) =>
    node.node.metadata
      .filter((m) => levels.includes(m.type))
      .map((m) => ({ constructPath: node.node.path, level: m.type as import('cdktf').AnnotationMetadataEntryType, message: m.data, stacktrace: m.trace })),
  );
  (stackManifest as { annotations: StackAnnotation[] }).annotations = annotations;
  const errors = annotations.filter((a) => a.level === AnnotationMetadataEntryType.ERROR);
  if (errors.length > 0 && !continueOnErrorAnnotations()) {
    throw new Error(
      `Encountered Annotations with level "ERROR":\n${errors.map((a) => `[${a.constructPath}] ${a.message}`).join('\n')}\n\nEither fix the issues above, or set the environment variable CDKTF_CONTINUE_SYNTH_ON_ERROR_ANNOTATIONS to ignore these annotations.`,
    );
  }

  const file = path.join(session.outdir, stackManifest.synthesizedStackPath);
  writeStableJson(file, stackDocument(stack));
  if (process.env[VERIFY_ENV] === '1') verifyAgainstCdktf(stack, file);
}

function continueOnErrorAnnotations(): boolean {
  return process.env.CDKTF_CONTINUE_SYNTH_ON_ERROR_ANNOTATIONS !== undefined;
}

function resolve(stack: TerraformStack, value: unknown): unknown {
  const { DefaultTokenResolver, StringConcat, Tokenization } = cdktf();
  tokenResolver ??= new DefaultTokenResolver(new StringConcat());
  return Tokenization.resolve(value, { scope: stack, preparing: false, resolver: tokenResolver });
}

// What cdktf's resolve treats specially (tokens/private/encoding.js, tokens/token.js): strings
// holding a token marker (`${TfToken[`, `#{TfToken[`, `&{TfToken[`) or a stringified number
// token (NUMBER_TOKEN_REGEX), numbers encoding a token (a tagged double, |x| > 1e288), and the
// map-token placeholder values, which it rejects with an error.
const NUMBER_TOKEN_REGEX = /[-|\d|.\+]+(e[-|\d|.|e|E|\+]+)/;
const MAP_TOKEN_PLACEHOLDERS: ReadonlySet<unknown> = new Set(['String Map Token Value', 'Any Map Token Value', -123456789]);
const plainString = (s: string) => !s.includes('TfToken[') && !NUMBER_TOKEN_REGEX.test(s) && !MAP_TOKEN_PLACEHOLDERS.has(s);
const plainNumber = (n: number) => (Number.isNaN(n) || Math.abs(n) < 1e280) && !MAP_TOKEN_PLACEHOLDERS.has(n);

/**
 * cdktf's resolve, walking plain data itself. On literal strings, numbers, booleans, null, plain
 * arrays and plain objects, cdktf's resolve is the identity except that it drops undefined members
 * (it allocates a resolution context for every key and value on the way, which is most of the cost
 * of synthesis). Everything else (a token object, a string or number carrying a token, an array or
 * object with a token inside its keys or list elements, a class instance, a function) is handed to
 * cdktf's resolve, whole, as the subtree it is. The only visible difference is in cdktf's own
 * error messages about such a subtree: its path starts at the subtree.
 */
function resolvePlainFast(stack: TerraformStack, value: unknown): unknown {
  const walk = (v: unknown): unknown => {
    switch (typeof v) {
      case 'string':
        return plainString(v) ? v : resolve(stack, v);
      case 'number':
        return plainNumber(v) ? v : resolve(stack, v);
      case 'boolean':
      case 'undefined':
        return v;
      case 'object':
        break;
      default:
        return resolve(stack, v);
    }
    if (v === null) return null;
    if (Array.isArray(v)) {
      for (const x of v) {
        if ((typeof x === 'string' && !plainString(x)) || (typeof x === 'number' && !plainNumber(x))) return resolve(stack, v);
      }
      const out: unknown[] = [];
      for (const x of v) {
        const r = walk(x);
        if (r !== undefined) out.push(r);
      }
      return out;
    }
    const proto = Object.getPrototypeOf(v) as unknown;
    if ((proto !== Object.prototype && proto !== null) || typeof (v as { resolve?: unknown }).resolve === 'function') return resolve(stack, v);
    const keys = Object.keys(v);
    for (const key of keys) if (!plainString(key)) return resolve(stack, v);
    const out: Record<string, unknown> = {};
    for (const key of keys) {
      const r = walk((v as Record<string, unknown>)[key]);
      if (r !== undefined) out[key] = r;
    }
    return out;
  };
  return walk(value);
}

/** The elements of a stack, not descending into nested stacks (cdktf's private `terraformElements`). */
function terraformElements(node: IConstruct, into: TerraformElement[] = []): TerraformElement[] {
  const { TerraformElement, TerraformStack } = cdktf();
  if (TerraformElement.isTerraformElement(node)) into.push(node);
  for (const child of node.node.children) {
    if (TerraformStack.isStack(child)) continue;
    terraformElements(child, into);
  }
  return into;
}

/** TerraformStack.toTerraform without the second resolve of already-resolved fragments. */
function stackDocument(stack: TerraformStack): Record<string, unknown> {
  const { TerraformOutput } = cdktf();
  const { deepMerge } = internals();
  const rawOverrides = (stack as unknown as { rawOverrides: Record<string, unknown> }).rawOverrides;
  const tf: Record<string, unknown> = {};
  const metadata: Record<string, unknown> = {
    version: (stack as unknown as { cdktfVersion: string }).cdktfVersion,
    stackName: stack.node.id,
    backend: 'local', // overwritten by backend implementations if used
    cloud: undefined, // overwritten by cloud and remote backend implementations
    ...(Object.keys(rawOverrides).length > 0 ? { overrides: { stack: Object.keys(rawOverrides) } } : {}),
  };
  const elements = terraformElements(stack);
  for (const meta of elements.map((e) => resolve(stack, e.toMetadata()))) deepMerge(metadata, meta);
  const outputs: Record<string, unknown> = {};
  for (const item of elements) {
    if (!TerraformOutput.isTerraformOutput(item)) continue;
    deepMerge(
      outputs,
      item.node.path.split('/').reduceRight<Record<string, unknown>>((inner, part) => (Object.keys(inner).length === 0 ? { [part]: item.friendlyUniqueId } : { [part]: inner }), {}),
    );
  }
  tf['//'] = { metadata, outputs };
  const resolveFragment = useCdktfStep('resolve') ? resolve : resolvePlainFast;
  for (const element of elements) deepMerge(tf, resolveFragment(stack, element.toTerraform()));
  deepMerge(tf, rawOverrides);
  // What the final resolve of cdktf's toTerraform still has to do: the metadata, and overrides.
  for (const key of ['//', ...Object.keys(rawOverrides)]) {
    if (key in tf) tf[key] = resolve(stack, tf[key]);
  }
  return tf;
}

/**
 * Writes `value` exactly as `json-stable-stringify(value, { space: 2 })` would after cdktf's
 * resolve: keys sorted by UTF-16 code units, undefined members left out, an empty array or object
 * printed as an opening bracket, a newline with the indent, and the closing bracket.
 */
/** Text gathered before each write: few system calls, without holding a large stack's JSON as one string. */
const WRITE_CHUNK_CHARS = 1 << 20;

/** Deeper than any stack Tenantry writes (indent is two spaces a level): only a cycle gets there. */
const MAX_INDENT = 2000;

function writeStableJson(file: string, value: unknown): void {
  const fd = fs.openSync(file, 'w');
  try {
    let parts: string[] = [];
    let size = 0;
    const emit = (s: string) => {
      parts.push(s);
      size += s.length;
      if (size >= WRITE_CHUNK_CHARS) flush();
    };
    const flush = () => {
      fs.writeSync(fd, parts.join(''));
      parts = [];
      size = 0;
    };
    const visit = (node: unknown, indent: string): void => {
      if (typeof node !== 'object' || node === null) {
        emit(JSON.stringify(node));
        return;
      }
      if (indent.length > MAX_INDENT) throw new Error('writeStableJson: nesting too deep (a cycle?)');
      const inner = `${indent}  `;
      if (Array.isArray(node)) {
        emit('[');
        let first = true;
        for (const item of node) {
          const v = jsonValue(item);
          if (v === undefined) continue;
          emit(first ? `\n${inner}` : `,\n${inner}`);
          first = false;
          visit(v, inner);
        }
        emit(`\n${indent}]`);
        return;
      }
      emit('{');
      let first = true;
      for (const key of Object.keys(node).sort()) {
        const v = jsonValue((node as Record<string, unknown>)[key]);
        if (v === undefined) continue;
        emit(`${first ? '' : ','}\n${inner}${JSON.stringify(key)}: `);
        first = false;
        visit(v, inner);
      }
      emit(`\n${indent}}`);
    };
    const top = jsonValue(value);
    if (top !== undefined) visit(top, '');
    flush();
  } finally {
    fs.closeSync(fd);
  }
}

/** The value JSON would print (after toJSON), or undefined for what JSON leaves out. */
function jsonValue(v: unknown): unknown {
  if (v !== null && typeof v === 'object' && typeof (v as { toJSON?: unknown }).toJSON === 'function') v = (v as { toJSON(): unknown }).toJSON();
  if (v === undefined || typeof v === 'function' || typeof v === 'symbol') return undefined;
  return v;
}

/**
 * Runs cdktf's own StackSynthesizer on the same stack into a scratch folder and compares the two
 * files. Whatever cdktf writes its JSON with (json-stable-stringify in 0.21.0) is its own business:
 * Tenantry never loads it.
 */
function verifyAgainstCdktf(stack: TerraformStack, file: string): void {
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'tenantry-verify-'));
  try {
    const manifest = new (cdktf().Manifest)(cdktfVersion(), scratch, false);
    // Aspects run a second time: Tenantry's only add error annotations, and a stack with errors never gets here.
    stack.synthesizer.synthesize({ outdir: scratch, skipValidation: true, manifest });
    const expected = fs.readFileSync(path.join(scratch, manifest.forStack(stack).synthesizedStackPath), 'utf8');
    const actual = fs.readFileSync(file, 'utf8');
    if (actual === expected) return;
    let at = 0;
    while (at < actual.length && actual[at] === expected[at]) at++;
    throw new Error(`${VERIFY_ENV}: ${file} differs from cdktf's own synthesis at character ${at}: ${JSON.stringify(actual.slice(at, at + 80))} vs ${JSON.stringify(expected.slice(at, at + 80))}`);
  } finally {
    fs.rmSync(scratch, { recursive: true, force: true });
  }
}
