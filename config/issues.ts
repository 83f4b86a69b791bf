import { z } from 'zod';
import type { ConfigPath } from './source';

/** Where an issue points: the offending value, or (for an unknown key) the key itself. */
export interface LocatedMessage {
  readonly path: ConfigPath;
  readonly key: boolean;
  readonly message: string;
}

/**
 * Turns zod issues into messages a person can act on: the dotted path of the value, what is
 * wrong with the value actually given, and the fix where there is an obvious one (e.g. the key
 * a typo was meant to be).
 */
export function describeIssues(
  issues: readonly z.core.$ZodIssue[],
  schema: z.ZodType,
  data: unknown,
  /** Maps a path in `data` to the path as the person wrote it (e.g. inside an override). */
  shown: (path: ConfigPath) => ConfigPath = (p) => p,
): LocatedMessage[] {
  return issues.flatMap((issue) => describeIssue(issue, schema, data, (p) => dotted(shown(p))));
}

function describeIssue(issue: z.core.$ZodIssue, schema: z.ZodType, data: unknown, dotted: (path: ConfigPath) => string): LocatedMessage[] {
  const path = issue.path.filter((p): p is string | number => typeof p !== 'symbol');
  const value = valueAt(data, path);
  switch (issue.code) {
    case 'unrecognized_keys':
      return issue.keys.map((key) => {
        const known = knownKeys(schema, path, data);
        const hint = suggest(key, known);
        const choices = known.length > 0 ? ` (known keys: ${known.join(', ')})` : '';
        return {
          path: [...path, key],
          key: true,
          message: `${dotted([...path, key])}: unknown key "${key}"${hint ? `; did you mean "${hint}"?` : choices}`,
        };
      });
    case 'invalid_type':
      // A key that is refused where it would be ignored (z.never with the reason as its message).
      if (issue.expected === 'never') return [{ path, key: true, message: `${dotted(path)}: ${issue.message}` }];
      if (value === undefined) {
        return [{ path: path.slice(0, -1), key: false, message: `${dotted(path)}: missing required key "${String(path[path.length - 1])}"` }];
      }
      if (value === null) {
        return [{ path, key: false, message: `${dotted(path)}: is empty; expected ${typeName(issue.expected)}` }];
      }
      return [{ path, key: false, message: `${dotted(path)}: expected ${typeName(issue.expected)}, got ${describeValue(value)}` }];
    case 'too_small':
    case 'too_big':
      return [{ path, key: false, message: `${dotted(path)}: ${rangeMessage(issue, value)}` }];
    case 'invalid_value':
      return [
        {
          path,
          key: false,
          message: `${dotted(path)}: ${describeValue(value)} is not allowed; use one of: ${issue.values.map((v) => JSON.stringify(v)).join(', ')}`,
        },
      ];
    case 'invalid_union': {
      // A discriminated union whose discriminator is missing or unknown: name the choices.
      // zod puts the discriminator in the path; older shapes point at the union itself.
      const union = path[path.length - 1] === 'kind' ? path.slice(0, -1) : path;
      const kinds = discriminatorChoices(schema, union, data);
      if (kinds) {
        const kind = valueAt(data, [...union, 'kind']);
        const choices = kinds.map((k) => JSON.stringify(k)).join(', ');
        const message = kind === undefined ? `missing required key "kind"; use one of: ${choices}` : `${describeValue(kind)} is not allowed; use one of: ${choices}`;
        return [{ path: kind === undefined ? union : [...union, 'kind'], key: false, message: `${dotted([...union, 'kind'])}: ${message}` }];
      }
      return [{ path, key: false, message: `${dotted(path)}: ${issue.message}` }];
    }
    case 'invalid_key': {
      // A record key that fails its own schema: point at the key and say what keys must look like.
      const key = path[path.length - 1];
      const parent = path.slice(0, -1);
      const inner = issue.issues.map((i) => i.message).find((m) => m.startsWith('must ')) ?? 'is not an allowed key';
      return [{ path, key: true, message: `${dotted(parent)}: ${JSON.stringify(String(key))} ${inner}` }];
    }
    default:
      return [{ path, key: false, message: `${dotted(path)}: ${customMessage(issue.message, value)}` }];
  }
}

function rangeMessage(issue: z.core.$ZodIssueTooSmall | z.core.$ZodIssueTooBig, value: unknown): string {
  const small = issue.code === 'too_small';
  const limit = small ? issue.minimum : issue.maximum;
  const inclusive = issue.inclusive !== false;
  // zod's own messages start "Too "; anything else is the schema's explanation, kept.
  const own = issue.message && !issue.message.startsWith('Too ') ? issue.message : undefined;
  if (issue.origin === 'number' || issue.origin === 'int' || issue.origin === 'bigint') {
    const bound = small ? (inclusive ? 'at least' : 'greater than') : inclusive ? 'at most' : 'less than';
    return `${describeValue(value)} is out of range: ${own ?? `must be ${bound} ${String(limit)}`}`;
  }
  if (issue.origin === 'array') {
    return own ?? (small ? `must have at least ${String(limit)} item(s)` : `must have at most ${String(limit)} item(s)`);
  }
  const length = typeof value === 'string' ? `${describeValue(value)} is ${value.length} characters; ` : '';
  if (own) return `${length}${own}`;
  return `${length}${small ? `must be at least ${String(limit)} characters` : `must be at most ${String(limit)} characters`}`;
}

