import fc from 'fast-check';
import * as offsiteChecks from '../../../config/checks/offsite';
import { loadConfig } from '../../../config/load';
import { formatProblem } from '../../../config/source';
import { configFiles, generatedConfig } from '../../helpers/generated-config';
import { agentConfigOf, ContainerJson, resourcesOf } from '../constructs/support';
import { loadWithRuleOff, SynthesizedEnvironment, synthEnvironment, writeConfig } from './support';

/*
 * The class, not the example (issue 9, items 2 and 3): over generated configurations built to make
 * environments and tenants meet in S3 (shared buckets named by several environments, with and
 * without managedBy, per-tenant buckets under shared name prefixes, a bucket named like another's
 * state bucket), a configuration that loads synthesizes stacks in which
 *   - every bucket an agent writes to is declared by exactly one stack, and is no state bucket;
 *   - no two (environment, tenant) pairs write under the same bucket and prefix, or nested ones;
 *   - every off-site credential reaches only its own bucket, environment and tenant, and its IAM
 *     user is its own;
 * and a configuration that is refused is refused by the off-site rules only, for a reason the
 * synthesized output confirms once those rules are switched off (the one spy below), unless it has
 * a broken managedBy reference (then it is only checked to be refused by these rules), or a setting of an environment none of whose tenants
 * keep off-site copies yet.
 */

const OFFSITE_RULE = /(bucket|managedBy|IAM user)/;
/** A managedBy that names no environment, or the wrong one: a broken reference, wrong even while no tenant's data would meet another's. */
const BROKEN_REFERENCE = /managedBy: (environment "[^"]+" does not (exist|declare)|"[^"]+" is this environment)/;

interface AgentOffsite {
  readonly deployment: string;
  readonly bucket: string;
  readonly prefix: string;
}

interface Statement {
  readonly Action: string | string[];
  readonly Resource: string | string[];
  readonly Condition?: { StringLike?: Record<string, string[]> };
}

function agentOffsite(doc: SynthesizedEnvironment['doc']): AgentOffsite[] {
  return Object.values(resourcesOf<ContainerJson>(doc, 'docker_container')).flatMap((c) => {
    const config = agentConfigOf<{ environment: string; tenant: string; offsite?: { bucket: string; prefix: string } }>(c);
    return config?.offsite ? [{ deployment: `${config.environment}/${config.tenant}`, ...config.offsite }] : [];
  });
}

/** A policy's ARNs with Terraform references resolved: this stack's buckets by name, the partition as "aws". */
function resolveArns(text: string, doc: SynthesizedEnvironment['doc']): string {
  const buckets = resourcesOf<{ bucket: string }>(doc, 'aws_s3_bucket');
  return text
    .replace(/\$\{aws_s3_bucket\.([^.}]+)\.arn\}/g, (_, id: string) => `arn:aws:s3:::${buckets[id].bucket}`)
    .replace(/\$\{data\.aws_partition\.[^.}]+\.partition\}/g, 'aws');
}

