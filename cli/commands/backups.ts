import Table from 'cli-table3';
import { Option } from 'commander';
import { z } from 'zod';
import { formatDuration, formatSize, listedBackupSchema } from '../../runtime/agent/listing';
import type { CliCommand } from '../context';
import { COMPACT } from '../status/report';
import { chooseJobs, agentStatus, listBackups, openTenantAgent } from '../docker/tenant-agent';
import { loadOrThrow } from '../synthesis';

/** `tenantry backups E T [job] -o json`: the agent's listing, oldest first per job, with where the tenant lives. */
export const backupsReportSchema = z.strictObject({
  environment: z.string(),
  tenant: z.string(),
  backups: z.array(listedBackupSchema),
  /** Why the off-site bucket could not be listed (then only local backups are shown); null when it was, or none is configured. */
  offsiteProblem: z.string().nullable(),
});

export type BackupsReport = z.infer<typeof backupsReportSchema>;

export const backups: CliCommand = {
  register(program, context) {
    program
      .command('backups')
      .argument('<environment>')
      .argument('<tenant>')
      .argument('[job]', 'one backup job (postgres, redis, qdrant, minio, …); default: every job')
      .description('Every backup of a tenant, on its backup volume and in the off-site bucket: time, duration, size, status, verification, off-site copy.')
      .addOption(new Option('-o, --output <format>', 'output format').choices(['table', 'json']).default('table'))
      .addHelpText('after', ['', 'Examples:', '  tenantry backups prod acme', '  tenantry backups prod acme postgres -o json | jq -r \'.backups[-1].id\''].join('\n'))
      .action(async (environment: string, tenant: string, job: string | undefined, options: { output: 'table' | 'json' }, command) => {
        const config = loadOrThrow(context.configDir(command));
        const agent = await openTenantAgent(config, environment, tenant, context.io.env);
        try {
          if (job !== undefined) chooseJobs(await agentStatus(agent), job, agent.who);
          const listed = await listBackups(agent, job);
          const report: BackupsReport = { environment, tenant, ...listed };
          context.io.stdout(options.output === 'json' ? `${JSON.stringify(report, null, 2)}\n` : renderBackups(report, agent.target.environment.timeZone));
        } finally {
          agent.connection.close();
        }
      });
  },
};

const localTime = (iso: string, timeZone: string) => new Date(iso).toLocaleString('sv-SE', { timeZone, hour12: false });

export function renderBackups(report: BackupsReport, timeZone: string): string {
  if (report.backups.length === 0) return `${report.environment}/${report.tenant}: no backups yet\n`;
  const table = new Table({ head: ['JOB', 'BACKUP', 'WHERE', `STARTED (${timeZone})`, 'DURATION', 'SIZE', 'STATUS', 'VERIFIED', 'OFF-SITE'], style: { head: [], border: [] }, chars: COMPACT });
  for (const b of report.backups) {
    table.push([
      b.job,
      b.id,
      b.location === 'offsite' ? 'off-site only' : 'local',
      localTime(b.startedAt, timeZone),
      b.durationSeconds === null ? '-' : formatDuration(b.durationSeconds),
      b.sizeBytes === null ? '-' : formatSize(b.sizeBytes),
      b.problem && b.status !== 'ok' ? `${b.status}: ${b.problem.split('\n')[0].slice(0, 50)}` : b.status,
      b.verified ? `${b.verified.result} ${localTime(b.verified.at, timeZone).slice(0, 10)}` : 'no',
      b.offsite ?? '-',
    ]);
  }
  const note = report.offsiteProblem ? `\nThe off-site bucket could not be listed (local backups only): ${report.offsiteProblem}\n` : '';
  return `${table.toString()}\n${note}`;
}
