import * as fs from 'fs';
import * as path from 'path';
import { Document, isMap, isPair, isScalar, isSeq, LineCounter, Node, parseDocument, Scalar, visit } from 'yaml';

/** A problem in a config file, reported as `file:line:col: message`. */
export interface Problem {
  readonly file: string;
  readonly line: number;
  readonly col: number;
  readonly message: string;
}

export type ConfigPath = readonly (string | number)[];

export function formatProblem(p: Problem): string {
  return `${formatPosition(p)}: ${p.message}`;
}

/** `file:line:col`, for naming the other end of a clash in a message. */
export function formatPosition(p: Pick<Problem, 'file' | 'line' | 'col'>): string {
  return `${p.file}:${p.line}:${p.col}`;
}

/** Orders problems by file, then position, so every run prints them the same way. */
export function sortProblems(problems: Problem[]): Problem[] {
  const seen = new Set<string>();
  return problems
    .filter((p) => {
      const key = formatProblem(p);
      if (seen.has(key)) return false;
      seen.add(key);
      return true;
    })
    .sort((a, b) => a.file.localeCompare(b.file) || a.line - b.line || a.col - b.col || a.message.localeCompare(b.message));
}

/**
 * One parsed YAML file that can say where any value in it is. Problems found later (schema,
 * cross-file checks) point at the offending value's line and column through `locate`.
 */
export class SourceFile {
  /** The file's name as printed in problems: relative to the working directory when inside it. */
  readonly displayName: string;
  readonly data: unknown;
  readonly syntaxProblems: Problem[];
  private readonly doc: Document.Parsed;
  private readonly lines: LineCounter;

  static read(absolutePath: string): SourceFile {
    return new SourceFile(absolutePath, fs.readFileSync(absolutePath, 'utf8'));
  }

  constructor(readonly absolutePath: string, private readonly text: string) {
    this.displayName = displayPath(absolutePath);
    this.lines = new LineCounter();
    this.doc = parseDocument(text, { lineCounter: this.lines, prettyErrors: false, uniqueKeys: true });
    this.syntaxProblems = this.doc.errors.map((e) => {
      const [offset] = e.pos;
      const { message, at } = explainSyntaxError(e.code, firstLine(e.message), text, offset);
      return this.problemAtOffset(at, `YAML syntax: ${message}`);
    });
    // These parse, but into something other than what was written: "!x" and "&x" vanish from the value.
    if (this.syntaxProblems.length === 0) this.syntaxProblems.push(...this.misreadValues());
    this.data = this.syntaxProblems.length === 0 ? this.toData() : undefined;
  }

  /** Values whose leading "!" became an unknown tag, or whose leading "&" became an anchor nothing refers to. */
  private misreadValues(): Problem[] {
    const problems: Problem[] = [];
    for (const w of this.doc.warnings) {
      if (w.code !== 'TAG_RESOLVE_FAILED') continue;
      const hint = misreadHint(this.text, w.pos[0]);
      problems.push(hint ? this.problemAtOffset(hint.at, `YAML syntax: ${hint.message}`) : this.problemAtOffset(w.pos[0], `YAML syntax: ${firstLine(w.message)}`));
    }
    const referenced = new Set<string>();
    const anchored: Scalar[] = [];
    visit(this.doc, {
      Alias: (_, node) => void referenced.add(node.source),
      Scalar: (_, node) => void (node.anchor && anchored.push(node)),
    });
    for (const node of anchored) {
      if (referenced.has(node.anchor!) || !node.range) continue;
      const hint = misreadHint(this.text, this.text.lastIndexOf(`&${node.anchor}`, node.range[0]));
      if (hint) problems.push(this.problemAtOffset(hint.at, `YAML syntax: ${hint.message} (the value became ${node.value === null ? 'empty' : JSON.stringify(String(node.value))})`));
    }
    return problems;
  }

