/**
 * The parts of a Postgres restore that are facts about names and archives, apart from the driver
 * that talks to the server (restore.ts).
 *
 * A restore never writes into the database it replaces. It creates `<db>__restoring_<stamp>`
 * with the archive's own CREATE DATABASE, loads and checks it there, gives it the archive's
 * database-level properties (owner, `ALTER DATABASE … SET`, `ALTER ROLE … IN DATABASE … SET`,
 * comment, grants, connection limit: pg_restore only brings those with --create, under the
 * archive's own name), and only then swaps names: the existing database becomes
 * `<db>__before_restore_<stamp>` and stays until the operator drops it.
 */
import type { Client } from 'pg';

/** Postgres truncates identifiers longer than this many bytes (NAMEDATALEN - 1). */
const MAX_IDENTIFIER_BYTES = 63;
export const RESTORING_INFIX = '__restoring_';
export const BEFORE_RESTORE_INFIX = '__before_restore_';
const STAMP_DIGITS = 14;
/** The longest database name whose restore copies keep the whole name (the longer infix decides). */
export const MAX_RESTORABLE_NAME_BYTES = MAX_IDENTIFIER_BYTES - BEFORE_RESTORE_INFIX.length - STAMP_DIGITS;

/**
 * The comment a restore gives its temporary database when it creates it: the next restore of the
 * same target drops a leftover only when it carries this mark (the archive's own comment replaces
 * it once the copy is complete).
 */
export const RESTORING_MARK = 'tenantry-agent: half-restored copy, dropped by the next restore of the same target';

/**
 * Why `name` may not be a database a restore replaces or creates, or undefined when it may: its
 * copies must not be confused with another database's, and PostgreSQL must not cut their names.
 */
export function unrestorableName(name: string): string | undefined {
  const infix = [RESTORING_INFIX, BEFORE_RESTORE_INFIX].find((reserved) => name.includes(reserved));
  if (infix) return `"${infix}" is reserved for the copies a restore makes`;
  const bytes = Buffer.byteLength(name);
  if (bytes > MAX_RESTORABLE_NAME_BYTES) {
    return `it is ${bytes} bytes long; a restore names its copies <database>${BEFORE_RESTORE_INFIX}<${STAMP_DIGITS} digits>, which PostgreSQL would cut at ${MAX_IDENTIFIER_BYTES} bytes: use a name of at most ${MAX_RESTORABLE_NAME_BYTES} bytes`;
  }
  return undefined;
}

/** `<database><infix><stamp>`, whole: unrestorableName refuses a database whose copies would be cut. */
export function affixedName(database: string, infix: string, stamp: string): string {
  const problem = unrestorableName(database);
  if (problem) throw new Error(`"${database}" cannot be restored into: ${problem}`);
  return `${database}${infix}${stamp}`;
}

/** Whether `name` is exactly what affixedName gives `database` and `infix` for some stamp. */
export function isAffixedName(name: string, database: string, infix: string): boolean {
  return name.startsWith(`${database}${infix}`) && new RegExp(`^\\d{${STAMP_DIGITS}}$`).test(name.slice(database.length + infix.length));
}

/** A restore's stamp: UTC, to the second, digits only (sorts by time, needs no quoting). */
export function restoreStamp(now: Date): string {
  return now.toISOString().replace(/\D/g, '').slice(0, STAMP_DIGITS);
}

/**
 * TOC entries of the database itself, which pg_restore lists and restores only with --create.
 * Lines of `pg_restore --create --list`: `<id>; <catalog> <oid> <type> <schema> <name> <owner>`.
 */
const DATABASE_ENTRY = /^\d+; \d+ \d+ (DATABASE - |DATABASE PROPERTIES - |COMMENT - DATABASE |ACL - DATABASE |SECURITY LABEL - DATABASE )/;

export function databaseEntries(toc: string): string {
  return toc.split('\n').filter((line) => DATABASE_ENTRY.test(line)).join('\n') + '\n';
}

