/**
 * Building blocks for the POSIX sh scripts that start containers (alpine busybox sh). The e2e
 * drill runs the same scripts as local processes, so they use nothing beyond busybox.
 */

/** Quotes a value for sh: single quotes, each embedded ' written as '\''. */
export function shQuote(value: string): string {
  return `'${value.replace(/'/g, `'\\''`)}'`;
}

/** `: "${NAME:?…}"` stops the script, naming the variable, when it is unset or empty. */
export function requireEnvLine(name: string): string {
  return `: "\${${name}:?${name} must be set}"`;
}

/**
 * A complete script: shebang, the comment lines that say why it exists, `set -eu`, the body.
 * `set -eu` makes a failed step or a missing variable stop the container instead of starting a
 * half-configured server.
 */
export function shellScript(why: string[], body: string[]): string {
  return ['#!/bin/sh', ...why.map((line) => `# ${line}`), 'set -eu', ...body, ''].join('\n');
}
