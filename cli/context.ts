import type { Command } from 'commander';
import { createColors } from 'picocolors';
import { configRoot } from '../config/load';

type Colors = ReturnType<typeof createColors>;

/** Where a command writes and what it knows of its terminal: process's in the bin, captured in tests. */
export interface CliIO {
  readonly stdout: (text: string) => void;
  readonly stderr: (text: string) => void;
  /** Whether stdout is a terminal (colour, progress bars). */
  readonly isTTY: boolean;
  readonly env: NodeJS.ProcessEnv;
  /** The terminal progress bars draw on (stdout when it is one). @default none: progress is printed as lines */
  readonly terminal?: NodeJS.WriteStream;
  /**
   * Asks a yes/no question on the terminal; undefined when stdin is not one (a command that must
   * ask then refuses, unless told --yes).
   */
  readonly ask?: (question: string) => Promise<string>;
}

export interface CliContext {
  readonly io: CliIO;
  /** The configuration directory: --config-dir, else TENANTRY_CONFIG_DIR, else the working directory (as `npm run synth`). */
  configDir(command: Command): string;
  /** Colours for stdout: on in a terminal unless --no-color or NO_COLOR says otherwise. */
  colors(command: Command): Colors;
  /** A command's outcome when it is not 0 (e.g. plan's 3: data at risk). */
  exitWith(code: number): void;
}

/** A subcommand: one file under cli/commands/, listed in cli/commands.ts. */
export interface CliCommand {
  register(program: Command, context: CliContext): void;
}

export function cliContext(io: CliIO, exitWith: (code: number) => void): CliContext {
  const globals = (command: Command) => command.optsWithGlobals<{ configDir?: string; color: boolean }>();
  return {
    io,
    configDir: (command) => {
      const dir = globals(command).configDir;
      return dir === undefined ? configRoot(io.env) : configRoot({ TENANTRY_CONFIG_DIR: dir });
    },
    // https://no-color.org: any non-empty NO_COLOR turns colour off.
    colors: (command) => createColors(globals(command).color && io.isTTY && !io.env.NO_COLOR),
    exitWith,
  };
}
