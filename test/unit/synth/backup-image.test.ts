import * as fs from 'fs';
import * as path from 'path';
import { DEFAULT_IMAGES } from '../../../config/images';
import { AGENT_CONTEXT_DIR, AGENT_DOCKERFILE, agentBuildArgs, agentImageContext, agentImageName, dockerfileSources, writeAgentImageContext } from '../../../stacks/backup-image';
import { synthesizeEnvironments } from '../../../stacks/synth';
import { loadOrThrow, REPO_ROOT, synthEnvironment } from './support';

/*
 * The backup agent's image: built from a context of exactly the files its Dockerfile copies, and
 * tagged with a hash of them (stacks/backup-image.ts).
 */

const made: string[] = [];
const tmp = () => {
  const dir = fs.mkdtempSync(path.join(process.env.TMPDIR || path.join(REPO_ROOT, '.tmp'), 'backup-image-'));
  made.push(dir);
  return dir;
};
afterAll(() => made.forEach((dir) => fs.rmSync(dir, { recursive: true, force: true })));

describe('the agent image context', () => {
  test("is the Dockerfile's COPY sources (not those copied --from another stage)", () => {
    expect(dockerfileSources(fs.readFileSync(path.join(REPO_ROOT, AGENT_DOCKERFILE), 'utf8'))).toEqual([
      'package.json',
      'package-lock.json',
      'runtime/agent',
      'runtime/schedule',
      'package.json',
      'package-lock.json',
      'runtime/agent/entrypoint.sh',
    ]);
    expect(dockerfileSources('FROM a AS b\nCOPY --chown=1:1 x \\\n  y/ /dst/\nCOPY --from=b /out /out\n')).toEqual(['x', 'y']);
  });

  test('Dockerfile.dockerignore (builds by hand from the repository root) allows exactly the COPY sources', () => {
    const lines = fs.readFileSync(path.join(REPO_ROOT, `${AGENT_DOCKERFILE}.dockerignore`), 'utf8').split('\n').filter((l) => l.trim() && !l.startsWith('#'));
    const sources = dockerfileSources(fs.readFileSync(path.join(REPO_ROOT, AGENT_DOCKERFILE), 'utf8'));
    // A source inside an allowed folder (runtime/agent/entrypoint.sh in runtime/agent) needs no line of its own.
    const outermost = [...new Set(sources)].filter((s) => !sources.some((o) => o !== s && s.startsWith(`${o}/`)));
    expect(lines[0]).toBe('*');
    expect(lines.slice(1).sort()).toEqual(outermost.map((s) => `!${s}`).sort());
  });

  test('a COPY the context cannot be known from is refused, not half-built', () => {
    expect(() => dockerfileSources('COPY *.json ./')).toThrow('COPY source "*.json" is a pattern; name the files or folders');
    expect(() => dockerfileSources('ADD https://example.com/x /x')).toThrow('use COPY, not ADD');
    expect(() => dockerfileSources('COPY ["a", "b"]')).toThrow('write COPY as "COPY <source>... <destination>"');
  });

  test('holds nothing secret or large: no node_modules, cdktf.out, state, .git, data, .tmp; under 1 MB', () => {
    const { files } = agentImageContext(REPO_ROOT);
    const paths = files.map((f) => f.path);
    expect(paths).toEqual(expect.arrayContaining([AGENT_DOCKERFILE, 'package.json', 'package-lock.json', 'runtime/agent/cli.ts', 'runtime/agent/entrypoint.sh', 'runtime/schedule/cron.ts']));
    expect(paths.filter((p) => /(^|\/)(node_modules|cdktf\.out|\.git|data|\.tmp|\.terraform|dist)(\/|$)|\.tfstate|\.env$/.test(p))).toEqual([]);
    expect(paths.filter((p) => !['package.json', 'package-lock.json'].includes(p) && !/^runtime\/(agent|schedule)\//.test(p))).toEqual([]);
    expect(files.reduce((n, f) => n + f.content.length, 0)).toBeLessThan(1024 * 1024);
    expect(files.find((f) => f.path === 'runtime/agent/entrypoint.sh')!.executable).toBe(true);
  });

  test('its hash: the same sources, the same hash; any change to what the image copies, another; anything else, none', () => {
    const repo = tmp();
    writeAgentImageContext(agentImageContext(REPO_ROOT), repo);
    fs.writeFileSync(path.join(repo, 'README.md'), 'not in the image\n');
    const original = agentImageContext(repo).hash;
    expect(agentImageContext(repo).hash).toBe(original);
    expect(original).toBe(agentImageContext(REPO_ROOT).hash);

    fs.appendFileSync(path.join(repo, 'README.md'), 'still not in the image\n');
    fs.mkdirSync(path.join(repo, 'node_modules', 'x'), { recursive: true });
    fs.writeFileSync(path.join(repo, 'node_modules', 'x', 'index.js'), '');
    expect(agentImageContext(repo).hash).toBe(original);

    fs.appendFileSync(path.join(repo, 'runtime/agent/cli.ts'), '// changed\n');
    const changed = agentImageContext(repo).hash;
    expect(changed).not.toBe(original);

    fs.chmodSync(path.join(repo, 'runtime/agent/entrypoint.sh'), 0o644);
    expect(agentImageContext(repo).hash).not.toBe(changed);
  });
});

describe('synth builds the agent image from that context, tagged by its hash', () => {
  const environments = loadOrThrow(REPO_ROOT).environments;

  async function synth(repo: string) {
    const scratch = path.join(tmp(), 'cdktf.out.partial');
    const result = await synthesizeEnvironments(environments, { root: REPO_ROOT, outdir: path.join(path.dirname(scratch), 'cdktf.out'), scratch, repo, workers: 1 });
    expect(result).toEqual({ ok: true });
    const stacks = Object.fromEntries(environments.map((e) => [e.name, fs.readFileSync(path.join(scratch, 'stacks', e.name, 'cdk.tf.json'), 'utf8')]));
    const image = (name: string) =>
      (JSON.parse(stacks[name]) as { resource: { docker_image: Record<string, { name: string; build?: { context: string; dockerfile: string } }> } }).resource.docker_image['backup-image'];
    return { scratch, stacks, image };
  }

  test('the context folder beside the stacks is exactly the context; the tag is version-hash; the JSON byte-identical on a second run', async () => {
    const first = await synth(REPO_ROOT);
    const context = agentImageContext(REPO_ROOT);
    const buildArgs = { REDIS_IMAGE: DEFAULT_IMAGES.redis };
    expect(first.image('dev')).toMatchObject({
      name: agentImageName({ version: '0.1.0', contextHash: context.hash }, buildArgs),
      keep_locally: true,
      build: { context: `../../${AGENT_CONTEXT_DIR}`, dockerfile: AGENT_DOCKERFILE, build_args: buildArgs, label: { 'tenantry.service': 'backup' } },
    });
    expect(first.image('dev').name).toMatch(/^tenantry\/backup-agent:0\.1\.0-[0-9a-f]{12}$/);
    const written = agentImageContext(path.join(first.scratch, AGENT_CONTEXT_DIR));
    expect(written.files.map((f) => f.path)).toEqual(context.files.map((f) => f.path));
    expect(written.hash).toBe(context.hash);

    const second = await synth(REPO_ROOT);
    expect(second.stacks).toEqual(first.stacks);
  });

  test('a changed agent gives a new tag (so the image is rebuilt) and changes nothing else in the stacks', async () => {
    const before = await synth(REPO_ROOT);
    const repo = tmp();
    writeAgentImageContext(agentImageContext(REPO_ROOT), repo);
    fs.appendFileSync(path.join(repo, 'runtime/agent/runner.ts'), '// a changed agent\n');
    const after = await synth(repo);

    for (const env of environments.map((e) => e.name)) {
      expect(after.image(env).name).not.toBe(before.image(env).name);
      expect(after.stacks[env].replace(after.image(env).name, '')).toBe(before.stacks[env].replace(before.image(env).name, ''));
    }
  });
});

/*
 * The agent's Redis tools come from the tenants' Redis image: Alpine's own redis package (7.2,
 * RDB format 11) refuses what Redis 7.4 writes (format 12). No registry can be reached here, so
 * the Alpine build never runs here: the Dockerfile is checked as text, the build arguments in the
 * JSON. (test/docker builds the same Dockerfile on a Debian NODE_IMAGE, its apt branch.)
 */
describe("the agent image's Redis tools are the environment's Redis image's", () => {
  const dockerfile = fs.readFileSync(path.join(REPO_ROOT, AGENT_DOCKERFILE), 'utf8');
  const instructions = dockerfile
    .replace(/\\\r?\n/g, ' ')
    .split('\n')
    .map((l) => l.trim().replace(/\s+/g, ' '))
    .filter((l) => l !== '' && !l.startsWith('#'));
  const finalStage = instructions.slice(instructions.map((l) => l.startsWith('FROM ')).lastIndexOf(true));

  test('Dockerfile text (no docker build here): a stage FROM the REDIS_IMAGE build argument, with no default', () => {
    const firstFrom = instructions.findIndex((l) => l.startsWith('FROM '));
    expect(instructions.slice(0, firstFrom)).toEqual(['ARG REDIS_IMAGE', 'ARG NODE_IMAGE=node:20-alpine3.21']);
    expect(instructions).toContain('FROM ${REDIS_IMAGE} AS redis');
  });

  test('Dockerfile text: production stays on Alpine: every other stage is FROM NODE_IMAGE (default node:20-alpine3.21), whose apk branch installs the PostgreSQL 15, 16 and 17 clients and servers (PITR recovery), GNU tar (base backups unpacked in 1 MiB records; the build refuses another tar), tini and su-exec', () => {
    expect(instructions.filter((l) => l.startsWith('FROM ') && !l.includes('${REDIS_IMAGE}'))).toEqual(['FROM ${NODE_IMAGE} AS build', 'FROM ${NODE_IMAGE} AS deps', 'FROM ${NODE_IMAGE}']);
    const apk = finalStage.find((l) => l.includes('apk add'))!;
    expect(apk).toMatch(/if command -v apk >\/dev\/null; then apk add --no-cache postgresql15-client postgresql16-client postgresql17-client postgresql15 postgresql16 postgresql17 libssl3 zstd coreutils tar tini su-exec /);
    expect(apk).toContain(`tar --version | grep -q 'GNU tar' || {`);
    expect(apk).toContain('for major in 15 16 17; do for tool in pg_dump pg_basebackup postgres pg_verifybackup pg_waldump; do test -x "/usr/libexec/postgresql$major/$tool"');
    expect(finalStage).toContain('ENTRYPOINT ["/sbin/tini", "--", "tenantry-entrypoint"]');
  });

  test("Dockerfile text (no docker build here): the final stage has redis-server, redis-cli and redis-check-rdb from the redis stage, and no Alpine redis package", () => {
    expect(finalStage).toContain('COPY --from=redis /usr/local/bin/redis-server /usr/local/bin/redis-cli /usr/local/bin/');
    // The official images' redis-check-rdb is redis-server under another name, as here.
    const run = finalStage.find((l) => l.includes('redis-check-rdb'))!;
    expect(run).toMatch(/^RUN ln -s redis-server \/usr\/local\/bin\/redis-check-rdb && redis-server --version && redis-cli --version && redis-check-rdb --version /);
    for (const install of instructions.filter((l) => l.includes('apk add'))) expect(install).not.toMatch(/\sredis(\s|$)/);
  });

  test('the docker_image build has build_args REDIS_IMAGE = the environment\'s Redis image: the default, or its images.redis', () => {
    const environments = loadOrThrow(REPO_ROOT).environments;
    const image = (name: string) => {
      const { doc } = synthEnvironment(environments.find((e) => e.name === name)!);
      return (doc.resource!.docker_image as Record<string, { name: string; build: { build_args: Record<string, string> } }>)['backup-image'];
    };
    const dev = image('dev');
    const prod = image('prod');
    expect(environments.find((e) => e.name === 'dev')!.images.redis).toBeUndefined();
    expect(dev.build.build_args).toEqual({ REDIS_IMAGE: DEFAULT_IMAGES.redis });
    expect(prod.build.build_args).toEqual({ REDIS_IMAGE: 'registry.example.com/mirror/redis:7.4.2-alpine' });
    expect(prod.name).not.toBe(dev.name);
  });

  test('the tag changes with the Redis image, and only with what builds the image', () => {
    const build = { version: '0.1.0', contextHash: 'a'.repeat(64) };
    const tag = (redis: string) => agentImageName(build, agentBuildArgs(redis));
    expect(tag('redis:7.4.2-alpine')).toBe(tag('redis:7.4.2-alpine'));
    expect(tag('redis:7.4.3-alpine')).not.toBe(tag('redis:7.4.2-alpine'));
    expect(agentImageName({ ...build, contextHash: 'b'.repeat(64) }, agentBuildArgs('redis:7.4.2-alpine'))).not.toBe(tag('redis:7.4.2-alpine'));
    expect(agentImageName({ ...build, version: '0.2.0' }, agentBuildArgs('redis:7.4.2-alpine'))).toMatch(/^tenantry\/backup-agent:0\.2\.0-/);

    const environment = loadOrThrow(REPO_ROOT).environments.find((e) => e.name === 'dev')!;
    const named = (redis: string | undefined) =>
      (synthEnvironment({ ...environment, images: { ...environment.images, redis } }).doc.resource!.docker_image as Record<string, { name: string }>)['backup-image'].name;
    expect(named(undefined)).toBe(named(DEFAULT_IMAGES.redis));
    expect(named('registry.example.com/redis:8.0.2-alpine')).not.toBe(named(undefined));
  });
});
