import { Container } from '@cdktf/provider-docker/lib/container';
import { Image } from '@cdktf/provider-docker/lib/image';
import { Annotations, IAspect, Token } from 'cdktf';
import { IConstruct } from 'constructs';
import { isPinned } from '../config/images';

/*
 * Policies that hold for every stack, whatever built the resources: they visit the construct tree
 * after construction and report through Annotations, so `Testing.synth(stack, true)` sees them and
 * main.ts prints them as errors. The config layer refuses every configuration that would trip one,
 * at the key to change (the image schema, config/checks/policy.ts; test/unit/synth/policy-twins.test.ts
 * checks that on generated configs); these are the guard for constructs used directly as a library.
 */

/** Every image pinned to a version: a tag other than `latest`, or a digest. */
export class PinnedImagesPolicy implements IAspect {
  visit(node: IConstruct): void {
    if (!(node instanceof Image)) return;
    const name = node.nameInput;
    if (name === undefined || Token.isUnresolved(name)) return;
    if (!isPinned(name)) {
      Annotations.of(node).addError(`image "${name}" is not pinned to a version: use a tag other than "latest" (e.g. postgres:16-alpine) or a digest`);
    }
  }
}

/** Every container has a memory limit, so one tenant cannot starve a host shared with others. */
export class MemoryLimitPolicy implements IAspect {
  visit(node: IConstruct): void {
    if (!(node instanceof Container)) return;
    const memory = node.memoryInput;
    if (memory === undefined || (!Token.isUnresolved(memory) && memory <= 0)) {
      Annotations.of(node).addError(`container "${node.nameInput}" has no memory limit: set memoryMb`);
    }
  }
}

const DATA_SERVICES = new Set(['postgres', 'pgbouncer', 'redis', 'sentinel']);

/** In production, database and Redis ports stay on the Docker network unless the environment opts in. */
export class ProductionDataPortsPolicy implements IAspect {
  constructor(
    private readonly environment: string,
    private readonly production: boolean,
    private readonly allowDataPorts: boolean,
  ) {}

  visit(node: IConstruct): void {
    if (!this.production || this.allowDataPorts || !(node instanceof Container)) return;
    const labels = node.labelsInput;
    const service = Array.isArray(labels) ? labels.find((l) => l.label === 'tenantry.service')?.value : undefined;
    const ports = node.portsInput;
    if (service && DATA_SERVICES.has(service) && Array.isArray(ports) && ports.length > 0) {
      Annotations.of(node).addError(
        `container "${node.nameInput}" publishes a ${service} port in production environment "${this.environment}": set ports.publish: false, or ports.allowDataPortsInProduction: true if you really mean it`,
      );
    }
  }
}
