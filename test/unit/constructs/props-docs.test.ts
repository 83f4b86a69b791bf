import * as fs from 'fs';
import * as path from 'path';
import * as ts from 'typescript';
import { REPO } from '../../helpers/build';

/*
 * A construct's props are its API: every prop, required ones too, says what it is for, and an
 * optional one says what happens when it is left out (`@default`), as aws-cdk-lib's do. Read from
 * the source with the TypeScript compiler, for every exported `…Props` interface in constructs/
 * and the object types written inline in them.
 */

const CONSTRUCTS = path.join(REPO, 'constructs');

interface Finding {
  readonly where: string;
  readonly what: string;
}

/** Members of an interface or inline object type, and of the object types nested in them. */
function checkMembers(source: ts.SourceFile, owner: string, members: ts.NodeArray<ts.TypeElement>, findings: Finding[]): void {
  for (const member of members) {
    if (!ts.isPropertySignature(member) || !member.name) continue;
    const name = `${owner}.${member.name.getText(source)}`;
    const where = `constructs/${path.basename(source.fileName)}:${source.getLineAndCharacterOfPosition(member.getStart(source)).line + 1} ${name}`;
    const docs = ts.getJSDocCommentsAndTags(member).filter(ts.isJSDoc);
    const text = docs.map((d) => ts.getTextOfJSDocComment(d.comment) ?? '').join(' ').trim();
    const defaults = docs.flatMap((d) => d.tags ?? []).filter((t) => t.tagName.text === 'default');
    if (text === '') findings.push({ where, what: 'has no doc comment saying what it is for' });
    if (member.questionToken && defaults.length === 0) findings.push({ where, what: 'is optional but has no @default saying what happens without it' });
    if (member.type && ts.isTypeLiteralNode(member.type)) checkMembers(source, name, member.type.members, findings);
  }
}

function propsFindings(file: string, text: string): Finding[] {
  const source = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true);
  const findings: Finding[] = [];
  for (const statement of source.statements) {
    if (!ts.isInterfaceDeclaration(statement) || !statement.name.text.endsWith('Props')) continue;
    if (!statement.modifiers?.some((m) => m.kind === ts.SyntaxKind.ExportKeyword)) continue;
    checkMembers(source, statement.name.text, statement.members, findings);
  }
  return findings;
}

describe('construct props', () => {
  test('every prop of an exported construct props interface has a doc comment, and an optional one a @default', () => {
    const findings = fs
      .readdirSync(CONSTRUCTS)
      .filter((f) => f.endsWith('.ts'))
      .flatMap((f) => propsFindings(path.join(CONSTRUCTS, f), fs.readFileSync(path.join(CONSTRUCTS, f), 'utf8')));
    expect(findings.map((f) => `${f.where} ${f.what}`)).toEqual([]);
  });

  test('the check sees a missing doc comment, a missing @default, and both in a nested object type', () => {
    const text = `
      export interface ExampleProps {
        readonly undocumented: string;
        /** Documented, but optional without a default. */
        readonly optional?: number;
        /** Documented and defaulted. @default none */
        readonly fine?: number;
        /** A nested shape. */
        readonly nested: {
          readonly inner: string;
          /** @default x */
          readonly bare?: string;
        };
      }
      interface InternalProps { readonly notChecked: string }
      export interface NotPropsOfAConstruct { readonly notChecked: string }
    `;
    expect(propsFindings('/x/example.ts', text).map((f) => `${f.where.replace(/:\d+/, '')} ${f.what}`)).toEqual([
      'constructs/example.ts ExampleProps.undocumented has no doc comment saying what it is for',
      'constructs/example.ts ExampleProps.optional is optional but has no @default saying what happens without it',
      'constructs/example.ts ExampleProps.nested.inner has no doc comment saying what it is for',
      'constructs/example.ts ExampleProps.nested.bare has no doc comment saying what it is for',
    ]);
  });
});