/** Schema messages are written as predicates ("must be …"); prefix the value so it reads as a sentence. */
function customMessage(message: string, value: unknown): string {
  if (message.startsWith('must ') || message.startsWith('is ')) return `${describeValue(value)} ${message}`;
  return message;
}

/** zod's type names, as a person reading YAML thinks of them. */
function typeName(expected: string): string {
  const names: Record<string, string> = {
    object: 'a map',
    record: 'a map',
    array: 'a list',
    int: 'a whole number',
    number: 'a number',
    string: 'a string',
    boolean: 'true or false',
  };
  return names[expected] ?? expected;
}

export function describeValue(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a map';
  if (typeof value === 'string') return JSON.stringify(value);
  return String(value);
}

export function dotted(path: ConfigPath): string {
  return path.map((p, i) => (typeof p === 'number' ? `[${p}]` : i === 0 ? p : `.${p}`)).join('') || '(file)';
}

export function valueAt(data: unknown, path: ConfigPath): unknown {
  let node = data;
  for (const segment of path) {
    if (node === null || typeof node !== 'object') return undefined;
    node = (node as Record<string | number, unknown>)[segment];
  }
  return node;
}

/** The keys the schema accepts at `path` (following the data into unions and records). */
function knownKeys(schema: z.ZodType, path: ConfigPath, data: unknown): string[] {
  const node = schemaAt(schema, path, data);
  const object = node ? unwrapObject(node, valueAt(data, path)) : undefined;
  return object ? Object.keys(object._zod.def.shape).sort() : [];
}

type AnySchema = z.core.$ZodType;

function unwrap(schema: AnySchema): AnySchema {
  let s = schema;
  for (;;) {
    const def = s._zod.def as { type: string; innerType?: AnySchema; in?: AnySchema };
    if (def.innerType) s = def.innerType;
    else if (def.type === 'pipe' && def.in) s = def.in;
    else return s;
  }
}

function unwrapObject(schema: AnySchema, value: unknown): z.core.$ZodObject | undefined {
  const s = unwrap(schema);
  const def = s._zod.def as { type: string; options?: AnySchema[]; discriminator?: string };
  if (def.type === 'object') return s as z.core.$ZodObject;
  if (def.type === 'union' && def.options) {
    const kind = def.discriminator ? (value as Record<string, unknown> | undefined)?.[def.discriminator] : undefined;
    for (const option of def.options) {
      const object = unwrapObject(option, value);
      const literal = def.discriminator ? object?._zod.def.shape[def.discriminator] : undefined;
      if (object && (!literal || (unwrap(literal)._zod.def as { values?: unknown[] }).values?.includes(kind))) return object;
    }
  }
  return undefined;
}

function schemaAt(schema: AnySchema, path: ConfigPath, data: unknown): AnySchema | undefined {
  let node: AnySchema | undefined = schema;
  for (let i = 0; i < path.length && node; i++) {
    const here = unwrap(node);
    const def = here._zod.def as { type: string; element?: AnySchema; valueType?: AnySchema };
    if (def.type === 'array') node = def.element;
    else if (def.type === 'record') node = def.valueType;
    else node = unwrapObject(here, valueAt(data, path.slice(0, i)))?._zod.def.shape[String(path[i])];
  }
  return node;
}

function discriminatorChoices(schema: AnySchema, path: ConfigPath, data: unknown): string[] | undefined {
  const node = schemaAt(schema, path, data);
  if (!node) return undefined;
  const def = unwrap(node)._zod.def as { type: string; options?: AnySchema[]; discriminator?: string };
  if (def.type !== 'union' || !def.discriminator || !def.options) return undefined;
  return def.options.flatMap((o) => {
    const literal = unwrapObject(o, undefined)?._zod.def.shape[def.discriminator as string];
    return ((literal && (unwrap(literal)._zod.def as { values?: unknown[] }).values) || []).map(String);
  });
}

/** The closest known key to a typo (edit distance at most 2, or a case-insensitive match). */
export function suggest(word: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = 3;
  for (const candidate of candidates) {
    const d = candidate.toLowerCase() === word.toLowerCase() ? 0 : editDistance(word, candidate);
    if (d < bestDistance) {
      best = candidate;
      bestDistance = d;
    }
  }
  return best;
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      current[j] = Math.min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    previous = current;
  }
  return previous[b.length];
}
