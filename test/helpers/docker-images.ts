import { spawn, spawnSync } from 'child_process';
import { createHash } from 'crypto';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import type Docker from 'dockerode';
import { DEFAULT_IMAGES } from '../../config/images';
import { AGENT_DOCKERFILE, agentImageContext, writeAgentImageContext } from '../../stacks/backup-image';
import { REPO } from './build';

/*
 * The images the Docker tests run, made here because no registry can be reached (TESTING.md):
 * a Debian bookworm minbase made by debootstrap and imported, and from it local equivalents of the
 * images a deploy runs, plus the backup agent built from its real Dockerfile. Each is tagged with a
 * hash of everything it is made from, so a run finds the previous run's images in the daemon's
 * data root and builds only what changed (and `docker build` reuses its layer cache for the rest).
 */

const IMAGES_DIR = path.join(REPO, 'test', 'docker', 'images');
const REPOSITORY = 'tenantry-test';
const DEBIAN = { suite: 'bookworm', variant: 'minbase', mirror: 'http://deb.debian.org/debian' } as const;
/** The Postgres major Debian bookworm packages, so the only one whose official image is replaced. */
export const LOCAL_POSTGRES_MAJOR = 15;

/** One production image and what runs in its place in the Docker tests. */
export interface ImageSubstitution {
  /**
   * The image as the synthesized JSON names it (docker_image.name), or `build:<dockerfile>` for an
   * image synth builds (the backup agent), or `build-arg <NAME>=<image>` for a base the build uses.
   */
  readonly production: string;
  readonly local: string;
  /** What the local image is and how it differs. */
  readonly how: string;
}

export interface TestImages {
  readonly base: string;
  readonly postgres: string;
  readonly pgbouncer: string;
  readonly redis: string;
  readonly node: string;
  readonly agent: string;
  /** THE list of substitutions: every production image the tests replace, and by what. */
  readonly substitutions: readonly ImageSubstitution[];
  /** Images built by this call (empty when every one was already in the daemon). */
  readonly built: readonly string[];
}

/** The substitution table as text, one line per image, for the test log. */
export function formatSubstitutions(substitutions: readonly ImageSubstitution[]): string {
  return substitutions.map((s) => `  ${s.production}  ->  ${s.local}\n      ${s.how}`).join('\n');
}

function sha(parts: readonly (string | Buffer)[]): string {
  const hash = createHash('sha256');
  for (const part of parts) hash.update(typeof part === 'string' ? `${part.length}:${part}` : part);
  return hash.digest('hex').slice(0, 16);
}

