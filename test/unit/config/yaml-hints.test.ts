import * as fc from 'fast-check';
import { SourceFile } from '../../../config/source';

/*
 * An unquoted value that YAML reads as something else (an alias, anchor, tag, reserved character,
 * directive, flow collection or nested key) is a problem at the value, and the line it suggests
 * reads back as exactly the text that was written. Generated over values, keys and list items,
 * because the corpus can only hold examples.
 */

const word = fc.stringMatching(/^[a-z0-9/.*-]{1,6}$/);
const text = fc.array(word, { minLength: 1, maxLength: 3 }).map((words) => words.join(' '));
const INDICATORS = ['*', '&', '!', '@', '`', '%'];

/** The value as the suggestion writes it (`key: "…"` or `- "…"`), parsed back. */
function suggestionReadsBack(message: string, line: string, intended: string): boolean {
  const quoted = /quote (?:the value|it): (.*?)(?: \(the value became .*\))?$/.exec(message)?.[1];
  if (!quoted) return false;
  const indent = /^\s*/.exec(line)![0];
  const data = new SourceFile('/cfg/x.yaml', `${indent}${quoted}\n`).data as Record<string, unknown> | unknown[];
  const value = Array.isArray(data) ? data[0] : Object.values(data as Record<string, unknown>)[0];
  return value === intended;
}

function check(line: string, intended: string, valueColumn: number): void {
  const file = new SourceFile('/cfg/x.yaml', `${line}\n`);
  if (file.syntaxProblems.length === 0) {
    // YAML read the text as written: nothing to report.
    const data = file.data as Record<string, unknown> | unknown[];
    expect(Array.isArray(data) ? data[0] : Object.values(data)[0]).toBe(intended);
    return;
  }
  const [first] = file.syntaxProblems;
  expect({ line: first.line, col: first.col }).toEqual({ line: 1, col: valueColumn });
  expect({ message: first.message, readsBack: suggestionReadsBack(first.message, line, intended) }).toEqual({ message: first.message, readsBack: true });
}

test('a value starting with * & ! @ ` %: a problem at the value whose quoted line reads back as the text', () => {
  fc.assert(
    fc.property(fc.constantFrom(...INDICATORS), text, fc.boolean(), (indicator, rest, listItem) => {
      const intended = `${indicator}${rest}`;
      const lead = listItem ? '- ' : 'schedule: ';
      const file = new SourceFile('/cfg/x.yaml', `${lead}${intended}\n`);
      // These never read back as the text unquoted, so there is always a problem.
      expect(file.syntaxProblems.length).toBeGreaterThan(0);
      check(`${lead}${intended}`, intended, lead.length + 1);
    }),
    { numRuns: 300, seed: 9008 },
  );
});

test('a value holding ": " or starting with a flow collection: either read as written, or a problem whose quoted line reads back', () => {
  fc.assert(
    fc.property(text, text, fc.constantFrom(': ', '[x] ', '{x} '), (a, b, joint) => {
      const intended = joint === ': ' ? `${a}: ${b}` : `${joint}${b}`;
      check(`  key: ${intended}`, intended, 8);
    }),
    { numRuns: 300, seed: 9008 },
  );
});

test('a wrong string value right before " #" notes the comment; one with a comment set apart does not', () => {
  const file = new SourceFile('/cfg/x.yaml', 'color: fff #0a0\nversion: v1.12  # pinned by ops\n');
  expect(file.problem(['color'], 'color: "fff" is not a colour').message).toBe(
    'color: "fff" is not a colour (YAML read the text after " #" on that line as a comment: if "#0a0" belongs to the value, quote the whole value)',
  );
  expect(file.problem(['version'], 'version: "v1.12" is not a release').message).toBe('version: "v1.12" is not a release');
});
