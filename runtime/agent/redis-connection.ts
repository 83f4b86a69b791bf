/**
 * A minimal RESP2 client: enough to ask sentinels for replicas and to drive SCAN and MIGRATE.
 * redis-cli prints nested replies (SENTINEL REPLICAS) in a form that is fragile to parse, and
 * these few commands do not justify a Redis library in the image.
 */
import * as net from 'net';

export type RedisReply = string | number | null | RedisReply[];

export class RedisReplyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RedisReplyError';
  }
}

interface Pending {
  resolve(reply: RedisReply): void;
  reject(error: Error): void;
}

/** Parses one reply from `buffer` at `offset`; undefined when more bytes are needed. */
function parseReply(buffer: Buffer, offset: number): { reply: RedisReply | RedisReplyError; next: number } | undefined {
  const lineEnd = buffer.indexOf('\r\n', offset);
  if (lineEnd < 0) return undefined;
  const type = String.fromCharCode(buffer[offset]);
  const line = buffer.toString('utf8', offset + 1, lineEnd);
  const after = lineEnd + 2;
  switch (type) {
    case '+':
      return { reply: line, next: after };
    case '-':
      return { reply: new RedisReplyError(line), next: after };
    case ':':
      return { reply: Number(line), next: after };
    case '$': {
      const length = Number(line);
      if (length < 0) return { reply: null, next: after };
      if (buffer.length < after + length + 2) return undefined;
      return { reply: buffer.toString('utf8', after, after + length), next: after + length + 2 };
    }
    case '*': {
      const count = Number(line);
      if (count < 0) return { reply: null, next: after };
      const items: RedisReply[] = [];
      let next = after;
      for (let i = 0; i < count; i++) {
        const item = parseReply(buffer, next);
        if (item === undefined) return undefined;
        if (item.reply instanceof RedisReplyError) return item;
        items.push(item.reply);
        next = item.next;
      }
      return { reply: items, next };
    }
    default:
      throw new Error(`unexpected byte '${type}' in a Redis reply`);
  }
}

function encodeCommand(args: readonly string[]): Buffer {
  const parts = [Buffer.from(`*${args.length}\r\n`)];
  for (const arg of args) {
    const bytes = Buffer.from(arg, 'utf8');
    parts.push(Buffer.from(`$${bytes.length}\r\n`), bytes, Buffer.from('\r\n'));
  }
  return Buffer.concat(parts);
}

export class RedisConnection {
  private buffered = Buffer.alloc(0);
  private readonly pending: Pending[] = [];
  private closedError: Error | undefined;

  private constructor(
    private readonly socket: net.Socket,
    readonly address: string,
    /** How long a command may wait for its reply; 0: as long as it takes. */
    private readonly replyTimeoutMs: number,
  ) {
    socket.on('data', (chunk) => this.receive(chunk));
    socket.on('error', (error) => this.fail(new Error(`${address}: ${error.message}`)));
    socket.on('close', () => this.fail(new Error(`${address}: connection closed`)));
  }

  /**
   * Connects (bounded by `timeoutMs`) and authenticates when a password is given. Every reply,
   * AUTH's included, must come within `replyTimeoutMs`: a server that accepts connections but
   * does not answer (stopped, swapping, wedged) fails the command instead of holding the job, and
   * the job's lock, for ever. 0 waits as long as it takes (for commands that bound themselves).
   */
  static async open(
    endpoint: { host: string; port: number } | { path: string },
    password: string | undefined,
    timeoutMs = 5000,
    replyTimeoutMs = 10_000,
  ): Promise<RedisConnection> {
    const address = 'path' in endpoint ? endpoint.path : `${endpoint.host}:${endpoint.port}`;
    const socket = await new Promise<net.Socket>((resolve, reject) => {
      const s = net.connect(endpoint);
      s.setTimeout(timeoutMs, () => s.destroy(new Error(`no answer within ${timeoutMs} ms`)));
      s.once('connect', () => {
        s.setTimeout(0);
        resolve(s);
      });
      s.once('error', (error) => reject(new Error(`cannot connect to ${address}: ${error.message}`)));
    });
    const connection = new RedisConnection(socket, address, replyTimeoutMs);
    if (password !== undefined) {
      try {
        await connection.command('AUTH', password);
      } catch (error) {
        // A refused password leaves the socket open on the server's side (Redis's timeout is 0).
        connection.close();
        throw error;
      }
    }
    return connection;
  }

  command(...args: string[]): Promise<RedisReply> {
    if (this.closedError) return Promise.reject(this.closedError);
    return new Promise((resolve, reject) => {
      // A late reply would answer the wrong command: the connection is closed, not reused.
      const timer = this.replyTimeoutMs > 0 ? setTimeout(() => this.abandon(new Error(`${this.address}: no reply to ${args[0]} within ${this.replyTimeoutMs} ms`)), this.replyTimeoutMs) : undefined;
      const settled = () => clearTimeout(timer);
      this.pending.push({
        resolve: (reply) => {
          settled();
          resolve(reply);
        },
        reject: (error) => {
          settled();
          reject(error);
        },
      });
      this.socket.write(encodeCommand(args));
    });
  }

  close(): void {
    this.socket.destroy();
  }

  private receive(chunk: Buffer): void {
    this.buffered = Buffer.concat([this.buffered, chunk]);
    for (;;) {
      const parsed = parseReply(this.buffered, 0);
      if (parsed === undefined) return;
      this.buffered = this.buffered.subarray(parsed.next);
      const waiter = this.pending.shift();
      if (parsed.reply instanceof RedisReplyError) waiter?.reject(new RedisReplyError(`${this.address}: ${parsed.reply.message}`));
      else waiter?.resolve(parsed.reply);
    }
  }

  private abandon(error: Error): void {
    this.fail(error);
    this.socket.destroy();
  }

  private fail(error: Error): void {
    this.closedError ??= error;
    for (const waiter of this.pending.splice(0)) waiter.reject(error);
  }
}

/** SENTINEL replies come as flat [field, value, field, value, …] arrays. */
export function fieldsOf(reply: RedisReply): Record<string, string> {
  const out: Record<string, string> = {};
  if (!Array.isArray(reply)) return out;
  for (let i = 0; i + 1 < reply.length; i += 2) out[String(reply[i])] = String(reply[i + 1]);
  return out;
}

/** `INFO` text as a map of its `key:value` lines. */
export function parseInfo(text: RedisReply): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of String(text).split('\r\n')) {
    const colon = line.indexOf(':');
    if (colon > 0 && !line.startsWith('#')) out[line.slice(0, colon)] = line.slice(colon + 1);
  }
  return out;
}
