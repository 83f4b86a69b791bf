/**
 * The off-site client, loaded on first use: offsite.ts pulls in the AWS SDK, about 50 ms of every
 * agent start, which most commands (`status`, `list`, a run without off-site copies) never need,
 * and `tenantry status` runs the agent once per tenant.
 */
import type { OffsiteConfig } from './config';
import type { Logger } from './log';
import type { Offsite } from './offsite';

export async function openOffsite(config: OffsiteConfig, env: NodeJS.ProcessEnv, log: Logger): Promise<Offsite> {
  const { Offsite: Client } = await import('./offsite');
  return new Client(config, env, log);
}
