/**
 * A minimal RESP2 client: enough to ask sentinels for replicas and to copy a keyspace.
 * redis-cli prints nested replies (SENTINEL REPLICAS) in a form that is fragile to parse, and
 * these few commands do not justify a Redis library in the image.
 *
 * Redis keys and values are bytes, not text: a bulk reply is a Buffer and an argument may be one,
 * so a key named `\xff\xfe…` goes out exactly as it came in. Decoding to a string is for replies
 * that are text by definition (INFO, SENTINEL fields), through `textOf`.
 */
import * as net from 'net';

/** Bulk strings are Buffers; status replies (`+OK`, TYPE's `hash`) are strings. */
export type RedisReply = Buffer | string | number | null | RedisReply[];

export class RedisReplyError extends Error {
  /** The server's own words (`OOM command not allowed …`), without the address. */
  readonly reply: string;

  constructor(reply: string, address?: string) {
    super(address === undefined ? reply : `${address}: ${reply}`);
    this.name = 'RedisReplyError';
    this.reply = reply;
  }
}

interface Pending {
  resolve(reply: RedisReply): void;
  reject(error: Error): void;
}

interface OpenArray {
  readonly items: RedisReply[];
  readonly length: number;
  received: number;
  /** An error inside an array (a script's error_reply table) fails the whole reply. */
  error?: RedisReplyError;
}

/**
 * Parses replies as their bytes arrive, in time linear in their size: consumed bytes are dropped,
 * a bulk string is assembled once all of it is here, and an array remembers the items it has. A
 * parser that started over on every chunk took quadratic time on a reply of large values.
 */
class ReplyParser {
  private chunks: Buffer[] = [];
  private bufferedBytes = 0;
  /** Bytes needed before the next item can be parsed (a bulk string's header says how many). */
  private needed = 1;
  private readonly open: OpenArray[] = [];

  /** Feeds a chunk; returns the replies it completed, in order. */
  feed(chunk: Buffer): Array<RedisReply | RedisReplyError> {
    this.chunks.push(chunk);
    this.bufferedBytes += chunk.length;
    const done: Array<RedisReply | RedisReplyError> = [];
    if (this.bufferedBytes < this.needed) return done;
    let buffer = this.chunks.length === 1 ? this.chunks[0] : Buffer.concat(this.chunks);
    let offset = 0;
    for (;;) {
      const item = this.parseItem(buffer, offset);
      if (item === undefined) break;
      offset = item.next;
      const reply = this.place(item.value);
      if (reply !== undefined) done.push(reply.value);
    }
    buffer = buffer.subarray(offset);
    this.chunks = buffer.length > 0 ? [buffer] : [];
    this.bufferedBytes = buffer.length;
    return done;
  }

  /** One item (a scalar, or an array's header) at `offset`; undefined when more bytes are needed. */
  private parseItem(buffer: Buffer, offset: number): { value: RedisReply | RedisReplyError | OpenArray; next: number } | undefined {
    const lineEnd = buffer.indexOf('\r\n', offset);
    if (lineEnd < 0) {
      this.needed = buffer.length - offset + 1;
      return undefined;
    }
    const type = String.fromCharCode(buffer[offset]);
    const line = buffer.toString('utf8', offset + 1, lineEnd);
    const after = lineEnd + 2;
    this.needed = 1;
    switch (type) {
      case '+':
        return { value: line, next: after };
      case '-':
        return { value: new RedisReplyError(line), next: after };
      case ':':
        return { value: Number(line), next: after };
      case '$': {
        const length = Number(line);
        if (length < 0) return { value: null, next: after };
        if (buffer.length < after + length + 2) {
          this.needed = after + length + 2 - offset;
          return undefined;
        }
        // A copy, so that a reply kept by the caller does not pin the whole receive buffer.
        return { value: Buffer.from(buffer.subarray(after, after + length)), next: after + length + 2 };
      }
      case '*': {
        const length = Number(line);
        return { value: length < 0 ? null : { items: [], length, received: 0 }, next: after };
      }
      default:
        throw new Error(`unexpected byte '${type}' in a Redis reply`);
    }
  }

  /** Puts a parsed item into the array being filled; returns a reply when one is complete. */
  private place(item: RedisReply | RedisReplyError | OpenArray): { value: RedisReply | RedisReplyError } | undefined {
    if (isOpenArray(item) && item.length > 0) {
      this.open.push(item);
      return undefined;
    }
    let value = isOpenArray(item) ? item.items : item;
    for (;;) {
      const parent = this.open[this.open.length - 1];
      if (parent === undefined) return { value };
      parent.received++;
      if (value instanceof RedisReplyError) parent.error ??= value;
      else parent.items.push(value);
      if (parent.received < parent.length) return undefined;
      this.open.pop();
      value = parent.error ?? parent.items;
    }
  }
}

function isOpenArray(value: RedisReply | RedisReplyError | OpenArray): value is OpenArray {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !Buffer.isBuffer(value) && !(value instanceof RedisReplyError);
}

function encodeCommand(args: ReadonlyArray<string | Buffer>): Buffer {
  const parts: Buffer[] = [Buffer.from(`*${args.length}\r\n`)];
  for (const arg of args) {
    const bytes = typeof arg === 'string' ? Buffer.from(arg, 'utf8') : arg;
    parts.push(Buffer.from(`$${bytes.length}\r\n`), bytes, Buffer.from('\r\n'));
  }
  return Buffer.concat(parts);
}

export class RedisConnection {
  private readonly parser = new ReplyParser();
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

  command(...args: Array<string | Buffer>): Promise<RedisReply> {
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
    let replies: Array<RedisReply | RedisReplyError>;
    try {
      replies = this.parser.feed(chunk);
    } catch (error) {
      this.abandon(new Error(`${this.address}: ${(error as Error).message}`));
      return;
    }
    for (const reply of replies) {
      const waiter = this.pending.shift();
      if (reply instanceof RedisReplyError) waiter?.reject(new RedisReplyError(reply.reply, this.address));
      else waiter?.resolve(reply);
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

/** A reply that is text by definition (INFO, SENTINEL fields, an address), decoded as UTF-8. */
export function textOf(reply: RedisReply): string {
  return Buffer.isBuffer(reply) ? reply.toString('utf8') : String(reply);
}

/** SENTINEL replies come as flat [field, value, field, value, …] arrays. */
export function fieldsOf(reply: RedisReply): Record<string, string> {
  const out: Record<string, string> = {};
  if (!Array.isArray(reply)) return out;
  for (let i = 0; i + 1 < reply.length; i += 2) out[textOf(reply[i])] = textOf(reply[i + 1]);
  return out;
}

/** `INFO` text as a map of its `key:value` lines. */
export function parseInfo(text: RedisReply): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of textOf(text).split('\r\n')) {
    const colon = line.indexOf(':');
    if (colon > 0 && !line.startsWith('#')) out[line.slice(0, colon)] = line.slice(colon + 1);
  }
  return out;
}
