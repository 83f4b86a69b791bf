import type { Problem } from '../config/source';
import { formatProblem } from '../config/source';

/**
 * What can end a command, and its exit code: 2 the user asked for something that cannot be meant
 * (usage, configuration), 1 the operation itself failed. Anything else that is thrown is reported
 * as a failed operation, by its message alone: the CLI never prints a stack trace.
 */
export const EXIT = { ok: 0, failed: 1, usage: 2, dataAtRisk: 3 } as const;

export class UsageError extends Error {
  readonly exitCode = EXIT.usage;
}

/** The configuration has problems: each printed as `file:line:col: message`, as `npm run synth` prints them. */
export class ConfigurationError extends Error {
  readonly exitCode = EXIT.usage;
  readonly lines: string[];
  constructor(problems: readonly (Problem | string)[], summary: string) {
    super(summary);
    this.lines = problems.map((p) => (typeof p === 'string' ? p : formatProblem(p)));
  }
}

export class OperationFailed extends Error {
  readonly exitCode = EXIT.failed;
}
