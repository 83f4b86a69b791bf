import type { CliCommand } from './context';
import { addTenant } from './commands/add-tenant';
import { backup } from './commands/backup';
import { backups } from './commands/backups';
import { restore } from './commands/restore';
import { status } from './commands/status';
import { plan } from './commands/plan';

/** Every subcommand of `tenantry`, in the order `--help` lists them. A new command is a file in cli/commands/ and a line here. */
export const COMMANDS: readonly CliCommand[] = [status, backups, backup, restore, addTenant, plan];
