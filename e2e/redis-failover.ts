/**
 * Redis Sentinel, as an application sees it: the master is found through the sentinels named in
 * the tenant's output; writes are acknowledged (or not) by whatever the master answers. Killing
 * the master by PID and timing how long until every sentinel names the new one is the failover.
 */
import { redisCli } from '../test/helpers/servers';

export interface SentinelView {
  masterName: string;
  password: string;
  sentinelPassword: string;
  /** Local ports of the sentinels. */
  sentinels: number[];
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export async function masterSeenBy(view: SentinelView, sentinelPort: number): Promise<number> {
  const [, port] = (await redisCli(sentinelPort, view.sentinelPassword, 'SENTINEL', 'get-master-addr-by-name', view.masterName)).split('\n');
  return Number(port);
}

function fields(text: string, separator: ':' | '\n'): Record<string, string> {
  if (separator === '\n') {
    const lines = text.split('\n');
    const out: Record<string, string> = {};
    for (let i = 0; i + 1 < lines.length; i += 2) out[lines[i]] = lines[i + 1];
    return out;
  }
  return Object.fromEntries(
    text
      .split(/\r?\n/)
      .filter((line) => line.includes(':'))
      .map((line) => [line.slice(0, line.indexOf(':')), line.slice(line.indexOf(':') + 1).trim()]),
  );
}

/**
 * Waits (bounded) until every sentinel names the same master, sees `replicas` replicas and the
 * other sentinels, and the master has `replicas` connected replicas. Returns the master's port.
 */
export async function waitForSteadyState(view: SentinelView, replicas: number, timeoutMs: number): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < deadline) {
    try {
      const masters = new Set<number>();
      let ok = true;
      for (const port of view.sentinels) {
        const master = fields(await redisCli(port, view.sentinelPassword, 'SENTINEL', 'MASTER', view.masterName), '\n');
        masters.add(Number(master.port));
        if (master.flags !== 'master' || Number(master['num-slaves']) !== replicas || Number(master['num-other-sentinels']) !== view.sentinels.length - 1) {
          ok = false;
          last = `sentinel ${port}: flags=${master.flags} num-slaves=${master['num-slaves']} num-other-sentinels=${master['num-other-sentinels']}`;
        }
        const down = (await redisCli(port, view.sentinelPassword, 'SENTINEL', 'REPLICAS', view.masterName)).split('\n').filter((line) => /s_down|disconnected/.test(line));
        if (down.length > 0) {
          ok = false;
          last = `sentinel ${port} sees a replica down: ${down.join(' ')}`;
        }
      }
      if (masters.size !== 1) {
        ok = false;
        last = `sentinels disagree on the master: ${[...masters].join(', ')}`;
      }
      const [masterPort] = [...masters];
      const info = fields(await redisCli(masterPort, view.password, 'INFO', 'replication'), ':');
      if (info.role !== 'master' || Number(info.connected_slaves) !== replicas) {
        ok = false;
        last = `master ${masterPort}: role=${info.role} connected_slaves=${info.connected_slaves}`;
      }
      if (ok) return masterPort;
    } catch (error) {
      last = (error as Error).message;
    }
    await sleep(200);
  }
  throw new Error(`the Redis topology did not reach a steady state within ${timeoutMs / 1000} s: ${last}`);
}

export interface FailoverTiming {
  oldMasterPort: number;
  newMasterPort: number;
  /** From SIGKILL to every sentinel naming the new master. */
  failoverMs: number;
  /** From SIGKILL to each sentinel naming it. */
  perSentinelMs: number[];
}

/**
 * SIGKILLs the master (`kill` does it, by PID) and polls every sentinel (each 50 ms, bounded) until
 * all name the same new master.
 */
