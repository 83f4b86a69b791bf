import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { loadConfig } from '../../config/load';
import { formatProblem } from '../../config/source';

/*
 * The bad-config corpus (see test/config/README.md): a valid base config, and one folder per case
 * holding only the files that differ from it, plus the exact problem lines it must print.
 */

export const BASE_DIR = path.join(__dirname, 'base');
/** Cases whose expected.txt is what the loader prints today (asserted exactly). */
export const CORPUS_DIR = path.join(__dirname, 'corpus');

/** Files in a case folder that are not config files. */
export const EXPECTED_FILE = 'expected.txt';
export const REMOVED_FILE = 'removed.txt';
const META_FILES = new Set([EXPECTED_FILE, REMOVED_FILE]);

export interface Case {
  /** The folder name, e.g. "14-cron-wrong-field-count". */
  readonly name: string;
  readonly dir: string;
}

export function listCases(folder: string): Case[] {
  if (!fs.existsSync(folder)) return [];
  return fs
    .readdirSync(folder, { withFileTypes: true })
    .filter((d) => d.isDirectory())
    .map((d) => ({ name: d.name, dir: path.join(folder, d.name) }))
    .sort((a, b) => a.name.localeCompare(b.name));
}

/** A case by folder name, with or without its number ("14-cron-wrong-field-count" or "cron-wrong-field-count"). */
export function findCase(name: string): Case {
  const found = listCases(CORPUS_DIR).find((c) => c.name === name || c.name.replace(/^\d+-/, '') === name);
  if (!found) throw new Error(`no case "${name}" under ${CORPUS_DIR}`);
  return found;
}

/** Every file under `dir`, as "/"-separated paths relative to it ("tenants/alpha.yaml"). */
function filesUnder(dir: string, prefix = ''): string[] {
  return fs
    .readdirSync(path.join(dir, prefix), { withFileTypes: true })
    .flatMap((d) => {
      const rel = path.posix.join(prefix, d.name);
      return d.isDirectory() ? filesUnder(dir, rel) : [rel];
    })
    .sort();
}

/** The case's config files (relative paths), without expected.txt and removed.txt. */
export function caseFiles(c: Case): string[] {
  return filesUnder(c.dir).filter((f) => !META_FILES.has(f));
}

/** Base files the case deletes: removed.txt, one root-relative path per line ("#" starts a comment). */
export function removedFiles(c: Case): string[] {
  const file = path.join(c.dir, REMOVED_FILE);
  if (!fs.existsSync(file)) return [];
  return fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .map((l) => l.replace(/#.*/, '').trim())
    .filter((l) => l !== '');
}

export function expectedLines(c: Case): string[] {
  return splitLines(fs.readFileSync(path.join(c.dir, EXPECTED_FILE), 'utf8'));
}

/** Lines of a text, without the empty string after a final newline (CRLF tolerated). */
export function splitLines(text: string): string[] {
  const lines = text.replace(/\r\n/g, '\n').split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  return lines;
}

/** A fresh temporary directory under TMPDIR (its real path, so that process.cwd() agrees with it). */
export function tempDir(label: string): string {
  return fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), `tenantry-corpus-${label}-`)));
}

/**
 * Writes the base config with the case's files laid over it (a case file replaces the base file
 * of the same path, or adds a new one) and the files listed in removed.txt deleted.
 * Without a case: the base alone. Returns the config root.
 */
export function materialise(c: Case | undefined, root = tempDir(c ? c.name.slice(0, 40) : 'base')): string {
  fs.cpSync(BASE_DIR, root, { recursive: true });
  if (c === undefined) return root;
  for (const rel of removedFiles(c)) {
    const target = path.join(root, rel);
    if (!fs.existsSync(target)) throw new Error(`${c.name}/${REMOVED_FILE}: "${rel}" is not a file of the base config`);
    fs.rmSync(target, { recursive: true });
  }
  for (const rel of caseFiles(c)) {
    const target = path.join(root, rel);
    fs.mkdirSync(path.dirname(target), { recursive: true });
    fs.copyFileSync(path.join(c.dir, rel), target);
  }
  return root;
}

/**
 * Loads the config under `root` as `npm run synth` does when run from that directory, so that
 * file names print relative to the root ("tenants/alpha.yaml", also inside messages that name a
 * second file). Returns the formatted problem lines; [] when the config is valid.
 */
export function problemLines(root: string): string[] {
  const before = process.cwd();
  process.chdir(root);
  try {
    const result = loadConfig(root);
    return result.ok ? [] : result.problems.map(formatProblem);
  } finally {
    process.chdir(before);
  }
}

/**
 * Prints a case's current output, to REVIEW (not to paste unread) when writing its expected.txt:
 *   npx ts-node -T test/config/corpus-lib.ts 14-cron-wrong-field-count
 * Without a name it checks the base config alone (it must load cleanly).
 */
if (require.main === module) {
  const name = process.argv[2];
  const root = materialise(name === undefined ? undefined : findCase(name));
  try {
    const lines = problemLines(root);
    console.log(lines.length === 0 ? '(loads cleanly)' : lines.join('\n'));
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
}
