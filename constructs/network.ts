import { Network } from '@cdktf/provider-docker/lib/network';
import { Construct } from 'constructs';

export interface EnvironmentNetworkProps {
  /** The environment's name: the first part of every container and volume name, and their `tenantry.env` label. */
  readonly environment: string;
  /** The Docker network's name (the environment's `network.name`). */
  readonly name: string;
  /** IPv4 CIDR, e.g. "172.30.0.0/16". */
  readonly subnet: string;
}

/**
 * The environment's bridge network. Containers find each other by name on it (Docker's embedded
 * DNS), which is what Sentinel's announced hostnames and PgBouncer's server host rely on.
 */
export class EnvironmentNetwork extends Construct {
  readonly name: string;

  constructor(scope: Construct, id: string, props: EnvironmentNetworkProps) {
    super(scope, id);
    if (!/^(\d{1,3}\.){3}\d{1,3}\/\d{1,2}$/.test(props.subnet)) {
      throw new Error(`network "${props.name}": subnet must be an IPv4 CIDR like 172.30.0.0/16 (value: ${props.subnet})`);
    }
    const network = new Network(this, 'network', {
      name: props.name,
      driver: 'bridge',
      ipamConfig: [{ subnet: props.subnet }],
      labels: [
        { label: 'tenantry.env', value: props.environment },
        { label: 'tenantry.service', value: 'network' },
      ],
    });
    this.name = network.name;
  }
}
