/**
 * Runs the backup tools (pg_dump, redis-cli, …). Secrets travel in the child's environment
 * (PGPASSWORD, REDISCLI_AUTH), never in argv, which `ps` and error messages would show.
 */
import execa from 'execa';

export interface ToolRun {
  /** Extra environment for the child, on top of the agent's own. */
  env?: NodeJS.ProcessEnv;
  /** Aborting kills the tool (the agent is shutting down). */
  signal?: AbortSignal;
  input?: string;
}

const OUTPUT_TAIL = 2000;

/** Runs a tool to completion and returns its stdout; a failure says which tool and why. */
export async function runTool(file: string, args: readonly string[], options: ToolRun = {}): Promise<string> {
  const child = execa(file, [...args], { env: options.env, input: options.input, reject: false });
  const onAbort = () => child.kill('SIGTERM');
  options.signal?.addEventListener('abort', onAbort, { once: true });
  try {
    const result = await child;
    if (!result.failed) return result.stdout;
    if ((result as { code?: string }).code === 'ENOENT') throw new Error(`${file} is not installed (not found on PATH)`);
    const why = result.signal ? `was killed by ${result.signal}` : `exited with ${result.exitCode}`;
    const output = (result.stderr || result.stdout).slice(-OUTPUT_TAIL).trim();
    throw new Error(`${file} ${why}${output ? `: ${output}` : ''}`);
  } finally {
    options.signal?.removeEventListener('abort', onAbort);
  }
}

/** First line of `<tool> --version`, for the manifest. */
export async function toolVersion(file: string): Promise<string> {
  return (await runTool(file, ['--version'])).split('\n')[0].trim();
}