export interface DatabaseProperties {
  /** The archive's CREATE DATABASE (encoding, locale, template), renamed. */
  create: string;
  /** Everything else about the database (owner, settings, comment, grants, connection limit), renamed. */
  rest: string;
}

/**
 * Splits pg_restore's SQL for the database entries into its CREATE DATABASE and the rest, with the
 * database's name (as pg_dump quotes it, `quoted`) replaced by `renamedQuoted` where a statement
 * names the database. The SQL is lexed as PostgreSQL lexes it (archiveStatements): a statement is
 * applied only when it has one of the shapes pg_dump writes for a database, its literals rewritten
 * in a form no session setting reads differently; anything else fails the restore before it
 * changes anything. psql's meta-commands and the session settings pg_restore prepends are left out.
 */
export function renameDatabaseSql(sql: string, quoted: string, renamedQuoted: string): DatabaseProperties {
  const database = identifierOf(quoted);
  identifierOf(renamedQuoted);
  let create: string | undefined;
  const rest: string[] = [];
  for (const statement of archiveStatements(sql)) {
    const at = databaseTokenOf(statement, database);
    const text = `${statement.map((token, i) => (i === at ? renamedQuoted : token.kind === 'string' ? escapeLiteral(token.value) : token.text)).join(' ')};`;
    if (statement[0].text.toUpperCase() !== 'CREATE') rest.push(text);
    else if (create === undefined) create = text;
    else throw new Error('the archive has more than one CREATE DATABASE entry');
  }
  if (create === undefined) throw new Error('the archive has no CREATE DATABASE entry');
  return { create, rest: rest.join('\n') };
}

/** The statements pg_restore writes for a database (GRANT and REVOKE apart): `@` the database, `?` any one name. */
const DATABASE_STATEMENTS = [
  'CREATE DATABASE @',
  'ALTER DATABASE @ OWNER TO',
  'ALTER DATABASE @ SET',
  'ALTER DATABASE @ CONNECTION LIMIT',
  'ALTER DATABASE @ IS_TEMPLATE',
  'ALTER DATABASE @ ALLOW_CONNECTIONS',
  'ALTER DATABASE @ WITH',
  'ALTER ROLE ? IN DATABASE @ SET',
  'COMMENT ON DATABASE @ IS',
  'SECURITY LABEL FOR ? ON DATABASE @ IS',
  'SECURITY LABEL ON DATABASE @ IS',
];

/**
 * The index of the database's name in `statement`, when the statement has a shape the restore
 * applies; throws otherwise. After the shape only names, literals, numbers, `=`, `,`, `.` and `-` may follow (values of options and settings).
 */
function databaseTokenOf(statement: Token[], database: string): number {
  const words = statement.map((token) => (token.kind === 'word' ? token.text.toUpperCase() : undefined));
  const isName = (token: Token) => token.kind === 'word' || token.kind === 'identifier';
  const isDatabase = (token: Token) => isName(token) && token.value === database;
  const valuesOnly = (from: number) => statement.slice(from).every((token) => token.kind !== 'other' || /^[=,.-]$/.test(token.text));
  for (const shape of DATABASE_STATEMENTS) {
    const parts = shape.split(' ');
    if (statement.length < parts.length) continue;
    const at = parts.indexOf('@');
    const fits = parts.every((part, i) => (part === '@' ? isDatabase(statement[i]) : part === '?' ? isName(statement[i]) : words[i] === part));
    if (fits && valuesOnly(parts.length)) return at;
  }
  // GRANT <privileges> ON DATABASE <db> TO <grantees> …; REVOKE [GRANT OPTION FOR] <privileges> ON DATABASE <db> FROM <grantees> ….
  if (words[0] === 'GRANT' || words[0] === 'REVOKE') {
    const on = words.indexOf('ON');
    const privileges = statement.slice(1, on);
    const at = on + 2;
    if (on > 1 && words[on + 1] === 'DATABASE' && statement[at] !== undefined && isDatabase(statement[at]) && words[at + 1] === (words[0] === 'GRANT' ? 'TO' : 'FROM') &&
      privileges.every((token) => token.kind === 'word' || token.text === ',') &&
      statement.slice(at + 2).every((token) => isName(token) || token.text === ',')) {
      return at;
    }
  }
  throw new Error(`the archive's database entries hold a statement a restore does not apply: ${statement.slice(0, 4).map((t) => t.text).join(' ')} …; nothing was changed`);
}

