import type { ContainerLaunch } from './types';

/** Tenantry's start script, uploaded beside the config file it starts the server with. */
const START_SCRIPT_NAME = 'tenantry-start.sh';

/**
 * A container that Tenantry's own start script starts: `config` and the script uploaded into
 * `configDir`, the script as entrypoint (through /bin/sh, so it needs no mode bit of its own).
 */
export function startScriptLaunch(configDir: string, config: { name: string; content: string }, startScript: string, env: string[]): ContainerLaunch {
  const script = `${configDir}/${START_SCRIPT_NAME}`;
  return {
    files: [
      { path: `${configDir}/${config.name}`, content: config.content },
      { path: script, content: startScript, executable: true },
    ],
    entrypoint: ['/bin/sh', script],
    env,
  };
}