/** Every file below `dir` as (relative path, mode, content), sorted: a build context's identity. */
function contextParts(dir: string): string[] {
  const parts: string[] = [];
  const walk = (relative: string) => {
    for (const entry of fs.readdirSync(path.join(dir, relative), { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
      const child = path.posix.join(relative, entry.name);
      if (entry.isDirectory()) walk(child);
      else {
        const absolute = path.join(dir, child);
        parts.push(child, String(fs.statSync(absolute).mode & 0o777), fs.readFileSync(absolute, 'latin1'));
      }
    }
  };
  walk('');
  return parts;
}

async function exists(docker: Docker, reference: string): Promise<boolean> {
  try {
    await docker.getImage(reference).inspect();
    return true;
  } catch {
    return false;
  }
}

/** A folder as a tar stream (for the Engine API's build and import). */
function tarOf(dir: string): NodeJS.ReadableStream {
  const tar = spawn('tar', ['-C', dir, '--numeric-owner', '-c', '.'], { stdio: ['ignore', 'pipe', 'inherit'] });
  return tar.stdout;
}

/** Follows a build or import stream to its end; a build error (the last lines of its log) is thrown. */
function follow(docker: Docker, stream: NodeJS.ReadableStream, what: string): Promise<void> {
  const log: string[] = [];
  return new Promise((resolve, reject) => {
    docker.modem.followProgress(
      stream,
      (error: Error | null, output: { error?: string; errorDetail?: { message?: string } }[]) => {
        const failed = error?.message ?? output.find((o) => o.error)?.error;
        if (failed) reject(new Error(`${what} failed: ${failed}\n${log.slice(-40).join('')}`));
        else resolve();
      },
      (event: { stream?: string; status?: string }) => {
        if (event.stream) log.push(event.stream);
      },
    );
  });
}

async function build(docker: Docker, contextDir: string, tag: string, options: { dockerfile?: string; buildargs?: Record<string, string> }): Promise<void> {
  const stream = await docker.buildImage(tarOf(contextDir), { t: tag, dockerfile: options.dockerfile ?? 'Dockerfile', buildargs: options.buildargs ?? {}, rm: true, forcerm: true });
  await follow(docker, stream, `docker build ${tag}`);
}

function debootstrapVersion(): string {
  const result = spawnSync('dpkg-query', ['-W', '-f', '${Version}', 'debootstrap'], { encoding: 'utf8' });
  if (result.status !== 0) throw new Error('debootstrap is not installed: run bash test/install-servers.sh as root (it installs docker.io and debootstrap)');
  return result.stdout;
}

/** `debootstrap --variant=minbase bookworm`, imported as an image (about 35 s, once). */
async function baseImage(docker: Docker, built: string[]): Promise<string> {
  const tag = `${REPOSITORY}/debian:${DEBIAN.suite}-${sha([DEBIAN.suite, DEBIAN.variant, DEBIAN.mirror, debootstrapVersion()])}`;
  if (await exists(docker, tag)) return tag;
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'debootstrap-'));
  try {
    const result = spawnSync('debootstrap', [`--variant=${DEBIAN.variant}`, DEBIAN.suite, root, DEBIAN.mirror], { encoding: 'utf8', maxBuffer: 64 << 20 });
    if (result.status !== 0) throw new Error(`debootstrap --variant=${DEBIAN.variant} ${DEBIAN.suite} failed (exit ${result.status}):\n${(result.stderr || result.stdout).slice(-3000)}`);
    // The apt lists and package cache are not part of the base (each build runs apt-get update).
    fs.rmSync(path.join(root, 'var', 'cache', 'apt', 'archives'), { recursive: true, force: true });
    fs.mkdirSync(path.join(root, 'var', 'cache', 'apt', 'archives', 'partial'), { recursive: true });
    const [repo, version] = tag.split(':');
    const stream = await docker.importImage(tarOf(root) as unknown as string, { repo, tag: version });
    await follow(docker, stream, `docker import ${tag}`);
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
  built.push(tag);
  return tag;
}

/** An image from one of test/docker/images/<name>, FROM the base. */
async function localImage(docker: Docker, name: string, version: string, base: string, built: string[]): Promise<string> {
  const dir = path.join(IMAGES_DIR, name);
  const tag = `${REPOSITORY}/${name}:${version}-${sha([base, ...contextParts(dir)])}`;
  if (await exists(docker, tag)) return tag;
  await build(docker, dir, tag, { buildargs: { BASE_IMAGE: base } });
  built.push(tag);
  return tag;
}

/** The machine's CA bundle (Debian's path), which the Node image trusts in addition to Node's own. */
const HOST_CA_BUNDLE = '/etc/ssl/certs/ca-certificates.crt';

/** Debian bookworm with this machine's Node and npm (Debian bookworm packages only Node 18). */
async function nodeImage(docker: Docker, base: string, built: string[]): Promise<string> {
  const dir = path.join(IMAGES_DIR, 'node');
  const npmDir = path.join(path.dirname(path.dirname(fs.realpathSync(process.execPath))), 'lib', 'node_modules', 'npm');
  const npmVersion = (JSON.parse(fs.readFileSync(path.join(npmDir, 'package.json'), 'utf8')) as { version: string }).version;
  const caBundle = fs.existsSync(HOST_CA_BUNDLE) ? fs.readFileSync(HOST_CA_BUNDLE) : Buffer.alloc(0);
  const tag = `${REPOSITORY}/node:${process.versions.node}-${sha([base, process.version, npmVersion, String(fs.statSync(process.execPath).size), caBundle, ...contextParts(dir)])}`;
  if (await exists(docker, tag)) return tag;
  const context = fs.mkdtempSync(path.join(os.tmpdir(), 'node-image-'));
  try {
    fs.cpSync(dir, context, { recursive: true });
    fs.copyFileSync(process.execPath, path.join(context, 'node'));
    fs.cpSync(npmDir, path.join(context, 'npm'), { recursive: true, dereference: true });
    fs.writeFileSync(path.join(context, 'host-ca-certificates.crt'), caBundle);
    await build(docker, context, tag, { buildargs: { BASE_IMAGE: base } });
  } finally {
    fs.rmSync(context, { recursive: true, force: true });
  }
  built.push(tag);
  return tag;
}

/** The backup agent from runtime/agent/Dockerfile, with the tests' Node and Redis images as its bases. */
async function agentImage(docker: Docker, buildargs: Record<string, string>, built: string[]): Promise<string> {
  const context = agentImageContext(REPO);
  const tag = `${REPOSITORY}/backup-agent:${sha([context.hash, ...Object.entries(buildargs).sort().flat()])}`;
  if (await exists(docker, tag)) return tag;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'agent-context-'));
  try {
    writeAgentImageContext(context, dir);
    await build(docker, dir, tag, { dockerfile: AGENT_DOCKERFILE, buildargs });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  built.push(tag);
  return tag;
}

