import * as fs from 'fs';
import * as path from 'path';
import { Document, isMap, isPair, isScalar, isSeq, LineCounter, Node, parseDocument } from 'yaml';

/** A problem in a config file, reported as `file:line:col: message`. */
export interface Problem {
  readonly file: string;
  readonly line: number;
  readonly col: number;
  readonly message: string;
}

export type ConfigPath = readonly (string | number)[];

export function formatProblem(p: Problem): string {
  return `${p.file}:${p.line}:${p.col}: ${p.message}`;
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
    this.data = this.syntaxProblems.length === 0 ? this.toData() : undefined;
  }

  /** Aliases are only resolved here, so an unknown or exploding alias surfaces here, as a problem. */
  private toData(): unknown {
    try {
      return this.doc.toJS({ maxAliasCount: 100 });
    } catch (e) {
      const message = (e as Error).message;
      const alias = /Unresolved alias[^:]*: \*?(\S+)/.exec(message)?.[1];
      const offset = alias ? this.textOffset(`*${alias}`) : 0;
      this.syntaxProblems.push(
        this.problemAtOffset(
          offset,
          alias
            ? `YAML syntax: alias "*${alias}" refers to no anchor: define "&${alias}" before it`
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
    return offset === undefined ? this.wholeFile(message) : this.problemAtOffset(offset, message);
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
  return { message, at: offset };
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

function displayPath(absolutePath: string): string {
  const rel = path.relative(process.cwd(), absolutePath);
  return rel && !rel.startsWith('..') && !path.isAbsolute(rel) ? rel : absolutePath;
}
