import { Container } from '@cdktf/provider-docker/lib/container';
import { Construct } from 'constructs';
import { ObjectStore, ObjectStoreProps } from '../../../constructs/object-store';
import { unescapeTerraformTemplate } from '../../../constructs/terraform-text';
import { renderMinioSetup } from '../../../runtime/render/minio-setup';
import { container, containers, envOf, labels, NETWORK, RANDOM_PASSWORD_REF, resourcesOf, STORAGE, synth, upload, volumes, onHost } from './support';

const BUCKETS = [{ name: 'images', versioned: true }, { name: 'thumbnails', versioned: false }];

function objectStore(props: Partial<ObjectStoreProps> = {}) {
  let construct: ObjectStore | undefined;
  const out = synth((scope: Construct) => {
    construct = new ObjectStore(scope, 'minio', {
      environment: 'dev',
      tenant: 'acme',
      image: 'minio/minio:RELEASE.2025-04-22T22-12-26Z',
      clientImage: 'minio/mc:RELEASE.2025-04-16T18-13-26Z',
      network: NETWORK,
      storage: STORAGE.volume,
      buckets: BUCKETS,
      memoryMb: 512,
      ...props,
    });
  });
  return { ...out, store: construct! };
}

/** The logical ID of the container resource with this name, as `depends_on` names it. */
function containerAddress(doc: ReturnType<typeof objectStore>['doc'], name: string): string {
  const entry = Object.entries(resourcesOf<{ name: string }>(doc, 'docker_container')).find(([, c]) => c.name === name);
  if (!entry) throw new Error(`no container ${name}`);
  return `docker_container.${entry[0]}`;
}

describe('ObjectStore', () => {
  test('the server: image, command, data volume, root credentials (password by reference)', () => {
    const { json, doc, store } = objectStore();
    const server = container(doc, 'dev-acme-minio');

    expect(json).toHaveResourceWithProperties(Container, {
      name: 'dev-acme-minio',
      image: 'minio/minio:RELEASE.2025-04-22T22-12-26Z',
      command: ['server', '/data', '--console-address', ':9001'],
      memory: 512,
      labels: labels('dev', 'acme', 'minio'),
      restart: 'unless-stopped',
      must_run: true,
    });
    expect(volumes(doc).map((v) => v.name)).toEqual(['dev-acme-minio-data']);
    expect(server.volumes?.[0].container_path).toBe('/data');
    expect(envOf(server)).toEqual({ MINIO_ROOT_USER: 'acme-admin', MINIO_ROOT_PASSWORD: expect.stringMatching(RANDOM_PASSWORD_REF) });
    expect(store.endpoint).toBe('http://dev-acme-minio:9000');
  });

  test('the setup container runs once: must_run false, restart "no", after the server', () => {
    const { json, doc } = objectStore();

    expect(json).toHaveResourceWithProperties(Container, {
      name: 'dev-acme-minio-setup',
      image: 'minio/mc:RELEASE.2025-04-16T18-13-26Z',
      must_run: false,
      restart: 'no',
      labels: labels('dev', 'acme', 'minio-setup'),
      depends_on: [containerAddress(doc, 'dev-acme-minio')],
    });
  });

  test('the setup container gets the root credential of the server, and the secret keys of the two users it creates', () => {
    const { doc } = objectStore();
    const setup = envOf(container(doc, 'dev-acme-minio-setup'));
    const server = envOf(container(doc, 'dev-acme-minio'));
    expect(setup).toMatchObject(server);
    expect(Object.keys(setup).sort()).toEqual(['MINIO_APPLICATION_SECRET_KEY', 'MINIO_BACKUP_SECRET_KEY', 'MINIO_ROOT_PASSWORD', 'MINIO_ROOT_USER']);
    expect(setup.MINIO_APPLICATION_SECRET_KEY).toMatch(RANDOM_PASSWORD_REF);
    expect(setup.MINIO_BACKUP_SECRET_KEY).toMatch(RANDOM_PASSWORD_REF);
    expect(new Set([setup.MINIO_APPLICATION_SECRET_KEY, setup.MINIO_BACKUP_SECRET_KEY, setup.MINIO_ROOT_PASSWORD]).size).toBe(3);
  });

  test('its script is exactly the rendered one: each bucket created, versioning enabled or suspended per bucket', () => {
    const { doc } = objectStore();
    const setup = container(doc, 'dev-acme-minio-setup');
    const rendered = renderMinioSetup({
      endpoint: 'http://dev-acme-minio:9000',
      buckets: [{ name: 'images', versioned: true }, { name: 'thumbnails', versioned: false }],
      applicationUser: 'acme-app',
      backupUser: 'acme-backup',
    });
    const script = upload(setup, rendered.files[0].path);
    const text = unescapeTerraformTemplate(script.content);

    expect(setup.upload).toHaveLength(3);
    expect(text).toBe(rendered.files[0].content);
    expect(script.executable).toBe(true);
    expect(setup.entrypoint).toEqual(rendered.entrypoint);
    expect(text).toContain("mc mb --ignore-existing 'tenantry/images'\n");
    expect(text).toContain("mc version enable 'tenantry/images'\n");
    expect(text).toContain("mc mb --ignore-existing 'tenantry/thumbnails'\n");
    expect(text).toContain("mc version suspend 'tenantry/thumbnails'\n");
  });

  test('without buckets there is no setup container', () => {
    const { doc } = objectStore({ buckets: [] });
    expect(containers(doc).map((c) => c.name)).toEqual(['dev-acme-minio']);
  });

  test('publishes the S3 API and console only when both ports are given', () => {
    expect(container(objectStore().doc, 'dev-acme-minio').ports).toBeUndefined();
    expect(container(objectStore({ publishedPorts: { api: onHost(20004), console: onHost(20005) } }).doc, 'dev-acme-minio').ports).toEqual([
      { internal: 9000, external: 20004, ip: '127.0.0.1' },
      { internal: 9001, external: 20005, ip: '127.0.0.1' },
    ]);
  });

  test('a bucket name the renderer rejects fails at synth with its value', () => {
    expect(() => objectStore({ buckets: [{ name: 'Bad_Bucket', versioned: false }] })).toThrow(/buckets\[0\]\.name must be a valid S3 bucket name \(value: "Bad_Bucket"\)/);
  });
});
