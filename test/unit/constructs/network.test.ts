import { Network } from '@cdktf/provider-docker/lib/network';
import { Image } from '@cdktf/provider-docker/lib/image';
import { Construct } from 'constructs';
import { EnvironmentImages } from '../../../constructs/images';
import { EnvironmentNetwork } from '../../../constructs/network';
import { ServiceContainer } from '../../../constructs/service-container';
import { container, resourcesOf, synth } from './support';

describe('EnvironmentNetwork', () => {
  test('a labelled bridge network with the configured subnet; containers join it by reference', () => {
    const { json, doc } = synth((scope: Construct) => {
      const network = new EnvironmentNetwork(scope, 'network', { environment: 'dev', name: 'tenantry-dev', subnet: '172.30.0.0/16' });
      new ServiceContainer(scope, 'c', {
        environment: 'dev',
        tenant: 'acme',
        service: 'qdrant',
        image: 'busybox:1.36',
        network: network.name,
        launch: { files: [], env: [] },
        env: {},
        memoryMb: 16,
      });
    });

    expect(json).toHaveResourceWithProperties(Network, {
      name: 'tenantry-dev',
      driver: 'bridge',
      ipam_config: [{ subnet: '172.30.0.0/16' }],
      labels: [
        { label: 'tenantry.env', value: 'dev' },
        { label: 'tenantry.service', value: 'network' },
      ],
    });
    const [networkId] = Object.keys(resourcesOf(doc, 'docker_network'));
    expect(container(doc, 'dev-acme-qdrant').networks_advanced[0].name).toBe(`\${docker_network.${networkId}.name}`);
  });

  test.each(['172.30.0.0', '172.30.0.0/x', 'fd00::/64', ''])('refuses subnet %p, naming the network and the value', (subnet) => {
    expect(() => synth((scope) => new EnvironmentNetwork(scope, 'network', { environment: 'dev', name: 'tenantry-dev', subnet }))).toThrow(
      `network "tenantry-dev": subnet must be an IPv4 CIDR like 172.30.0.0/16 (value: ${subnet})`,
    );
  });
});

describe('EnvironmentImages', () => {
  test('one docker_image per distinct reference, kept locally; containers use its image ID', () => {
    const { json, doc } = synth((scope: Construct) => {
      const images = new EnvironmentImages(scope, 'images');
      ['postgres:16-alpine', 'redis:7.4.2-alpine', 'postgres:16-alpine'].forEach((reference, i) =>
        new ServiceContainer(scope, `c${i}`, {
          environment: 'dev',
          tenant: 'acme',
          service: 'qdrant',
          index: i,
          image: images.use(reference),
          network: 'tenantry-dev',
          launch: { files: [], env: [] },
          env: {},
          memoryMb: 16,
        }),
      );
    });
    const imageIds = Object.keys(resourcesOf(doc, 'docker_image'));
    const imageOf = (i: number) => container(doc, `dev-acme-qdrant-${i}`).image;

    expect(imageIds).toHaveLength(2);
    expect(json).toHaveResourceWithProperties(Image, { name: 'postgres:16-alpine', keep_locally: true });
    expect(json).toHaveResourceWithProperties(Image, { name: 'redis:7.4.2-alpine', keep_locally: true });
    expect(imageOf(0)).toMatch(/^\$\{docker_image\.[^.]+\.image_id\}$/);
    expect(imageOf(0)).toBe(imageOf(2));
    expect(imageOf(0)).not.toBe(imageOf(1));
  });

  test('the image logical ID depends only on the reference, not on the order of use', () => {
    const ids = (refs: string[]) =>
      Object.keys(
        resourcesOf(
          synth((scope: Construct) => {
            const images = new EnvironmentImages(scope, 'images');
            refs.forEach((r) => images.use(r));
          }).doc,
          'docker_image',
        ),
      ).sort();

    expect(ids(['postgres:16-alpine', 'redis:7.4.2-alpine'])).toEqual(ids(['redis:7.4.2-alpine', 'postgres:16-alpine']));
  });
});
