import type { z } from 'zod';
import type { StorageConfig, TenantConfig } from './model';
import type { PublishedPort, TenantPorts } from './ports';
import type { EnvironmentFile, TenantFile, tenantEnvironmentSchema, TenantServices } from './schema';
import type { ConfigPath, SourceFile } from './source';

/*
 * The config files after validation and before resolution: what config/load.ts hands to the
 * cross-file checks (config/cross-checks.ts, config/checks/). Their own module, so that the
 * checks and the loader that runs them do not import each other.
 */

export interface ParsedEnvironment {
  readonly file: SourceFile;
  readonly env: EnvironmentFile;
  /** `env.storage` with a relative dataRoot made absolute: what the checks compare and the constructs get. */
  readonly storage: StorageConfig;
}

/** One tenant in one environment, validated, with its backup jobs and host ports worked out once. */
export interface ParsedDeployment {
  readonly file: SourceFile;
  readonly tenant: TenantFile;
  readonly environment: ParsedEnvironment;
  readonly services: TenantServices;
  readonly backup: z.output<typeof tenantEnvironmentSchema>['backup'];
  /** Backup job per stateful service (environment and base defaults applied). */
  readonly jobs: TenantConfig['backup'];
  /** Host ports, where the environment publishes them and the tenant has a port slot. */
  readonly ports: TenantPorts<PublishedPort>;
  /** Where a path inside the merged settings was written: the override for this environment, or the base. */
  readonly locate: (at: ConfigPath) => ConfigPath;
}
