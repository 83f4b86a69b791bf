/**
 * RedisConnection's reply timeout, against a TCP server that accepts connections and never
 * answers (what a stopped or wedged Redis looks like to a client).
 */
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
