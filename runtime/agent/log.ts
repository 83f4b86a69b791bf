/**
 * JSON log lines, one object per line: {time, level, job?, msg, fields?}. Container log drivers
 * and Loki-style collectors parse them without configuration. Callers pass names of secrets,
 * never their values; nothing here can tell a secret apart, so nothing here tries.
 */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

export type LogFields = Record<string, string | number | boolean | null | undefined>;

export interface Logger {
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
  /** The same logger, with every line tagged with `job`. */
  forJob(job: string): Logger;
}

export type LogSink = (line: string) => void;

/** stderr, so that `list --json` and other command output on stdout stays machine-readable. */
const stderrSink: LogSink = (line) => process.stderr.write(`${line}\n`);

export function createLogger(sink: LogSink = stderrSink, job?: string): Logger {
  const write = (level: LogLevel) => (msg: string, fields?: LogFields) => {
    const entry: Record<string, unknown> = { time: new Date().toISOString(), level };
    if (job !== undefined) entry.job = job;
    entry.msg = msg;
    if (fields !== undefined && Object.keys(fields).length > 0) entry.fields = fields;
    sink(JSON.stringify(entry));
  };
  return {
    debug: write('debug'),
    info: write('info'),
    warn: write('warn'),
    error: write('error'),
    forJob: (name) => createLogger(sink, name),
  };
}