interface Token {
  kind: 'word' | 'identifier' | 'string' | 'number' | 'other';
  /** As written. */
  text: string;
  /** A name as PostgreSQL reads it (words folded to lower case), a literal's characters. */
  value: string;
}

/**
 * The statements of psql input as PostgreSQL's lexer splits them: `;` ends a statement only
 * outside '…' and E'…' literals, "…" identifiers, $tag$…$tag$ bodies and -- or (nested) /* *\/
 * comments, which are dropped. psql's \connect, \restrict and \unrestrict lines, the `SET` of a
 * session setting and pg_restore's `SELECT pg_catalog.set_config('search_path', '', false)` are
 * left out (the restore sets its own session); `SET standard_conforming_strings` is followed, as
 * it decides how later literals read.
 */
export function archiveStatements(sql: string): Token[][] {
  const statements: Token[][] = [];
  let current: Token[] = [];
  let standardStrings = true;
  const end = () => {
    if (current.length === 0) return;
    const words = current.map((token) => token.text.toUpperCase());
    if (words[0] === 'SET') {
      const last = current[current.length - 1];
      if (current.length !== 4 || current[1].kind !== 'word' || !['=', 'TO'].includes(words[2]) || !['word', 'string', 'number'].includes(last.kind)) {
        throw new Error(`the archive's database entries set a session setting in an unexpected form: ${current.map((t) => t.text).join(' ')}`);
      }
      if (current[1].value === 'standard_conforming_strings') standardStrings = last.value.toLowerCase() === 'on';
    } else if (!(current.length === 11 && current.map((t) => t.text).join(' ') === "SELECT pg_catalog . set_config ( 'search_path' , '' , false )")) {
      statements.push(current);
    }
    current = [];
  };
  let i = 0;
  const fail = (what: string): never => {
    throw new Error(`the archive's database entries cannot be read: ${what} at character ${i}`);
  };
  while (i < sql.length) {
    const rest = sql.slice(i);
    const space = /^\s+/.exec(rest);
    if (space) {
      i += space[0].length;
    } else if (rest.startsWith('--')) {
      const eol = sql.indexOf('\n', i);
      i = eol < 0 ? sql.length : eol + 1;
    } else if (rest.startsWith('/*')) {
      let depth = 0;
      do {
        if (i >= sql.length) fail('an unterminated comment');
        if (sql.startsWith('/*', i)) (depth++, (i += 2));
        else if (sql.startsWith('*/', i)) (depth--, (i += 2));
        else i++;
      } while (depth > 0);
    } else if (rest.startsWith('\\')) {
      const line = /^\\(\S*)[^\n]*/.exec(rest)![0];
      if (current.length > 0 || !/^\\(connect|restrict|unrestrict)(\s|$)/.test(line)) fail(`the psql command ${line.split(/\s/)[0]}`);
      i += line.length;
    } else if (rest[0] === ';') {
      end();
      i++;
    } else if (/^[EeBbXxNn]'/.test(rest) || rest[0] === "'") {
      const prefixed = rest[0] !== "'";
      const escapes = /^[Ee]/.test(rest) || (!prefixed && !standardStrings);
      if (/^[BbXx]/.test(rest)) fail('a bit-string literal');
      let j = i + (prefixed ? 2 : 1);
      let value = '';
      for (;;) {
        if (j >= sql.length) fail('an unterminated literal');
        const c = sql[j];
        if (c === "'" && sql[j + 1] === "'") (value += "'", (j += 2));
        else if (c === "'") break;
        else if (c === '\\' && escapes) {
          const escape = /^\\(?:([0-7]{1,3})|x([0-9A-Fa-f]{1,2})|u([0-9A-Fa-f]{4})|U([0-9A-Fa-f]{8})|([\s\S]))/.exec(sql.slice(j));
          if (!escape) fail('an unterminated literal');
          const [whole, octal, hex, u4, u8, other] = escape!;
          const code = octal ? parseInt(octal, 8) : hex ? parseInt(hex, 16) : u4 ?? u8 ? parseInt((u4 ?? u8)!, 16) : undefined;
          value += code !== undefined ? String.fromCodePoint(code) : ({ b: '\b', f: '\f', n: '\n', r: '\r', t: '\t' } as Record<string, string>)[other!] ?? other!;
          j += whole.length;
        } else (value += c, j++);
      }
      j++;
      current.push({ kind: 'string', text: sql.slice(i, j), value });
      i = j;
    } else if (rest[0] === '"') {
      const match = /^"((?:[^"]|"")*)"/.exec(rest) ?? fail('an unterminated quoted name');
      if (match[1] === '') fail('an empty quoted name');
      current.push({ kind: 'identifier', text: match[0], value: match[1].replace(/""/g, '"') });
      i += match[0].length;
    } else if (rest[0] === '$') {
      const tag = /^\$(?:[A-Za-z_\u0080-\uffff][A-Za-z0-9_\u0080-\uffff]*)?\$/.exec(rest) ?? fail('a $ outside a dollar-quoted literal');
      const close = sql.indexOf(tag[0], i + tag[0].length);
      if (close < 0) fail('an unterminated dollar-quoted literal');
      current.push({ kind: 'string', text: sql.slice(i, close + tag[0].length), value: sql.slice(i + tag[0].length, close) });
      i = close + tag[0].length;
    } else {
      const word = /^[A-Za-z_\u0080-\uffff][A-Za-z0-9_$\u0080-\uffff]*/.exec(rest);
      const number = /^(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?/.exec(rest);
      if (word) current.push({ kind: 'word', text: word[0], value: word[0].toLowerCase() });
      else if (number) current.push({ kind: 'number', text: number[0], value: number[0] });
      else if (/^[(),.=+\-*/<>]/.test(rest)) current.push({ kind: 'other', text: rest[0], value: rest[0] });
      else fail(`the character ${JSON.stringify(rest[0])}`);
      i += (word ?? number)?.[0].length ?? 1;
    }
  }
  if (current.length > 0) fail('a statement without its closing ";"');
  return statements;
}

