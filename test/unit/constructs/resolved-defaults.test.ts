import * as fs from 'fs';
import * as path from 'path';
import * as ts from 'typescript';
import { MINIO_BUCKET_DEFAULTS, SERVICE_DEFAULTS } from '../../../config/schema';
import { REPO_ROOT } from '../synth/support';

/*
 * The config layer resolves every default of a tenant's services; a construct takes the resolved
 * value and states none of its own. Two things would let a second default creep in, and each is
 * checked against the schema's own list of defaults (SERVICE_DEFAULTS), so a new default is
 * covered the day it is added:
 *   - a props field for a defaulted setting that is optional (the construct would need a fallback);
 *   - anywhere in constructs/, a defaulted setting's name next to its default value
 *     (`poolSize ?? 25`, `{ poolSize = 25 }`, `@default 25` on a `poolSize` prop).
 */

const CONSTRUCTS = path.join(REPO_ROOT, 'constructs');

/** The props that receive each service's settings, by the service's key in the schema. */
const PROPS_OF: Record<keyof typeof SERVICE_DEFAULTS, string[]> = {
  postgres: ['PostgresProps', 'SharedPostgresProps'],
  pgbouncer: ['PgBouncerProps'],
  redis: ['RedisSentinelProps'],
  qdrant: ['QdrantProps'],
  minio: ['ObjectStoreProps', 'ObjectStoreBucket'],
};

/** Every defaulted setting name with each default it has (memoryMb has one per service). */
function defaultsByName(): Map<string, string[]> {
  const byName = new Map<string, string[]>();
  const add = (name: string, value: unknown) => byName.set(name, [...(byName.get(name) ?? []), JSON.stringify(value)]);
  for (const settings of [...Object.values(SERVICE_DEFAULTS), MINIO_BUCKET_DEFAULTS]) {
    for (const [name, value] of Object.entries(settings)) add(name, value);
  }
  return byName;
}

function sourceFiles(): ts.SourceFile[] {
  return fs
    .readdirSync(CONSTRUCTS)
    .filter((f) => f.endsWith('.ts'))
    .sort()
    .map((f) => ts.createSourceFile(path.join('constructs', f), fs.readFileSync(path.join(CONSTRUCTS, f), 'utf8'), ts.ScriptTarget.ES2022, true));
}

/** The value of a literal expression as JSON, or undefined when it is not a literal. */
function literal(e: ts.Expression): string | undefined {
  if (ts.isNumericLiteral(e)) return JSON.stringify(Number(e.text));
  if (ts.isStringLiteralLike(e)) return JSON.stringify(e.text);
  if (e.kind === ts.SyntaxKind.TrueKeyword) return 'true';
  if (e.kind === ts.SyntaxKind.FalseKeyword) return 'false';
  if (ts.isArrayLiteralExpression(e) && e.elements.every((x) => literal(x) !== undefined)) return `[${e.elements.map((x) => literal(x)).join(',')}]`;
  if (ts.isObjectLiteralExpression(e) && e.properties.length === 0) return '{}';
  if (ts.isParenthesizedExpression(e) || ts.isAsExpression(e)) return literal(e.expression);
  return undefined;
}

function nameOf(e: ts.Node): string | undefined {
  if (ts.isIdentifier(e)) return e.text;
  if (ts.isPropertyAccessExpression(e)) return e.name.text;
  if (ts.isElementAccessExpression(e) && ts.isStringLiteral(e.argumentExpression)) return e.argumentExpression.text;
  return undefined;
}

