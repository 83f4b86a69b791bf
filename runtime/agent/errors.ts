/**
 * A mistake the person running the agent can fix (bad flag, unknown job, missing config file).
 * The CLI prints its message as one line on stderr and exits 2, without a stack trace.
 */
export class UserError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UserError';
  }
}

/** The message of anything thrown, for logs and manifests (never a stack trace). */
export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
