import type { CliCommand } from './context';
import { addTenant } from './commands/add-tenant';
import { plan } from './commands/plan';

/** Every subcommand of `tenantry`, in the order `--help` lists them. A new command is a file in cli/commands/ and a line here. */
export const COMMANDS: readonly CliCommand[] = [addTenant, plan];
