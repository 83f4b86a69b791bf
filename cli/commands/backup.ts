import { SingleBar } from 'cli-progress';
import { formatSize } from '../../runtime/agent/listing';
import { ProgressLine, progressLineSchema } from '../../runtime/agent/progress';
import type { CliCommand, CliIO } from '../context';
import { agentError, execAgent } from '../docker/fleet';
import { agentStatus, chooseJobs, openTenantAgent, TenantAgent } from '../docker/tenant-agent';
import { OperationFailed } from '../errors';
import { loadOrThrow } from '../synthesis';

export const backup: CliCommand = {
  register(program, context) {
    program
      .command('backup')
      .argument('<environment>')
      .argument('<tenant>')
      .argument('[job]', 'one backup job (postgres, redis, qdrant, minio, …); default: every job, one after the other')
      .description('Back up a tenant now (tenantry-agent run in its backup container), with a progress bar (bytes, rate, ETA) in a terminal and progress lines otherwise. The backup is a manual one: retention never lets it displace a scheduled one.')
      .addHelpText(
        'after',
        [
          '',
          'Examples:',
          '  tenantry backup prod acme               # every job of the tenant',
          '  tenantry backup prod acme postgres | tee backup.log',
          '',
          'The total is the previous good backup\'s size (shown with ~): an estimate until the run ends.',
          'Exit codes: 0 every backup (and its off-site copy) done, 1 one failed, 2 a usage or configuration mistake.',
        ].join('\n'),
      )
      .action(async (environment: string, tenant: string, job: string | undefined, _options: unknown, command) => {
        const config = loadOrThrow(context.configDir(command));
        const agent = await openTenantAgent(config, environment, tenant, context.io.env);
        try {
          const jobs = chooseJobs(await agentStatus(agent), job, agent.who);
          const failed: string[] = [];
          for (const j of jobs) {
            const outcome = await runOne(agent, j.job, context.io);
            if (!outcome.ok) failed.push(`${j.job}: ${outcome.message}`);
          }
          if (failed.length > 0) throw new OperationFailed(`${agent.who}: ${failed.length} of ${jobs.length} backup(s) failed: ${failed.join('; ')}`);
        } finally {
          agent.connection.close();
        }
      });
  },
};

const PHASE_TEXT: Record<ProgressLine['phase'], string> = { backup: 'writing', check: 'checking', offsite: 'copying off-site', retention: 'applying retention', done: 'done', failed: 'failed' };

/** Bytes per second over the writing phase so far. */
class Rate {
  private first?: { at: number; bytes: number };
  perSecond(line: ProgressLine): number | undefined {
    const at = Date.parse(line.at);
    if (line.phase !== 'backup') return undefined;
    if (!this.first) this.first = { at, bytes: line.bytesDone };
    const seconds = (at - this.first.at) / 1000;
    return seconds > 0 ? (line.bytesDone - this.first.bytes) / seconds : undefined;
  }
}

function describe(line: ProgressLine, rate: number | undefined): string {
  const total = line.bytesTotal === null ? '' : ` of ${line.totalIsEstimate ? '~' : ''}${formatSize(line.bytesTotal)}`;
  const speed = rate === undefined ? '' : `, ${formatSize(Math.round(rate))}/s`;
  const eta = rate && line.bytesTotal !== null && line.bytesTotal > line.bytesDone ? `, ETA ${Math.ceil((line.bytesTotal - line.bytesDone) / rate)}s` : '';
  return `${formatSize(line.bytesDone)}${total}${speed}${eta}`;
}

/** One job's run: a bar on a terminal, else a line per update; then the agent's own summary line. */
async function runOne(agent: TenantAgent, job: string, io: CliIO): Promise<{ ok: boolean; message: string }> {
  const rate = new Rate();
  const bar = io.terminal
    ? new SingleBar({
        stream: io.terminal,
        hideCursor: true,
        barsize: 30,
        format: (options, params, payload: { text: string; phase: string }) => {
          const filled = Math.round((params.total > 0 ? Math.min(1, params.value / params.total) : 0) * (options.barsize ?? 30));
          return `${job} [${'#'.repeat(filled)}${'-'.repeat((options.barsize ?? 30) - filled)}] ${payload.phase}: ${payload.text}`;
        },
      })
    : undefined;
  let started = false;
  let summary = '';
  const result = await execAgent(agent.container, ['run', job, '--progress=json'], {
    onLine: (text) => {
      if (!text.startsWith('{')) {
        summary = text;
        return;
      }
      const parsed = progressLineSchema.safeParse(JSON.parse(text));
      if (!parsed.success) return;
      const line = parsed.data;
      const payload = { text: describe(line, rate.perSecond(line)), phase: PHASE_TEXT[line.phase] };
      if (!bar) {
        io.stdout(`${line.id}: ${payload.phase} ${payload.text}\n`);
        return;
      }
      const total = line.bytesTotal ?? Math.max(line.bytesDone, 1);
      if (!started) bar.start(total, line.bytesDone, payload);
      started = true;
      bar.setTotal(line.phase === 'done' ? line.bytesDone : Math.max(total, line.bytesDone));
      bar.update(line.bytesDone, payload);
    },
  });
  bar?.stop();
  if (summary) io.stdout(`${summary}\n`);
  if (result.exitCode === 0) return { ok: true, message: summary };
  return { ok: false, message: summary.includes('FAILED') || summary.includes('off-site failed') ? summary : agentError(result) };
}