/** The one name `quoted` stands for (a word folded to lower case, or a "…" identifier). */
function identifierOf(quoted: string): string {
  const statements = archiveStatements(`${quoted};`);
  const token = statements[0]?.[0];
  if (statements.length !== 1 || statements[0].length !== 1 || (token.kind !== 'word' && token.kind !== 'identifier')) throw new Error(`${quoted} is not one name`);
  return token.value;
}

/** An E'…' literal: read the same whatever standard_conforming_strings the session has. */
function escapeLiteral(value: string): string {
  return `E'${value.replace(/\\/g, '\\\\').replace(/'/g, "''")}'`;
}

/** Role names `pg_dumpall --globals-only` creates (`CREATE ROLE name;`). */
export function rolesOfGlobals(globals: string): string[] {
  const roles: string[] = [];
  for (const match of globals.matchAll(/^CREATE ROLE ("(?:[^"]|"")+"|[^\s;]+);$/gm)) {
    const name = match[1];
    roles.push(name.startsWith('"') ? name.slice(1, -1).replace(/""/g, '"') : name);
  }
  return roles;
}

/**
 * Whether archive SQL names a role (given as pg_dump quotes it) where SQL names roles: an owner,
 * a grantee, a policy's roles, default privileges, a role's settings in the database.
 */
