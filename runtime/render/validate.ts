/**
 * Checks on renderer options. Config validation reports user mistakes with file:line:col; these
 * guard the renderers themselves, so that a value that would break a config file or a script
 * (a quote, a space, a newline) fails loudly at synth instead of inside a container.
 */

function fail(renderer: string, field: string, expected: string, value: unknown): never {
  throw new Error(`${renderer}: ${field} must be ${expected} (value: ${JSON.stringify(value)})`);
}

export function checkPort(renderer: string, field: string, value: number): void {
  if (!Number.isInteger(value) || value < 1 || value > 65535) fail(renderer, field, 'an integer port in 1..65535', value);
}

export function checkInteger(renderer: string, field: string, value: number, min: number): void {
  if (!Number.isInteger(value) || value < min) fail(renderer, field, `an integer >= ${min}`, value);
}

/** Lower-case SQL-safe names: no quoting rules to get wrong in SQL, ini files or auth files. */
export function checkIdentifier(renderer: string, field: string, value: string): void {
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(value)) {
    fail(renderer, field, 'a lower-case identifier of at most 63 characters ([a-z_][a-z0-9_]*)', value);
  }
}

/** Host names and addresses as they appear on a Docker network or in tests. */
export function checkHost(renderer: string, field: string, value: string): void {
  if (!/^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$/.test(value)) fail(renderer, field, 'a host name or IPv4 address', value);
}

/** Absolute and free of whitespace and quotes, so it needs no escaping in any config format. */
export function checkPath(renderer: string, field: string, value: string): void {
  if (!/^\/[A-Za-z0-9._\/-]*$/.test(value)) fail(renderer, field, 'an absolute path of [A-Za-z0-9._/-]', value);
}

export function checkNonEmpty(renderer: string, field: string, value: readonly unknown[]): void {
  if (value.length === 0) fail(renderer, field, 'a non-empty list', value);
  if (new Set(value).size !== value.length) fail(renderer, field, 'a list without duplicates', value);
}

/** The fields of `T` whose values are of type `V`. */
type FieldsOf<T, V> = { [K in keyof T]-?: T[K] extends V ? K : never }[keyof T] & string;

/** A renderer's rules for its options: each field listed under the check it must pass. */
export interface OptionRules<T> {
  readonly ports?: readonly FieldsOf<T, number>[];
  readonly hosts?: readonly FieldsOf<T, string>[];
  readonly identifiers?: readonly FieldsOf<T, string>[];
  /** Lists of identifiers: non-empty, without duplicates, each one an identifier. */
  readonly identifierLists?: readonly FieldsOf<T, readonly string[]>[];
  readonly paths?: readonly FieldsOf<T, string>[];
  /** Integer fields, each with the least value it may take. */
  readonly atLeast?: { readonly [K in FieldsOf<T, number>]?: number };
}

/** Checks `options` against `rules`; the first field that breaks one throws, naming the renderer, the field and the value. */
export function checkOptions<T>(renderer: string, options: T, rules: OptionRules<T>): void {
  for (const field of rules.ports ?? []) checkPort(renderer, field, options[field] as number);
  for (const field of rules.hosts ?? []) checkHost(renderer, field, options[field] as string);
  for (const field of rules.identifierLists ?? []) {
    const list = options[field] as readonly string[];
    checkNonEmpty(renderer, field, list);
    list.forEach((value, i) => checkIdentifier(renderer, `${field}[${i}]`, value));
  }
  for (const field of rules.identifiers ?? []) checkIdentifier(renderer, field, options[field] as string);
  for (const [field, min] of Object.entries(rules.atLeast ?? {}) as [FieldsOf<T, number>, number][]) checkInteger(renderer, field, options[field] as number, min);
  for (const field of rules.paths ?? []) checkPath(renderer, field, options[field] as string);
}
