/**
 * Timers for `serve`: each job's backup schedule and, for Postgres (logical and PITR), its verification schedule.
 * An occurrence that comes round while the job is still busy (a long dump, a manual `run`) is
 * skipped with a log line rather than queued: queued runs pile up behind a slow server.
 */
import { CronSchedule, nextRun, parseCron } from '../schedule/cron';
import type { JobConfig } from './config';
import { errorMessage, UserError } from './errors';
import { verifyRecovery } from './pitr/verify';
import { Agent, alertFailure, runBackup, verifyBackup } from './runner';

/** setTimeout takes at most a signed 32-bit delay (~24.8 days); longer waits are re-armed. */
const MAX_TIMER_MS = 2 ** 31 - 1;

interface Task {
  readonly job: JobConfig;
  readonly what: 'backup' | 'verification';
  readonly schedule: CronSchedule;
  readonly run: () => Promise<unknown>;
}

export class Scheduler {
  private readonly timers = new Set<NodeJS.Timeout>();
  private readonly inFlight = new Set<Promise<unknown>>();
  private stopped = false;

  constructor(private readonly agent: Agent) {}

  start(): void {
    for (const job of this.agent.config.jobs) {
      this.arm({ job, what: 'backup', schedule: parseCron(job.schedule), run: () => runBackup(this.agent, job) });
      if ((job.kind === 'postgres' || job.kind === 'postgres-pitr') && job.verifySchedule !== undefined) {
        this.arm({ job, what: 'verification', schedule: parseCron(job.verifySchedule), run: () => verifyBackup(this.agent, job, 'latest') });
      }
      if (job.kind === 'postgres-pitr' && job.verifySchedule !== undefined) {
        this.arm({ job, what: 'verification', schedule: parseCron(job.verifySchedule), run: () => verifyRecovery(this.agent, job) });
      }
    }
  }

  /** Stops arming timers and resolves when the runs in progress have ended. */
  async stop(): Promise<void> {
    this.stopped = true;
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
    await Promise.allSettled([...this.inFlight]);
  }

  private arm(task: Task, after: Date = new Date()): void {
    if (this.stopped) return;
    const due = nextRun(task.schedule, after, this.agent.config.timeZone);
    this.agent.log.forJob(task.job.name).debug(`next ${task.what}`, { at: due.toISOString() });
    this.wait(task, due);
  }

  private wait(task: Task, due: Date): void {
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      if (Date.now() < due.getTime()) return this.wait(task, due);
      this.fire(task);
      this.arm(task, due);
    }, Math.min(Math.max(due.getTime() - Date.now(), 0), MAX_TIMER_MS));
    this.timers.add(timer);
  }

  private fire(task: Task): void {
    const log = this.agent.log.forJob(task.job.name);
    const running = task
      .run()
      .catch(async (error) => {
        if (error instanceof UserError) return log.warn(`scheduled ${task.what} skipped`, { reason: error.message });
        // runBackup reports its own failures; a verification that could not even record its
        // result (a full disk) is counted and sent here, so that no failure is only a log line.
        if (task.what === 'backup') return alertFailure(this.agent, task.job, errorMessage(error));
        this.agent.state.countersOf(task.job.name).verifyFailures++;
        log.error(`scheduled ${task.what} crashed`, { error: errorMessage(error) });
        await this.agent.notify(`verification of ${task.job.name} failed: ${errorMessage(error)}`);
      })
      .finally(() => this.inFlight.delete(running));
    this.inFlight.add(running);
  }
}
