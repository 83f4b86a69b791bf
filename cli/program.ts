import { Command, CommanderError } from 'commander';
import { COMMANDS } from './commands';
import { cliContext, CliIO } from './context';
import { ConfigurationError, EXIT, OperationFailed, UsageError } from './errors';

/** The `tenantry` program: global options, every command of cli/commands.ts, and errors as one line. */
export function tenantryProgram(io: CliIO, exitWith: (code: number) => void = () => undefined): Command {
  const program = new Command('tenantry')
    .description('Operate a Tenantry fleet: its health and backups on each environment\'s Docker host, backups and restores now, new tenants, and what a configuration change does before it is applied.')
    .option('--config-dir <dir>', 'the configuration directory (environments/, tenants/)', undefined)
    .option('--no-color', 'plain output even in a terminal (NO_COLOR does the same)')
    .configureOutput(output(io))
    .exitOverride();
  program.addHelpText('after', '\nThe configuration directory defaults to TENANTRY_CONFIG_DIR, else the working directory.\nEach environment\'s Docker host is its docker.host (ssh:// uses your ssh, its config and known_hosts); DOCKER_HOST overrides it.\nExit codes: 0 done, 1 the operation failed (status: something is unhealthy or late), 2 a usage or configuration mistake, 3 (plan) data at risk.');
  const context = cliContext(io, exitWith);
  for (const command of COMMANDS) command.register(program, context);
  for (const sub of program.commands) sub.exitOverride().configureOutput(output(io));
  return program;
}

/** Commander's usage errors as the CLI's other errors read: one line, "tenantry: ...", with where to look. */
function output(io: CliIO) {
  return {
    writeOut: io.stdout,
    writeErr: io.stderr,
    outputError: (text: string, write: (text: string) => void) => write(`tenantry: ${text.replace(/^error: /, '').trimEnd()} (see tenantry --help)\n`),
  };
}

/**
 * Runs `tenantry` with `argv` (the arguments after the program name) and returns the exit code.
 * A command's action returns its exit code; errors become one line on stderr (configuration
 * problems one line each, as `npm run synth` prints them).
 */
export async function runTenantry(argv: readonly string[], io: CliIO): Promise<number> {
  let code: number = EXIT.ok;
  const program = tenantryProgram(io, (c) => (code = c));
  try {
    await program.parseAsync([...argv], { from: 'user' });
    return code;
  } catch (error) {
    return report(error, io);
  }
}

function report(error: unknown, io: CliIO): number {
  if (error instanceof CommanderError) {
    // Commander has printed its message (and the help hint) already; --help and --version end here too.
    return error.exitCode === 0 ? EXIT.ok : EXIT.usage;
  }
  if (error instanceof ConfigurationError) {
    for (const line of error.lines) io.stderr(`${line}\n`);
    io.stderr(`${error.message}\n`);
    return error.exitCode;
  }
  if (error instanceof UsageError || error instanceof OperationFailed) {
    io.stderr(`tenantry: ${error.message}\n`);
    return error.exitCode;
  }
  io.stderr(`tenantry: ${error instanceof Error ? error.message : String(error)}\n`);
  return EXIT.failed;
}