/** `<name> ?? <default>`, `<name> || <default>`, `{ <name> = <default> }` and `@default <default>` on a `<name>` prop. */
export function restatedDefaults(files: ts.SourceFile[], defaults: Map<string, string[]>): string[] {
  const found: string[] = [];
  const where = (file: ts.SourceFile, node: ts.Node) => `${file.fileName}:${file.getLineAndCharacterOfPosition(node.getStart()).line + 1}`;
  const check = (file: ts.SourceFile, node: ts.Node, name: string | undefined, value: string | undefined) => {
    if (name !== undefined && value !== undefined && defaults.get(name)?.includes(value)) {
      found.push(`${where(file, node)}: ${name} defaults to ${value} here, but the config layer resolves it`);
    }
  };
  for (const file of files) {
    const visit = (node: ts.Node): void => {
      if (ts.isBinaryExpression(node) && [ts.SyntaxKind.QuestionQuestionToken, ts.SyntaxKind.BarBarToken].includes(node.operatorToken.kind)) {
        check(file, node, nameOf(node.left), literal(node.right));
      }
      if (ts.isBindingElement(node) && node.initializer) {
        check(file, node, nameOf(node.propertyName ?? node.name), literal(node.initializer));
      }
      if (ts.isPropertySignature(node)) {
        for (const tag of ts.getJSDocTags(node).filter((t) => t.tagName.text === 'default')) {
          const text = ts.getTextOfJSDocComment(tag.comment)?.trim() ?? '';
          const value = text.replace(/^'(.*)'$/, '"$1"');
          check(file, node, nameOf(node.name), /^["\d[{]|^(true|false)$/.test(value) ? value.split(/\s/)[0] : undefined);
        }
      }
      ts.forEachChild(node, visit);
    };
    visit(file);
  }
  return found;
}

/** Optional fields, in the props that receive a service's settings, for settings the schema gives a default. */
export function optionalDefaultedProps(files: ts.SourceFile[]): string[] {
  const found: string[] = [];
  for (const [service, interfaces] of Object.entries(PROPS_OF)) {
    const defaulted = new Set([...Object.keys(SERVICE_DEFAULTS[service as keyof typeof SERVICE_DEFAULTS]), ...(service === 'minio' ? Object.keys(MINIO_BUCKET_DEFAULTS) : [])]);
    for (const name of interfaces) {
      const declaration = files.flatMap((f) => f.statements.filter(ts.isInterfaceDeclaration).map((d) => ({ f, d }))).find(({ d }) => d.name.text === name);
      if (!declaration) throw new Error(`no interface ${name} in constructs/: update PROPS_OF`);
      for (const member of declaration.d.members) {
        if (ts.isPropertySignature(member) && member.questionToken && defaulted.has(nameOf(member.name) ?? '')) {
          found.push(`${declaration.f.fileName}: ${name}.${nameOf(member.name)} is optional, but the config layer always resolves it: make it required`);
        }
      }
    }
  }
  return found;
}

describe('defaults are resolved once, in the config layer', () => {
  test('the schema lists defaults for every service (the list the checks below use)', () => {
    expect(SERVICE_DEFAULTS.pgbouncer).toMatchObject({ poolMode: 'transaction', poolSize: 25, maxClients: 1000 });
    expect(SERVICE_DEFAULTS.redis).toMatchObject({ replicas: 2, sentinels: 3, quorum: 2 });
  });

  test('no construct restates a default of the schema', () => {
    expect(restatedDefaults(sourceFiles(), defaultsByName())).toEqual([]);
  });

  test('the props that receive a defaulted setting require it', () => {
    expect(optionalDefaultedProps(sourceFiles())).toEqual([]);
  });

  test('the scan finds a restated default in each of the forms it looks for', () => {
    const file = ts.createSourceFile(
      'constructs/example.ts',
      [
        'interface P {',
        '  /** @default 25 */',
        '  readonly poolSize?: number;',
        '}',
        'const a = props.poolSize ?? 25;',
        "const b = props.maxmemory || '256mb';",
        'const { replicas = 2 } = props;',
        'const c = props.poolSize ?? 30;',
      ].join('\n'),
      ts.ScriptTarget.ES2022,
      true,
    );
    expect(restatedDefaults([file], defaultsByName())).toEqual([
      'constructs/example.ts:3: poolSize defaults to 25 here, but the config layer resolves it',
      'constructs/example.ts:5: poolSize defaults to 25 here, but the config layer resolves it',
      'constructs/example.ts:6: maxmemory defaults to "256mb" here, but the config layer resolves it',
      'constructs/example.ts:7: replicas defaults to 2 here, but the config layer resolves it',
    ]);
  });
});
