/**
 * RedisConnection's reply timeout, against a TCP server that accepts connections and never
 * answers (what a stopped or wedged Redis looks like to a client).
 */
import { createHash } from 'crypto';
import * as net from 'net';
import { RedisConnection } from '../../runtime/agent/redis-connection';

describe('RedisConnection reply timeout', () => {
  let server: net.Server;
  let port: number;
  const sockets: net.Socket[] = [];

  beforeAll(async () => {
    server = net.createServer((socket) => sockets.push(socket));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as net.AddressInfo).port;
  });

  afterAll(async () => {
    for (const socket of sockets) socket.destroy();
    await new Promise((resolve) => server.close(resolve));
  });

  test('a command with no reply fails after the timeout, and so does everything after it', async () => {
    const connection = await RedisConnection.open({ host: '127.0.0.1', port }, undefined, 1000, 200);
    const started = Date.now();
    await expect(connection.command('PING')).rejects.toThrow(`127.0.0.1:${port}: no reply to PING within 200 ms`);
    expect(Date.now() - started).toBeGreaterThanOrEqual(190);
    // A late reply would answer the wrong command: the connection is not used again.
    await expect(connection.command('INFO', 'server')).rejects.toThrow('no reply to PING within 200 ms');
  });

  test('AUTH is bounded too, so opening a connection to a silent server fails', async () => {
    await expect(RedisConnection.open({ host: '127.0.0.1', port }, 'secret', 1000, 200)).rejects.toThrow(`127.0.0.1:${port}: no reply to AUTH within 200 ms`);
  });

  test('0 waits as long as it takes', async () => {
    const connection = await RedisConnection.open({ host: '127.0.0.1', port }, undefined, 1000, 0);
    const outcome = await Promise.race([connection.command('PING').then(() => 'replied', () => 'failed'), new Promise((resolve) => setTimeout(() => resolve('still waiting'), 400))]);
    expect(outcome).toBe('still waiting');
    connection.close();
  });
});

/**
 * Keys and values are bytes: what goes out and what comes back must be exactly those bytes,
 * however the reply is cut into TCP chunks. Against a TCP server that records the command and
 * answers with a reply written here byte for byte.
 */
describe('RedisConnection bytes', () => {
  const everyByte = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
  const bulk = (bytes: Buffer) => Buffer.concat([Buffer.from(`$${bytes.length}\r\n`), bytes, Buffer.from('\r\n')]);

  /** Serves one connection: records what it receives, answers with `reply` in `pieces` writes. */
  async function serve(reply: Buffer, pieces: number): Promise<{ port: number; received: () => Buffer; close: () => Promise<void> }> {
    const chunks: Buffer[] = [];
    const sockets: net.Socket[] = [];
    const server = net.createServer((socket) => {
      sockets.push(socket);
      socket.setNoDelay(true);
      socket.once('data', async (chunk) => {
        chunks.push(chunk);
        const size = Math.ceil(reply.length / pieces);
        for (let at = 0; at < reply.length; at += size) {
          socket.write(reply.subarray(at, at + size));
          await new Promise((resolve) => setImmediate(resolve));
        }
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return {
      port: (server.address() as net.AddressInfo).port,
      received: () => Buffer.concat(chunks),
      close: async () => {
        for (const socket of sockets) socket.destroy();
        await new Promise((resolve) => server.close(resolve));
      },
    };
  }

  test('a Buffer argument is sent as its bytes, not re-encoded as UTF-8', async () => {
    const server = await serve(Buffer.from('+OK\r\n'), 1);
    const connection = await RedisConnection.open({ host: '127.0.0.1', port: server.port }, undefined);
    try {
      await expect(connection.command('SET', Buffer.from([0xff, 0xfe, 0x00, 0x0d, 0x0a]), everyByte)).resolves.toBe('OK');
      expect(server.received()).toEqual(Buffer.concat([Buffer.from('*3\r\n'), bulk(Buffer.from('SET')), bulk(Buffer.from([0xff, 0xfe, 0x00, 0x0d, 0x0a])), bulk(everyByte)]));
    } finally {
      connection.close();
      await server.close();
    }
  });

  test.each([
    ['in one piece', 1],
    ['one byte at a time', Number.MAX_SAFE_INTEGER],
  ])('nested arrays of bulk strings with every byte value, empty and null items come back exactly, %s', async (_how, pieces) => {
    const invalidUtf8 = Buffer.from([0xff, 0xfe, 0x41]);
    const reply = Buffer.concat([
      Buffer.from('*5\r\n'),
      bulk(everyByte),
      bulk(Buffer.alloc(0)),
      Buffer.from('$-1\r\n'),
      Buffer.from('*3\r\n'),
      bulk(invalidUtf8),
      Buffer.from(':-7\r\n'),
      Buffer.from('*0\r\n'),
      Buffer.from('+status\r\n'),
    ]);
    const server = await serve(reply, Math.min(pieces, reply.length));
    const connection = await RedisConnection.open({ host: '127.0.0.1', port: server.port }, undefined);
    try {
      expect(await connection.command('ANY')).toEqual([everyByte, Buffer.alloc(0), null, [invalidUtf8, -7, []], 'status']);
    } finally {
      connection.close();
      await server.close();
    }
  });

  test('a reply of many large values, cut into many chunks, comes back whole', async () => {
    const values = Array.from({ length: 64 }, (_, i) => Buffer.alloc(256 * 1024, i));
    const server = await serve(Buffer.concat([Buffer.from(`*${values.length}\r\n`), ...values.map(bulk)]), 4096);
    const connection = await RedisConnection.open({ host: '127.0.0.1', port: server.port }, undefined);
    try {
      // Compared as digests: jest compares Buffers element by element, minutes for 16 MiB.
      const digest = (items: unknown) => (items as Buffer[]).map((b) => createHash('sha256').update(b).digest('hex'));
      expect(digest(await connection.command('ANY'))).toEqual(digest(values));
    } finally {
      connection.close();
      await server.close();
    }
  });

  test('an error inside an array (a script\'s error reply) fails the command', async () => {
    const server = await serve(Buffer.from('*2\r\n:1\r\n-ERR inner\r\n'), 1);
    const connection = await RedisConnection.open({ host: '127.0.0.1', port: server.port }, undefined);
    try {
      await expect(connection.command('ANY')).rejects.toThrow(`127.0.0.1:${server.port}: ERR inner`);
    } finally {
      connection.close();
      await server.close();
    }
  });
});