export async function killMasterAndTime(view: SentinelView, kill: (masterPort: number) => void, timeoutMs: number): Promise<FailoverTiming> {
  const oldMasterPort = await masterSeenBy(view, view.sentinels[0]);
  const started = process.hrtime.bigint();
  const elapsed = () => Number(process.hrtime.bigint() - started) / 1e6;
  kill(oldMasterPort);
  const seen = new Map<number, { port: number; ms: number }>();
  while (elapsed() < timeoutMs) {
    for (const sentinel of view.sentinels) {
      if (seen.has(sentinel)) continue;
      const port = await masterSeenBy(view, sentinel).catch(() => oldMasterPort);
      if (port !== oldMasterPort) seen.set(sentinel, { port, ms: elapsed() });
    }
    const named = new Set([...seen.values()].map((s) => s.port));
    if (seen.size === view.sentinels.length && named.size === 1) {
      const perSentinelMs = view.sentinels.map((s) => seen.get(s)!.ms);
      return { oldMasterPort, newMasterPort: [...named][0], failoverMs: Math.max(...perSentinelMs), perSentinelMs };
    }
    await sleep(50);
  }
  throw new Error(`no failover within ${timeoutMs / 1000} s after killing the master on port ${oldMasterPort} (sentinels that moved: ${seen.size}/${view.sentinels.length})`);
}

export interface WriterResult {
  attempted: number;
  /** key → value for every SET answered OK. */
  acknowledged: Map<string, string>;
  /** Acknowledged writes by the master port that acknowledged them. */
  acknowledgedBy: Map<number, number>;
  /** Refused or failed writes by reason (never acknowledged). */
  refused: Record<string, number>;
}

function reason(error: Error): string {
  const message = error.message;
  const code = /^(NOREPLICAS|READONLY|MASTERDOWN|LOADING|NOAUTH|ERR)\b/.exec(message)?.[1];
  if (code) return code;
  if (/Could not connect|Connection refused|ECONNREFUSED/i.test(message)) return 'connection refused';
  return message.split('\n')[0].slice(0, 80);
}

/**
 * Writes SET k<n> v<n>-… one at a time to the master the sentinels name, recording which writes
 * were acknowledged. Bounded by `maxWrites` and `timeoutMs`; `stop()` ends it early.
 */
export class AcknowledgedWriter {
  readonly result: WriterResult = { attempted: 0, acknowledged: new Map(), acknowledgedBy: new Map(), refused: {} };
  private stopped = false;
  private done?: Promise<void>;

  constructor(private readonly view: SentinelView, private readonly options: { maxWrites: number; timeoutMs: number; prefix: string }) {}

  start(): void {
    this.done = this.loop();
  }

  async stop(): Promise<WriterResult> {
    this.stopped = true;
    await this.done;
    return this.result;
  }

  ackedBy(port: number): number {
    return this.result.acknowledgedBy.get(port) ?? 0;
  }

  private async loop(): Promise<void> {
    const deadline = Date.now() + this.options.timeoutMs;
    let master: number | undefined;
    for (let n = 0; n < this.options.maxWrites && !this.stopped && Date.now() < deadline; n++) {
      const key = `${this.options.prefix}${n}`;
      const value = `v${n}-${Date.now()}`;
      this.result.attempted++;
      try {
        master ??= await masterSeenBy(this.view, this.view.sentinels[n % this.view.sentinels.length]);
        const reply = await redisCli(master, this.view.password, 'SET', key, value);
        if (reply === 'OK') {
          this.result.acknowledged.set(key, value);
          this.result.acknowledgedBy.set(master, this.ackedBy(master) + 1);
        } else {
          this.result.refused[`reply ${reply.slice(0, 40)}`] = (this.result.refused[`reply ${reply.slice(0, 40)}`] ?? 0) + 1;
        }
      } catch (error) {
        const why = reason(error as Error);
        this.result.refused[why] = (this.result.refused[why] ?? 0) + 1;
        master = undefined;
        await sleep(25);
      }
    }
  }
}

/** Keys whose value on the server (MGET, in batches) differs from what was acknowledged. */
export async function missingOrDifferent(port: number, password: string, expected: Map<string, string>): Promise<string[]> {
  const keys = [...expected.keys()];
  const bad: string[] = [];
  for (let i = 0; i < keys.length; i += 200) {
    const batch = keys.slice(i, i + 200);
    const values = (await redisCli(port, password, 'MGET', ...batch)).split('\n');
    batch.forEach((key, j) => {
      if ((values[j] ?? '') !== expected.get(key)) bad.push(key);
    });
  }
  return bad;
}

/** INFO replication of one node, as a record. */
export async function replicationInfo(port: number, password: string): Promise<Record<string, string>> {
  return fields(await redisCli(port, password, 'INFO', 'replication'), ':');
}
