import * as fs from 'fs';
import * as path from 'path';
import { AGENT_CONTEXT_DIR, AGENT_DOCKERFILE, agentImageContext, dockerfileSources, writeAgentImageContext } from '../../../stacks/backup-image';
import { synthesizeEnvironments } from '../../../stacks/synth';
import { loadOrThrow, REPO_ROOT } from './support';

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
    expect(first.image('dev')).toMatchObject({
      name: `tenantry/backup-agent:0.1.0-${context.hash.slice(0, 12)}`,
      keep_locally: true,
      build: { context: `../../${AGENT_CONTEXT_DIR}`, dockerfile: AGENT_DOCKERFILE, label: { 'tenantry.service': 'backup' } },
    });
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
