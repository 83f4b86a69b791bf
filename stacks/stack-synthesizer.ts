import {
  AnnotationMetadataEntryType,
  DefaultTokenResolver,
  ISynthesisSession,
  StackAnnotation,
  StringConcat,
  TerraformElement,
  TerraformOutput,
  TerraformStack,
  Tokenization,
} from 'cdktf';
import { invokeAspects } from 'cdktf/lib/synthesize/synthesizer';
import { deepMerge } from 'cdktf/lib/util';
import { ConstructOrder, IConstruct } from 'constructs';
import * as fs from 'fs';
import * as path from 'path';
import { useCdktfStep } from './synth';

/*
 * One stack to cdk.tf.json: cdktf 0.21.0's StackSynthesizer.synthesize (JSON branch) and
 * TerraformStack.toTerraform, step for step, with three differences that change no byte of output:
 *
 * - Each element's fragment is resolved by resolvePlainFast: literal data is copied as it is and
 *   only what holds a token goes through cdktf's resolve (which otherwise builds a resolution
 *   context for every key and every value of a document of millions of them).
 * - toTerraform resolves every element's fragment, merges them, and then resolves the whole merged
 *   document again. The fragments are already resolved (no token survives resolution), so the
 *   second pass is a full copy of the document that changes nothing. Here it runs only where
 *   something unresolved can still be: the "//" metadata and whatever the stack-level overrides
 *   (`stack.addOverride`) touched.
 * - json-stable-stringify builds the whole text (tens of MB for a large environment) from arrays
 *   of partial strings, which peaks at several times the output size. Here the same text (sorted
 *   keys, two-space indent, cdktf's layout of empty arrays and objects) is streamed to the file.
 *
 * The fast path is used only with the cdktf version it was written against (0.21.0) and JSON
 * output; anything else (and TENANTRY_SYNTH_CDKTF=synthesizer) goes through cdktf's own
 * synthesizer, and TENANTRY_SYNTH_CDKTF=resolve keeps cdktf's resolve for the fragments. TENANTRY_SYNTH_VERIFY=1 also runs
 * cdktf's own toTerraform + json-stable-stringify and fails if a single byte differs.
 */

export const VERIFY_ENV = 'TENANTRY_SYNTH_VERIFY';
const FAST_PATH_CDKTF_VERSION = '0.21.0';
const CUSTOM_SYNTHESIS = Symbol.for('cdktf/customSynthesis');
const TOKEN_RESOLVER = new DefaultTokenResolver(new StringConcat());
const ANNOTATION_LEVELS: readonly string[] = [AnnotationMetadataEntryType.INFO, AnnotationMetadataEntryType.WARN, AnnotationMetadataEntryType.ERROR];

/** Synthesizes one stack into `session.outdir` and records it in `session.manifest`, like `stack.synthesizer.synthesize(session)`. */
export function synthesizeStack(stack: TerraformStack, session: ISynthesisSession): void {
  if (!fastPathApplies(stack)) {
    stack.synthesizer.synthesize(session);
    return;
  }
  invokeAspects(stack);
  if (!session.skipValidation) stack.runAllValidations();

  const stackManifest = session.manifest.forStack(stack);
  const workingDirectory = path.join(session.outdir, stackManifest.workingDirectory);
  fs.mkdirSync(workingDirectory, { recursive: true });

  // Custom synthesis of child nodes (leaves first): assets, for example.
  for (const node of stack.node.findAll(ConstructOrder.POSTORDER)) {
    (node as unknown as Record<symbol, { onSynthesize(s: ISynthesisSession): void } | undefined>)[CUSTOM_SYNTHESIS]?.onSynthesize(session);
  }

  const annotations: StackAnnotation[] = stack.node.findAll().flatMap((node) =>
    node.node.metadata
      .filter((m) => ANNOTATION_LEVELS.includes(m.type))
      .map((m) => ({ constructPath: node.node.path, level: m.type as AnnotationMetadataEntryType, message: m.data, stacktrace: m.trace })),
  );
  (stackManifest as { annotations: StackAnnotation[] }).annotations = annotations;
  const errors = annotations.filter((a) => a.level === AnnotationMetadataEntryType.ERROR);
  if (errors.length > 0 && !continueOnErrorAnnotations()) {
    throw new Error(
      `Encountered Annotations with level "ERROR":\n${errors.map((a) => `[${a.constructPath}] ${a.message}`).join('\n')}\n\nEither fix the issues above, or set the environment variable CDKTF_CONTINUE_SYNTH_ON_ERROR_ANNOTATIONS to ignore these annotations.`,
    );
  }

  const file = path.join(session.outdir, stackManifest.synthesizedStackPath);
  const document = stackDocument(stack);
  writeStableJson(file, document);
  if (process.env[VERIFY_ENV] === '1') verifyAgainstCdktf(stack, file);
}

function fastPathApplies(stack: TerraformStack): boolean {
  const hcl = process.env.SYNTH_HCL_OUTPUT === 'true' || process.env.SYNTH_HCL_OUTPUT === '1';
  return cdktfVersion() === FAST_PATH_CDKTF_VERSION && !hcl && !stack.hasResourceMove() && !useCdktfStep('synthesizer');
}

function continueOnErrorAnnotations(): boolean {
  return process.env.CDKTF_CONTINUE_SYNTH_ON_ERROR_ANNOTATIONS !== undefined;
}

let version: string | undefined;
function cdktfVersion(): string {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return (version ??= (require('cdktf/package.json') as { version: string }).version);
}

function resolve(stack: TerraformStack, value: unknown): unknown {
  return Tokenization.resolve(value, { scope: stack, preparing: false, resolver: TOKEN_RESOLVER });
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
  if (TerraformElement.isTerraformElement(node)) into.push(node);
  for (const child of node.node.children) {
    if (TerraformStack.isStack(child)) continue;
    terraformElements(child, into);
  }
  return into;
}

/** TerraformStack.toTerraform without the second resolve of already-resolved fragments. */
export function stackDocument(stack: TerraformStack): Record<string, unknown> {
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
export function writeStableJson(file: string, value: unknown): void {
  const fd = fs.openSync(file, 'w');
  try {
    let parts: string[] = [];
    let size = 0;
    const emit = (s: string) => {
      parts.push(s);
      size += s.length;
      if (size >= 1 << 20) flush();
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
      if (indent.length > 2000) throw new Error('writeStableJson: nesting too deep (a cycle?)');
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

function verifyAgainstCdktf(stack: TerraformStack, file: string): void {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const stringify = require(require.resolve('json-stable-stringify', { paths: [path.dirname(require.resolve('cdktf'))] })) as (v: unknown, o: { space: number }) => string;
  const expected = stringify(stack.toTerraform(), { space: 2 });
  const actual = fs.readFileSync(file, 'utf8');
  if (actual !== expected) {
    let at = 0;
    while (at < actual.length && actual[at] === expected[at]) at++;
    throw new Error(`${VERIFY_ENV}: ${file} differs from cdktf's own synthesis at character ${at}: ${JSON.stringify(actual.slice(at, at + 80))} vs ${JSON.stringify(expected.slice(at, at + 80))}`);
  }
}