  /** Aliases are only resolved here, so an unknown or exploding alias surfaces here, as a problem. */
  private toData(): unknown {
    try {
      return this.doc.toJS({ maxAliasCount: 100 });
    } catch (e) {
      const message = (e as Error).message;
      const alias = /Unresolved alias[^:]*: \*?(\S+)/.exec(message)?.[1];
      const offset = alias ? this.textOffset(`*${alias}`) : 0;
      const quoted = alias ? misreadHint(this.text, offset)?.quoted : undefined;
      this.syntaxProblems.push(
        this.problemAtOffset(
          offset,
          alias
            ? `YAML syntax: alias "*${alias}" refers to no anchor: define "&${alias}" before it${quoted ? `, or if the "*" is part of the text, quote it: ${quoted}` : ''}`
            : `YAML syntax: ${firstLine(message)} (aliases may expand to at most 100 nodes)`,
        ),
      );
      return undefined;
    }
  }

  private textOffset(needle: string): number {
    return Math.max(0, this.text.indexOf(needle));
  }

  /** A problem at the value found at `at` (or its nearest existing parent); `key` points at the key instead. */
  problem(at: ConfigPath, message: string, options: { key?: boolean } = {}): Problem {
    const offset = this.offsetOf(at, options.key ?? false);
    const shown = options.key ? message : `${message}${this.commentHint(at)}`;
    return offset === undefined ? this.wholeFile(shown) : this.problemAtOffset(offset, shown);
  }

  /**
   * A " #" inside an unquoted string starts a comment: when such a value is wrong, that may be why.
   * Only for a comment one space after the value (comments people mean usually sit further away).
   */
  private commentHint(at: ConfigPath): string {
    const node = this.doc.getIn(at, true);
    if (!isScalar(node) || node.type !== Scalar.PLAIN || typeof node.value !== 'string' || !node.comment || !node.range) return '';
    if (this.text.slice(node.range[1], node.range[1] + 2) !== ' #') return '';
    return ` (YAML read the text after " #" on that line as a comment: if "#${node.comment}" belongs to the value, quote the whole value)`;
  }

  /** `file:line:col` of the value at `at` (or its nearest existing parent), as `problem` would point at it. */
  position(at: ConfigPath, options: { key?: boolean } = {}): string {
    const offset = this.offsetOf(at, options.key ?? false);
    return formatPosition(offset === undefined ? this.wholeFile('') : this.problemAtOffset(offset, ''));
  }

  wholeFile(message: string): Problem {
    return { file: this.displayName, line: 1, col: 1, message };
  }

  /** Whether the YAML text itself holds a value at this path (as opposed to a schema default). */
  has(at: ConfigPath): boolean {
    return this.doc.getIn(at, true) !== undefined;
  }

  private problemAtOffset(offset: number, message: string): Problem {
    const { line, col } = this.lines.linePos(offset);
    return { file: this.displayName, line, col, message };
  }

  private offsetOf(at: ConfigPath, wantKey: boolean): number | undefined {
    let node: unknown = this.doc.contents;
    let best = rangeStart(node);
    for (let i = 0; i < at.length; i++) {
      const segment = at[i];
      const isLast = i === at.length - 1;
      if (isMap(node)) {
        const pair = node.items.find((p) => isPair(p) && isScalar(p.key) && String(p.key.value) === String(segment));
        if (!pair) return best;
        if (isLast && wantKey) return rangeStart(pair.key) ?? best;
        node = pair.value;
        best = rangeStart(node) ?? rangeStart(pair.key) ?? best;
      } else if (isSeq(node) && typeof segment === 'number') {
        node = node.items[segment];
        if (node === undefined) return best;
        best = rangeStart(node) ?? best;
      } else {
        return best;
      }
    }
    return best;
  }
}

function rangeStart(node: unknown): number | undefined {
  const range = (node as Node | null | undefined)?.range;
  return range ? range[0] : undefined;
}

