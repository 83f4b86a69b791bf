import { Option } from 'commander';
import * as fs from 'fs';
import { stacksFolder } from '../../stacks/cdktf-seam';
import { synthOutdir } from '../../stacks/synth';
import type { CliCommand } from '../context';
import { EXIT, UsageError } from '../errors';
import { resolveBase } from '../plan/base';
import { diffStacks } from '../plan/diff';
import { planReport, renderPlanJson, renderPlanMarkdown, renderPlanTable } from '../plan/report';
import { synthesize } from '../synthesis';

export const plan: CliCommand = {
  register(program, context) {
    program
      .command('plan')
      .description('Compare what the configuration synthesizes to now with a previous synthesis: per environment and tenant, what is added, changed, replaced or removed. Stateful containers, volumes and off-site buckets that are replaced or removed are data at risk (exit 3).')
      .option('--base <dir|git-ref>', 'a cdktf output folder, or a git ref whose configuration is synthesized in a temporary worktree (default: cdktf.out, as npm run synth wrote it)')
      .addOption(new Option('-o, --output <format>', 'output format').choices(['table', 'json', 'markdown']).default('table'))
      .addHelpText(
        'after',
        [
          '',
          'Examples:',
          '  tenantry plan                                  # against cdktf.out (the last npm run synth)',
          '  tenantry plan --base origin/main               # against the configuration on main',
          '  tenantry plan --base HEAD~1 -o markdown > plan.md   # a CI comment',
          '  tenantry plan --base main -o json | jq .dataAtRisk',
          '',
          'Exit codes: 0 nothing at risk, 3 a stateful container (postgres, redis, qdrant, minio, backup), a volume or',
          'an off-site bucket is replaced or removed, 2 a usage or configuration mistake, 1 the comparison failed.',
          'The base is synthesized by this Tenantry: the plan shows what the configuration change does.',
        ].join('\n'),
      )
      .action(async (options: { base?: string; output: 'table' | 'json' | 'markdown' }, command) => {
        const root = context.configDir(command);
        const baseArg = options.base ?? synthOutdir(context.io.env);
        if (options.base === undefined && !fs.existsSync(`${baseArg}/${stacksFolder()}`)) {
          throw new UsageError(`no ${baseArg}/${stacksFolder()} to compare with: run npm run synth first, or give --base <cdktf.out folder|git ref>`);
        }
        // The configuration's own mistakes first: they are what the user came to fix.
        const current = await synthesize(root);
        const base = await resolveBase(baseArg, root);
        const environments = [...new Set([...base.stacks.keys(), ...current.stacks.keys()])].sort();
        const report = planReport(base.description, environments.flatMap((env) => diffStacks(env, base.stacks.get(env), current.stacks.get(env))));
        const render = { table: () => renderPlanTable(report, context.colors(command)), json: () => renderPlanJson(report), markdown: () => renderPlanMarkdown(report) }[options.output];
        context.io.stdout(render());
        if (report.dataAtRisk) context.exitWith(EXIT.dataAtRisk);
      });
  },
};