/** The Dockerfile's default NODE_IMAGE: the production base the tests replace. */
function productionNodeImage(): string {
  const match = /^ARG NODE_IMAGE=(\S+)$/m.exec(fs.readFileSync(path.join(REPO, AGENT_DOCKERFILE), 'utf8'));
  if (!match) throw new Error(`${AGENT_DOCKERFILE}: no "ARG NODE_IMAGE=<default>" line; the Docker tests replace that base`);
  return match[1];
}

/** Builds what is missing (see the file comment) and returns every image with the substitution table. */
export async function buildTestImages(docker: Docker): Promise<TestImages> {
  const built: string[] = [];
  const base = await baseImage(docker, built);
  const postgres = await localImage(docker, 'postgres', String(LOCAL_POSTGRES_MAJOR), base, built);
  const pgbouncer = await localImage(docker, 'pgbouncer', '1.18', base, built);
  const redis = await localImage(docker, 'redis', '7.0', base, built);
  const node = await nodeImage(docker, base, built);
  const agent = await agentImage(docker, { REDIS_IMAGE: redis, NODE_IMAGE: node }, built);
  const substitutions: ImageSubstitution[] = [
    { production: DEFAULT_IMAGES.postgres(LOCAL_POSTGRES_MAJOR), local: postgres, how: `Debian bookworm's PostgreSQL ${LOCAL_POSTGRES_MAJOR} with an entrypoint doing what the official docker-entrypoint.sh does for the synthesized container (test/docker/images/postgres); LANG=C.UTF-8 instead of en_US.utf8` },
    { production: DEFAULT_IMAGES.pgbouncer, local: pgbouncer, how: "Debian's PgBouncer 1.18 (not 1.23) as user postgres, with nc for the healthcheck (test/docker/images/pgbouncer)" },
    { production: DEFAULT_IMAGES.redis, local: redis, how: "Debian's Redis 7.0 (not 7.4: RDB format 10, not 12) server and sentinel, glibc not musl, gosu for the start scripts' privilege drop (test/docker/images/redis)" },
    { production: `build:${AGENT_DOCKERFILE}`, local: agent, how: `the real ${AGENT_DOCKERFILE}, built with NODE_IMAGE and REDIS_IMAGE below: its Debian branch (apt, PostgreSQL client 15 only, gosu as su-exec)` },
    { production: `build-arg NODE_IMAGE=${productionNodeImage()}`, local: node, how: `Debian bookworm minbase with this machine's Node ${process.version}, npm and CA bundle (test/docker/images/node)` },
    { production: `build-arg REDIS_IMAGE=${DEFAULT_IMAGES.redis}`, local: redis, how: 'the Redis image above: the agent copies its redis-server and redis-cli' },
    { production: '(base of every local image)', local: base, how: `debootstrap --variant=${DEBIAN.variant} ${DEBIAN.suite} ${DEBIAN.mirror}, docker import` },
  ];
  return { base, postgres, pgbouncer, redis, node, agent, substitutions, built };
}