/** The YAML library's wording for the mistakes people make most, said in terms of the file. */
function explainSyntaxError(code: string, message: string, text: string, offset: number): { message: string; at: number } {
  if (code === 'MULTIPLE_DOCS') {
    return { message: 'a config file holds one YAML document: remove this "---" or split the file', at: offset };
  }
  if (code === 'MISSING_CHAR' && /closing "?quote|closing ["']/i.test(message)) {
    // The library reports the end of the file; the opening quote is what the person must find.
    const quote = message.includes("'") && !message.includes('"quote') ? "'" : '"';
    const opening = unclosedQuote(text, quote);
    if (opening !== undefined) return { message: `the quoted string that starts here is never closed (missing closing ${quote})`, at: opening };
  }
  const hint = misreadHint(text, offset, code);
  return hint ?? { message, at: offset };
}

/** What YAML makes of an unquoted value that starts with one of its indicator characters. */
const LEADING_INDICATORS: Record<string, string> = {
  '*': 'which YAML reads as an alias (a reference to an "&" anchor)',
  '&': 'which YAML reads as an anchor (a name for reuse by an alias), not as part of the value',
  '!': 'which YAML reads as a type tag, not as part of the value',
  '@': 'which YAML reserves: an unquoted value cannot start with it',
  '`': 'which YAML reserves: an unquoted value cannot start with it',
  '%': 'which YAML reads as a directive',
  '[': 'which YAML reads as a list that ends at "]", leaving the rest of the line as a stray second value',
  '{': 'which YAML reads as a map that ends at "}", leaving the rest of the line as a stray second value',
};

/**
 * The common way an unquoted value goes wrong, when the line at `offset` has one: it starts with a
 * YAML indicator, or holds ": " (the parser's BLOCK_AS_IMPLICIT_KEY). Says what YAML saw there
 * and gives the line with the value quoted.
 */
function misreadHint(text: string, offset: number, code?: string): { message: string; at: number; quoted: string } | undefined {
  if (offset < 0) return undefined;
  const lineStart = text.lastIndexOf('\n', offset - 1) + 1;
  const lineEnd = text.indexOf('\n', offset);
  const line = text.slice(lineStart, lineEnd < 0 ? undefined : lineEnd);
  const match = /^(\s*(?:-\s+)?(?:[\w.-]+:\s+)?)(\S.*?)(?:\s+#.*)?$/.exec(line);
  // Only a value after a key or a list dash: anything else is not a misread value.
  if (!match || match[1].trim() === '') return undefined;
  const [, lead, value] = match;
  const quoted = `${lead.trim()} ${JSON.stringify(value)}`;
  const at = lineStart + lead.length;
  const seen = LEADING_INDICATORS[value[0]];
  // A flow list or map that is never closed is a different mistake ("[" is not misread there).
  const strayAfterFlow = code === undefined || code === 'UNEXPECTED_TOKEN';
  if (seen && ((value[0] !== '[' && value[0] !== '{') || strayAfterFlow)) {
    return { message: `the unquoted value ${value} starts with "${value[0]}", ${seen}: quote the value: ${quoted}`, at, quoted };
  }
  if (value.startsWith('- ') && code !== undefined) {
    return { message: `the unquoted value ${value} starts with "- ", which YAML reads as a list item, not allowed on the line of a key: quote the value: ${quoted}`, at, quoted };
  }
  if (code === 'BLOCK_AS_IMPLICIT_KEY' && /:\s/.test(value)) {
    return { message: `the unquoted value ${value} holds ": ", which YAML reads as the start of a nested key: quote the value: ${quoted}`, at, quoted };
  }
  return undefined;
}

/** The offset of the first quote on a line that opens a string and never closes it on that line. */
function unclosedQuote(text: string, quote: string): number | undefined {
  let lineStart = 0;
  for (const line of text.split('\n')) {
    const count = line.split(quote).length - 1;
    if (count % 2 === 1 && !line.trimStart().startsWith('#')) return lineStart + line.indexOf(quote);
    lineStart += line.length + 1;
  }
  return undefined;
}

function firstLine(message: string): string {
  return message.split('\n')[0].replace(/ at line \d+, column \d+:?$/, '');
}

/** A path as problems show it: relative to the working directory when inside it, else absolute. */
export function displayPath(absolutePath: string): string {
  const rel = path.relative(process.cwd(), absolutePath);
  return rel && !rel.startsWith('..') && !path.isAbsolute(rel) ? rel : absolutePath;
}