export function sqlNamesRole(sql: string, quotedRole: string): boolean {
  const role = escapeRegExp(quotedRole);
  return new RegExp(`(?:\\bOWNER TO|\\bTO|\\bFROM|\\bFOR ROLE|\\bAUTHORIZATION|\\bGRANTED BY|\\bALTER ROLE|,)\\s+${role}(?=[\\s,;]|$)`, 'm').test(sql);
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/**
 * Each partition under a hash-partitioned table, mapped to its topmost hash-partitioned ancestor
 * ("schema.table" labels). The hash of an enum (or of a composite or array holding one) is the
 * hash of its OID, and a restore gives types new OIDs: the same rows land in other hash
 * partitions. List and range partitions compare values, which a restore keeps, so those are
 * compared one by one.
 */
export async function hashPartitionRoots(db: Client): Promise<Record<string, string>> {
  const { rows } = await db.query<{ label: string; root: string }>(`
    SELECT n.nspname || '.' || c.relname AS label, r.root
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    CROSS JOIN LATERAL (
      SELECT an.nspname || '.' || ac.relname AS root
      FROM pg_partition_ancestors(c.oid) WITH ORDINALITY AS a(relid, depth)
      JOIN pg_partitioned_table p ON p.partrelid = a.relid AND p.partstrat = 'h'
      JOIN pg_class ac ON ac.oid = a.relid JOIN pg_namespace an ON an.oid = ac.relnamespace
      ORDER BY a.depth DESC LIMIT 1) r
    WHERE c.relkind = 'r' AND c.relispartition`);
  return Object.fromEntries(rows.map((row) => [row.label, row.root]));
}

/** Row counts with every hash partition's rows counted under its root (hashPartitionRoots). */
export function rollUpHashPartitions(counts: Record<string, number>, roots: Record<string, string>): Record<string, number> {
  const rolled: Record<string, number> = {};
  for (const [table, rows] of Object.entries(counts)) {
    const key = roots[table] === undefined ? table : `${roots[table]} (all hash partitions)`;
    rolled[key] = (rolled[key] ?? 0) + rows;
  }
  return rolled;
}

/**
 * The statements of globals.sql that create the roles in `missing` and nothing else: each one's
 * CREATE ROLE and ALTER ROLE … WITH (its attributes), and the memberships (GRANT role TO role)
 * whose member is one of them, without their GRANTED BY. Roles that exist are never altered.
 * A role that would come back with SUPERUSER, REPLICATION or BYPASSRLS is refused: an operator
 * creates such a role by hand.
 */
export function globalsForMissingRoles(globals: string, missing: ReadonlySet<string>): string {
  const applied: string[] = [];
  const names = (token: Token | undefined) => token !== undefined && (token.kind === 'word' || token.kind === 'identifier');
  for (const statement of archiveStatements(globals)) {
    const words = statement.map((token) => (token.kind === 'word' ? token.text.toUpperCase() : ''));
    const role = statement[2];
    if (words[0] === 'CREATE' && words[1] === 'ROLE' && statement.length === 3 && names(role) && missing.has(role.value)) {
      applied.push(`CREATE ROLE ${role.text};`);
    } else if (words[0] === 'ALTER' && words[1] === 'ROLE' && words[3] === 'WITH' && names(role) && missing.has(role.value)) {
      const elevated = words.slice(4).find((word) => ['SUPERUSER', 'REPLICATION', 'BYPASSRLS'].includes(word));
      if (elevated) throw new Error(`globals.sql gives the missing role ${role.text} ${elevated}: --with-globals creates no such role; create it yourself, then restore without --with-globals`);
      if (!statement.slice(4).every((token) => token.kind === 'word' || token.kind === 'string' || token.kind === 'number' || token.text === '-')) throw new Error(`globals.sql has attributes of role ${role.text} in an unexpected form`);
      applied.push(`${statement.map((token) => (token.kind === 'string' ? escapeLiteral(token.value) : token.text)).join(' ')};`);
    } else if (words[0] === 'GRANT' && names(statement[1]) && words[2] === 'TO' && names(statement[3]) && missing.has(statement[3].value)) {
      const by = words.indexOf('GRANTED');
      const options = statement.slice(4, by < 0 ? undefined : by);
      if (!options.every((token) => token.kind === 'word' || token.text === ',')) throw new Error(`globals.sql has a membership of role ${statement[3].text} in an unexpected form`);
      applied.push(`${statement.slice(0, 4 + options.length).map((token) => token.text).join(' ')};`);
    }
  }
  return applied.join('\n');
}
