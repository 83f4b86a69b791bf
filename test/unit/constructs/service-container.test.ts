import { Container } from '@cdktf/provider-docker/lib/container';
import { Construct } from 'constructs';
import { CONTAINER_PRIVILEGES, ContainerService } from '../../../constructs/container-privileges';
import { ServiceContainer, ServiceContainerProps } from '../../../constructs/service-container';
import { container, labels, NETWORK, onHost, synth } from './support';

const BASE: ServiceContainerProps = {
  environment: 'dev',
  tenant: 'acme',
  service: 'qdrant',
  image: 'busybox:1.36',
  network: NETWORK,
  launch: { files: [], env: [] },
  env: {},
  memoryMb: 32,
};

function serviceContainer(props: Partial<ServiceContainerProps> = {}) {
  return synth((scope: Construct) => {
    new ServiceContainer(scope, 'qdrant', { ...BASE, ...props });
  });
}

describe('ServiceContainer', () => {
  test('entrypoint and command arguments reach the container as written: Terraform template syntax is escaped', () => {
    // A Postgres parameter from YAML: `log_line_prefix: "${HOME} %{x} $user 'q'"` becomes one -c argument.
    const argument = `log_line_prefix=\${HOME} %{x} $user 'q' `;
    const { json } = serviceContainer({ launch: { files: [], env: [], entrypoint: ['/bin/sh', '-c', 'echo ${A}'], command: ['postgres', '-c', argument] } });

    expect(json).toHaveResourceWithProperties(Container, {
      entrypoint: ['/bin/sh', '-c', 'echo $${A}'],
      command: ['postgres', '-c', `log_line_prefix=$\${HOME} %%{x} $user 'q' `],
    });
  });

  test('name and hostname <env>-<tenant>-<service>[-<n>], network alias, the three labels', () => {
    const { json } = serviceContainer({ index: 2 });

    expect(json).toHaveResourceWithProperties(Container, {
      name: 'dev-acme-qdrant-2',
      hostname: 'dev-acme-qdrant-2',
      labels: labels('dev', 'acme', 'qdrant'),
      networks_advanced: [{ name: NETWORK, aliases: ['dev-acme-qdrant-2'] }],
      memory: 32,
      restart: 'unless-stopped',
      must_run: true,
      attach: false,
      log_driver: 'json-file',
      log_opts: { 'max-size': '10m', 'max-file': '3' },
    });
  });

  test('a one-shot container is not restarted and need not keep running', () => {
    const { json } = serviceContainer({ oneShot: true });
    expect(json).toHaveResourceWithProperties(Container, { name: 'dev-acme-qdrant', restart: 'no', must_run: false });
  });

  test('uploads sorted by path, executable false unless said', () => {
    const { doc } = serviceContainer({
      launch: {
        files: [
          { path: '/etc/z.conf', content: 'z\n' },
          { path: '/etc/a.sh', content: '#!/bin/sh\n', executable: true },
        ],
        env: [],
      },
    });

    expect(container(doc, 'dev-acme-qdrant').upload).toEqual([
      { file: '/etc/a.sh', content: '#!/bin/sh\n', executable: true },
      { file: '/etc/z.conf', content: 'z\n', executable: false },
    ]);
  });

  test('env sorted by name', () => {
    const { doc } = serviceContainer({ launch: { files: [], env: ['B', 'A'] }, env: { B: '2', A: '1', C: '3' } });
    expect(container(doc, 'dev-acme-qdrant').env).toEqual(['A=1', 'B=2', 'C=3']);
  });

  test('a variable the launch needs but no value was given for fails at synth, by name', () => {
    expect(() => serviceContainer({ launch: { files: [], env: ['TOKEN', 'OTHER'] }, env: { OTHER: 'x' } })).toThrow(
      'qdrant: the container needs environment variable(s) TOKEN but no value was given',
    );
  });

  test.each([0, -1, Number.NaN])('memoryMb %p is refused', (memoryMb) => {
    expect(() => serviceContainer({ memoryMb })).toThrow(`qdrant: memoryMb must be positive (value: ${memoryMb})`);
  });

  test('a healthcheck command becomes CMD-SHELL with fixed timings', () => {
    const { doc } = serviceContainer({ healthcheck: 'true' });
    expect(container(doc, 'dev-acme-qdrant').healthcheck).toEqual({ test: ['CMD-SHELL', 'true'], interval: '10s', timeout: '5s', retries: 5, start_period: '30s' });
  });

  test('published ports bind the address they are given (the environment\'s ports.address)', () => {
    const { doc } = serviceContainer({ publishedPorts: [{ internal: 80, host: onHost(28080) }, { internal: 81, host: onHost(28081, '::1') }] });
    expect(container(doc, 'dev-acme-qdrant').ports).toEqual([
      { internal: 80, external: 28080, ip: '127.0.0.1' },
      { internal: 81, external: 28081, ip: '::1' },
    ]);
  });

  test.each(Object.entries(CONTAINER_PRIVILEGES))('%s: no new privileges, ALL capabilities dropped, only its own added back', (service, privileges) => {
    const launch = privileges.readOnlyRootFilesystem ? { files: [], env: [] } : { files: [{ path: '/etc/x.conf', content: 'x\n' }], env: [] };
    const { doc } = serviceContainer({ service: service as ContainerService, launch });
    const c = container(doc, `dev-acme-${service}`);
    expect(c.security_opts).toEqual(['no-new-privileges:true']);
    expect(c.capabilities).toEqual(privileges.capabilities.length > 0 ? { drop: ['ALL'], add: [...privileges.capabilities] } : { drop: ['ALL'] });
    expect(c.read_only).toBe(privileges.readOnlyRootFilesystem ? true : undefined);
  });

  test('the backup agent\'s root file system is read-only, so an upload into it is refused at synth, naming the file', () => {
    expect(() => serviceContainer({ service: 'backup', launch: { files: [{ path: '/etc/tenantry/agent.json', content: '{}' }], env: [] } })).toThrow(
      "backup: the container's root file system is read-only, so Docker would refuse its upload(s) /etc/tenantry/agent.json; pass them through the environment or a volume",
    );
  });
});