function violations(stacks: SynthesizedEnvironment[]): string[] {
  const found: string[] = [];
  const declared = new Map<string, string[]>();
  const stateBuckets = new Set<string>();
  for (const s of stacks) {
    for (const b of Object.values(resourcesOf<{ bucket: string }>(s.doc, 'aws_s3_bucket'))) declared.set(b.bucket, [...(declared.get(b.bucket) ?? []), s.env.name]);
    const backend = (s.doc as { terraform?: { backend?: { s3?: { bucket: string } } } }).terraform?.backend?.s3;
    if (backend) stateBuckets.add(backend.bucket);
  }
  for (const [bucket, stackNames] of declared) if (stackNames.length > 1) found.push(`bucket ${bucket} declared by ${stackNames.join(', ')}`);

  const agents = stacks.flatMap((s) => agentOffsite(s.doc));
  for (const a of agents) {
    if ((declared.get(a.bucket) ?? []).length === 0) found.push(`${a.deployment} writes to bucket ${a.bucket}, which no stack declares`);
    if (stateBuckets.has(a.bucket)) found.push(`${a.deployment} writes to state bucket ${a.bucket}`);
  }
  agents.forEach((a, i) => {
    for (const b of agents.slice(i + 1)) {
      const nested = a.prefix === b.prefix || a.prefix.startsWith(`${b.prefix}/`) || b.prefix.startsWith(`${a.prefix}/`);
      if (a.bucket === b.bucket && nested) found.push(`${a.deployment} and ${b.deployment} share s3://${a.bucket}/${a.prefix}`);
    }
  });

  const users = new Map<string, string>();
  for (const s of stacks) {
    const iamUsers = resourcesOf<{ name: string }>(s.doc, 'aws_iam_user');
    for (const [id, user] of Object.entries(iamUsers)) {
      const owner = users.get(user.name);
      if (owner) found.push(`IAM user ${user.name} of ${s.env.name} is also ${owner}'s`);
      users.set(user.name, `${s.env.name} (${id})`);
    }
    for (const p of Object.values(resourcesOf<{ policy: string; user: string }>(s.doc, 'aws_iam_user_policy'))) {
      const userId = /\$\{aws_iam_user\.([^.}]+)\.name\}/.exec(p.user)![1];
      // The user is `<env>-<tenant>-backup`: its agent is the deployment of that name in this stack.
      const agent = agents.find((a) => `${a.deployment.replace('/', '-')}-backup` === iamUsers[userId].name);
      if (!agent) {
        found.push(`${iamUsers[userId].name} has a policy but no agent uses it`);
        continue;
      }
      const own = `arn:aws:s3:::${agent.bucket}`;
      for (const st of (JSON.parse(resolveArns(p.policy, s.doc)) as { Statement: Statement[] }).Statement) {
        const actions = ([] as string[]).concat(st.Action);
        if (actions.every((a) => a.startsWith('kms:'))) continue;
        for (const resource of ([] as string[]).concat(st.Resource)) {
          if (resource === own) {
            const prefixes = st.Condition?.StringLike?.['s3:prefix'] ?? [];
            // A request's s3:prefix of "prod/acme" also lists prod/acme2/…: only "<prefix>/…" keeps to the tenant's own keys.
            if (prefixes.length === 0 || prefixes.some((x) => !x.startsWith(`${agent.prefix}/`))) found.push(`${agent.deployment} may list ${resource} beyond ${agent.prefix}: ${prefixes.join(', ')}`);
          } else if (!resource.startsWith(`${own}/${agent.prefix}/`)) {
            found.push(`${agent.deployment} reaches ${resource}, outside s3://${agent.bucket}/${agent.prefix}/`);
          }
        }
      }
    }
  }
  return found;
}

const SEED = 9_0023;

test('generated configurations: loaded ones keep every environment and tenant to its own bucket, prefix and credential; refused ones truly would not', () => {
  const outcomes = { loaded: 0, refused: 0 };
  fc.assert(
    fc.property(generatedConfig({ storage: false, offsite: true }), (generated) => {
      const root = writeConfig(configFiles(generated));
      const result = loadConfig(root);
      const lines = result.ok ? [] : result.problems.map(formatProblem);
      // A broken reference cannot even be resolved without the rules, nor need it be a clash.
      if (lines.some((line) => BROKEN_REFERENCE.test(line))) {
        outcomes.refused++;
        expect(lines.filter((line) => !OFFSITE_RULE.test(line))).toEqual([]);
        return;
      }
      const unchecked = loadWithRuleOff(root, offsiteChecks, 'offsiteRules');
      if (!unchecked.ok) throw new Error(`the generator wrote a config that breaks other rules:\n${unchecked.problems.map(formatProblem).join('\n')}`);
      const stacks = unchecked.config.environments.map(synthEnvironment);
      const found = violations(stacks);
      // An environment whose tenants keep no off-site copies declares no bucket: its setting is wrong, but nothing meets yet.
      const writing = new Set(stacks.filter((s) => agentOffsite(s.doc).length > 0).map((s) => s.env.name));
      const dormant = (line: string) => { const env = /environments\/([a-z-]+)\.yaml:/.exec(line)?.[1]; return env !== undefined && !writing.has(env); };

      if (result.ok) {
        outcomes.loaded++;
        expect(found).toEqual([]);
      } else {
        outcomes.refused++;
        expect(lines.filter((line) => !OFFSITE_RULE.test(line))).toEqual([]);
        if (!lines.every(dormant)) expect(found).not.toEqual([]);
      }
    }),
    { seed: SEED, numRuns: 200 },
  );
  // The generator must exercise both sides, or the property proves little.
  expect(outcomes.loaded).toBeGreaterThanOrEqual(5);
  expect(outcomes.refused).toBeGreaterThanOrEqual(5);
});
