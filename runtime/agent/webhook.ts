/**
 * Failure notices as Slack-compatible JSON (`{"text": …}`), which Slack, Mattermost, Rocket.Chat
 * and most chat bridges accept. The URL is a secret (it authorizes posting), so it is read from
 * the environment variable the config names and never logged.
 */
import type { AgentConfig } from './config';
import type { Logger } from './log';

export type Notify = (text: string) => Promise<void>;

const TIMEOUT_MS = 10_000;

export function createNotifier(config: AgentConfig, env: NodeJS.ProcessEnv, log: Logger): Notify {
  const variable = config.webhook?.urlEnv;
  if (variable === undefined) return async () => undefined;
  const prefix = `[tenantry ${config.environment}/${config.tenant}]`;
  return async (text) => {
    const url = env[variable];
    if (!url) {
      log.warn('webhook not sent: its environment variable is empty', { variable });
      return;
    }
    try {
      const response = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ text: `${prefix} ${text}` }),
        signal: AbortSignal.timeout(TIMEOUT_MS),
      });
      if (!response.ok) log.warn('webhook answered with an error', { status: response.status });
    } catch (error) {
      // A chat outage must not fail a backup: the failure is in the log and the metrics anyway.
      log.warn('webhook not delivered', { error: (error as Error).message });
    }
  };
}
