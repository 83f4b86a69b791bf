import Table from 'cli-table3';
import type { createColors } from 'picocolors';
import { z } from 'zod';
import type { PlanAction, PlannedChange } from './diff';

type Colors = ReturnType<typeof createColors>;

const actionSchema = z.enum(['add', 'change', 'replace', 'remove']);

export const plannedChangeSchema = z.strictObject({
  action: actionSchema,
  address: z.string(),
  type: z.string(),
  name: z.string(),
  service: z.string().nullable(),
  attributes: z.array(z.string()),
  replacedBecause: z.array(z.string()),
  dataAtRisk: z.boolean(),
});

/** `tenantry plan -o json`: stable for CI. Environments and tenants sorted by name; a tenant of null is what the environment shares. */
export const planReportSchema = z.strictObject({
  base: z.string(),
  environments: z.array(
    z.strictObject({
      name: z.string(),
      tenants: z.array(z.strictObject({ tenant: z.string().nullable(), changes: z.array(plannedChangeSchema) })),
    }),
  ),
  summary: z.strictObject({ add: z.number().int(), change: z.number().int(), replace: z.number().int(), remove: z.number().int() }),
  /** Whether any stateful container, volume or off-site bucket is replaced or removed (exit code 3). */
  dataAtRisk: z.boolean(),
});

export type PlanReport = z.infer<typeof planReportSchema>;

export function planReport(base: string, changes: readonly PlannedChange[]): PlanReport {
  const environments = [...new Set(changes.map((c) => c.environment))].sort().map((name) => {
    const own = changes.filter((c) => c.environment === name);
    const tenants = [...new Set(own.map((c) => c.tenant))].sort((a, b) => (a ?? '').localeCompare(b ?? ''));
    return {
      name,
      tenants: tenants.map((tenant) => ({
        tenant,
        changes: own.filter((c) => c.tenant === tenant).map(({ environment: _e, tenant: _t, ...change }) => change),
      })),
    };
  });
  const count = (action: PlanAction) => changes.filter((c) => c.action === action).length;
  return { base, environments, summary: { add: count('add'), change: count('change'), replace: count('replace'), remove: count('remove') }, dataAtRisk: changes.some((c) => c.dataAtRisk) };
}

const SYMBOL: Record<PlanAction, string> = { add: '+', change: '~', replace: '-/+', remove: '-' };

function what(change: Change): string {
  if (change.action === 'replace') return `replaced: ${change.replacedBecause.join(', ')}`;
  if (change.action === 'change') return change.attributes.join(', ');
  return '';
}

type Change = z.infer<typeof plannedChangeSchema>;

const KIND: Record<string, string> = { docker_container: 'containers', docker_volume: 'volumes', random_password: 'passwords', docker_image: 'images' };

/**
 * The rows a person reads: each change, replacement and removal on its own; a tenant's additions
 * as one row counting them by type (a new tenant adds dozens of resources; JSON lists each).
 */
function rows(changes: readonly Change[]): { action: PlanAction; dataAtRisk: boolean; type: string; name: string; what: string }[] {
  const added = changes.filter((c) => c.action === 'add');
  const kinds = added.map((c) => KIND[c.type] ?? (c.type.startsWith('aws_') ? 'off-site (AWS)' : c.type));
  const counts = [...new Set(kinds)].map((kind) => `${kinds.filter((k) => k === kind).length} ${kind}`);
  const rest = changes.filter((c) => c.action !== 'add').map((c) => ({ action: c.action, dataAtRisk: c.dataAtRisk, type: c.type, name: c.name, what: what(c) }));
  if (added.length === 1) rest.push({ action: 'add', dataAtRisk: false, type: added[0].type, name: added[0].name, what: '' });
  else if (added.length > 1) rest.push({ action: 'add', dataAtRisk: false, type: `${added.length} resources`, name: counts.join(', '), what: '' });
  return rest;
}

function summaryLine(report: PlanReport): string {
  const s = report.summary;
  return `Plan: ${s.add} to add, ${s.change} to change, ${s.replace} to replace, ${s.remove} to remove.`;
}

function atRisk(report: PlanReport): number {
  return report.environments.flatMap((e) => e.tenants.flatMap((t) => t.changes)).filter((c) => c.dataAtRisk).length;
}

/** For a terminal or a log: one table per environment, data at risk in red, a summary line. */
export function renderPlanTable(report: PlanReport, colors: Colors): string {
  if (report.environments.length === 0) return `No changes: the configuration synthesizes to the same stacks as ${report.base}.\n`;
  const paint: Record<PlanAction, (s: string) => string> = { add: colors.green, change: colors.yellow, replace: colors.magenta, remove: colors.red };
  const out: string[] = [`Plan against ${report.base}`];
  for (const env of report.environments) {
    const table = new Table({ head: ['tenant', 'action', 'resource', 'name', 'what'], style: { head: colors.isColorSupported ? ['bold'] : [], border: [] }, chars: { mid: '', 'left-mid': '', 'mid-mid': '', 'right-mid': '' } });
    for (const { tenant, changes } of env.tenants) {
      for (const c of rows(changes)) {
        const action = c.dataAtRisk ? colors.red(colors.bold(`${SYMBOL[c.action]} ${c.action} (data at risk)`)) : paint[c.action](`${SYMBOL[c.action]} ${c.action}`);
        table.push([tenant ?? '(environment)', action, c.type, c.name, c.what]);
      }
    }
    out.push('', `environment ${colors.bold(env.name)}`, table.toString());
  }
  out.push('', summaryLine(report));
  const risky = atRisk(report);
  if (risky > 0) out.push(colors.red(colors.bold(`Data at risk: ${risky} stateful container(s), volume(s) or bucket(s) replaced or removed; check their backups before applying.`)));
  return `${out.join('\n')}\n`;
}

export function renderPlanJson(report: PlanReport): string {
  return `${JSON.stringify(report, null, 2)}\n`;
}

function cell(text: string): string {
  return text.replace(/\|/g, '\\|');
}

/** For a CI comment (GitHub or GitLab Markdown). */
export function renderPlanMarkdown(report: PlanReport): string {
  const out = [`### Tenantry plan against \`${report.base}\``, ''];
  if (report.environments.length === 0) return `${out.join('\n')}No changes.\n`;
  const risky = atRisk(report);
  out.push(`**${summaryLine(report)}**`);
  if (risky > 0) out.push('', `> [!CAUTION]\n> Data at risk: ${risky} stateful container(s), volume(s) or bucket(s) replaced or removed (marked :warning:). Check their backups before applying.`);
  out.push('', '| environment | tenant | action | resource | name | what |', '|---|---|---|---|---|---|');
  for (const env of report.environments) {
    for (const { tenant, changes } of env.tenants) {
      for (const c of rows(changes)) {
        const action = c.dataAtRisk ? `:warning: **${c.action}**` : c.action;
        out.push(`| ${cell(env.name)} | ${cell(tenant ?? '(environment)')} | ${action} | ${cell(c.type)} | ${cell(c.name)} | ${cell(c.what)} |`);
      }
    }
  }
  return `${out.join('\n')}\n`;
}
