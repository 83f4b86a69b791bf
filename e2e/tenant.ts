/**
 * One tenant's containers as Docker would create them from the synthesized stack: every string
 * evaluated as Terraform would (escapes undone, random_password references replaced by generated
 * values), upload blocks as the files the container sees.
 */
import type { RenderedFile } from '../runtime/render/types';
import { evaluateString, SynthesizedContainer, SynthesizedStack } from './terraform';

export interface TenantContainer {
  /** Container name, also its hostname on the environment network. */
  name: string;
  /** The `tenantry.service` label: postgres, pgbouncer, redis, sentinel, backup, … */
  service: string;
  /** Replaces the image's entrypoint when set. */
  entrypoint?: string[];
  command?: string[];
  env: Record<string, string>;
  files: RenderedFile[];
  /** Ports the service listens on inside the container (published or not). */
  internalPorts: number[];
  /** Container paths of its volumes. */
  volumes: string[];
  /** Per container path: the host path or volume name behind it, and whether it is mounted read-only. */
  volumeSources: Record<string, { source: string; readOnly: boolean }>;
  /** The CMD-SHELL healthcheck command. */
  healthcheck?: string;
  /** Docker runtime settings the drill does not reproduce (listed in the translation table). */
  runtime: { memoryMb?: number; restart?: string; published: string[] };
}

/**
 * Ports each service listens on inside its container. Needed because an environment that does
 * not publish ports has no `ports` blocks; where blocks exist they must agree (checked).
 */
export const SERVICE_PORTS: Readonly<Record<string, readonly number[]>> = {
  postgres: [5432],
  pgbouncer: [6432],
  redis: [6379],
  sentinel: [26379],
  backup: [9187],
  qdrant: [6333, 6334],
  minio: [9000, 9001],
  'minio-setup': [],
};

function label(container: SynthesizedContainer, name: string): string | undefined {
  return container.labels?.find((l) => l.label === name)?.value;
}

/** The tenant's containers as the drill runs them; template text Terraform would evaluate in an upload is an error. */
export function tenantContainers(stack: SynthesizedStack, tenant: string, secrets: Record<string, string>): TenantContainer[] {
  const containers = stack.containers.filter((c) => label(c, 'tenantry.tenant') === tenant);
  if (containers.length === 0) throw new Error(`${stack.file}: no docker_container labelled tenantry.tenant=${tenant}`);
  return containers
    .map((c) => {
      const where = (part: string) => `${stack.file}: ${c.name} ${part}`;
      const service = label(c, 'tenantry.service');
      if (!service) throw new Error(where('has no tenantry.service label'));
      const internalPorts = [...(SERVICE_PORTS[service] ?? [])];
      for (const published of c.ports ?? []) {
        if (!internalPorts.includes(published.internal)) {
          throw new Error(where(`publishes internal port ${published.internal}, which the drill does not know for service "${service}" (known: ${internalPorts.join(', ') || 'none'})`));
        }
      }
      const evaluate = (text: string, part: string) => evaluateString(text, secrets, where(part));
      const env: Record<string, string> = {};
      for (const entry of c.env ?? []) {
        const value = evaluate(entry, 'env');
        const eq = value.indexOf('=');
        env[value.slice(0, eq)] = value.slice(eq + 1);
      }
      const test = c.healthcheck?.test;
      return {
        name: c.name,
        service,
        entrypoint: c.entrypoint?.map((arg) => evaluate(arg, 'entrypoint')),
        command: c.command?.map((arg) => evaluate(arg, 'command')),
        env,
        files: (c.upload ?? []).map((u) => ({ path: u.file, content: evaluateString(u.content, secrets, where(`upload ${u.file}`)), executable: u.executable ?? false })),
        internalPorts,
        volumes: (c.volumes ?? []).map((v) => v.container_path),
        volumeSources: Object.fromEntries((c.volumes ?? []).map((v) => [v.container_path, { source: v.host_path ?? v.volume_name ?? v.container_path, readOnly: v.read_only ?? false }])),
        healthcheck: test && test[0] === 'CMD-SHELL' ? evaluate(test[1], 'healthcheck') : undefined,
        runtime: { memoryMb: c.memory, restart: c.restart, published: (c.ports ?? []).filter((p) => p.external !== undefined).map((p) => `${p.ip ?? '0.0.0.0'}:${p.external}→${p.internal}`) },
      };
    })
    .sort((a, b) => a.name.localeCompare(b.name));
}
