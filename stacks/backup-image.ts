import { createHash } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';

/*
 * The backup agent's image is built on each environment's Docker host (for prod over ssh). Its
 * build context is not the repository (node_modules, cdktf.out, local Terraform state, .git would
 * all go to the Docker daemon) but a folder that synth writes next to the stacks, holding exactly
 * the files the Dockerfile copies: its COPY lines are the list, so the Dockerfile stays the one
 * place that says what the image is made of. The tag carries a hash of those files and of the
 * build arguments (the environment's Redis image, whose tools the agent runs): the same sources and
 * arguments give the same tag and byte-identical JSON; a changed agent or another Redis image gives
 * a new tag, so Terraform builds the new image and replaces the containers that run it.
 */

/** The Dockerfile, relative to the repository root; the context mirrors the repository's layout. */
export const AGENT_DOCKERFILE = 'runtime/agent/Dockerfile';
/** The context's folder under the output directory (cdktf.out). */
export const AGENT_CONTEXT_DIR = 'backup-agent-context';
const IMAGE_REPOSITORY = 'tenantry/backup-agent';

export interface ContextFile {
  /** Relative to the context root, "/"-separated. */
  readonly path: string;
  readonly content: Buffer;
  readonly executable: boolean;
}

export interface AgentImageContext {
  /** Sorted by path: the Dockerfile and every file its COPY lines name. */
  readonly files: readonly ContextFile[];
  /** sha256 over every file's path, mode and content. */
  readonly hash: string;
}

/**
 * The sources of the Dockerfile's COPY instructions that read the build context (not `--from`
 * another stage). Globs, ADD and the JSON form are refused: the context could not be known
 * exactly, so they are an error here rather than a quietly incomplete image.
 */
export function dockerfileSources(dockerfile: string): string[] {
  const instructions = dockerfile
    .replace(/\\\r?\n/g, ' ')
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'));
  const sources: string[] = [];
  for (const line of instructions) {
    const [instruction, ...args] = line.split(/\s+/);
    if (/^ADD$/i.test(instruction)) throw new Error(`${AGENT_DOCKERFILE}: use COPY, not ADD ("${line}"): the image context is made of the files COPY names`);
    if (!/^COPY$/i.test(instruction)) continue;
    if (args.some((a) => a.startsWith('--from'))) continue;
    const operands = args.filter((a) => !a.startsWith('--'));
    if (operands.length < 2 || operands[0].startsWith('[')) throw new Error(`${AGENT_DOCKERFILE}: write COPY as "COPY <source>... <destination>" ("${line}")`);
    for (const source of operands.slice(0, -1)) {
      if (/[*?[\]]/.test(source)) throw new Error(`${AGENT_DOCKERFILE}: COPY source "${source}" is a pattern; name the files or folders`);
      sources.push(path.posix.normalize(source).replace(/\/$/, ''));
    }
  }
  return sources;
}

/** Reads the agent image's context from the repository: the Dockerfile and what it copies. */
export function agentImageContext(repo: string): AgentImageContext {
  const dockerfile = path.join(repo, AGENT_DOCKERFILE);
  const paths = new Set<string>([AGENT_DOCKERFILE]);
  for (const source of dockerfileSources(fs.readFileSync(dockerfile, 'utf8'))) {
    if (source.startsWith('..') || path.posix.isAbsolute(source)) throw new Error(`${AGENT_DOCKERFILE}: COPY source "${source}" is outside the build context`);
    for (const file of filesUnder(repo, source)) paths.add(file);
  }
  const files = [...paths].sort().map((p): ContextFile => {
    const absolute = path.join(repo, p);
    return { path: p, content: fs.readFileSync(absolute), executable: (fs.statSync(absolute).mode & 0o111) !== 0 };
  });
  const hash = createHash('sha256');
  for (const f of files) hash.update(`${f.path}\0${f.executable ? 755 : 644}\0${f.content.length}\0`).update(f.content);
  return { files, hash: hash.digest('hex') };
}

/** A file, or every file below a folder, relative to `repo`, sorted. */
function filesUnder(repo: string, relative: string): string[] {
  const absolute = path.join(repo, relative);
  const stat = fs.statSync(absolute, { throwIfNoEntry: false });
  if (!stat) throw new Error(`${AGENT_DOCKERFILE}: COPY source "${relative}" does not exist under ${repo}`);
  if (!stat.isDirectory()) return [relative];
  return fs
    .readdirSync(absolute)
    .sort()
    .flatMap((name) => filesUnder(repo, path.posix.join(relative, name)));
}

/** Writes the context into `dir` (replacing whatever was there). */
export function writeAgentImageContext(context: AgentImageContext, dir: string): void {
  fs.rmSync(dir, { recursive: true, force: true });
  for (const file of context.files) {
    const target = path.join(dir, ...file.path.split('/'));
    fs.mkdirSync(path.dirname(target), { recursive: true });
    fs.writeFileSync(target, file.content, { mode: file.executable ? 0o755 : 0o644 });
  }
}

/** What an environment needs to build the agent image (besides its own build arguments). */
export interface AgentImageBuild {
  /** The context folder, relative to the stack's working directory (cdktf.out/stacks/<env>). */
  readonly context: string;
  /** The Dockerfile inside the context. */
  readonly dockerfile: string;
  /** The package version, the tag's first part. */
  readonly version: string;
  /** AgentImageContext.hash. */
  readonly contextHash: string;
}

/**
 * The Dockerfile's build arguments for an environment: REDIS_IMAGE is the image its tenants' Redis
 * servers run, whose redis-cli, redis-check-rdb and redis-server the agent's jobs use.
 */
export function agentBuildArgs(redisImage: string): Record<string, string> {
  return { REDIS_IMAGE: redisImage };
}

/** The tag: the package version and the first 12 hex digits of a hash over the context's hash and the build arguments. */
export function agentImageName(build: Pick<AgentImageBuild, 'version' | 'contextHash'>, buildArgs: Readonly<Record<string, string>>): string {
  const hash = createHash('sha256').update(build.contextHash);
  for (const name of Object.keys(buildArgs).sort()) hash.update(`\0${name}=${buildArgs[name]}`);
  return `${IMAGE_REPOSITORY}:${build.version}-${hash.digest('hex').slice(0, 12)}`;
}
