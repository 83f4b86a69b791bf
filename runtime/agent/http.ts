/**
 * The agent's HTTP endpoint: GET /metrics (Prometheus) and GET /health (200 or 503 with JSON
 * saying which job is late). Nothing here changes state, and nothing reveals configuration
 * beyond job names: the port is reachable from the whole container network.
 */
import * as http from 'http';
import type { Logger } from './log';
import { AgentState, assessHealth, renderMetrics, scheduleGaps, snapshotJobs } from './status';

interface Reply {
  status: number;
  type: string;
  body: string;
}

type Route = (now: Date) => Promise<Reply>;

function routes(state: AgentState): Record<string, Route> {
  const gaps = scheduleGaps(state.config, state.startedAt);
  return {
    'GET /metrics': async (now) => ({
      status: 200,
      type: 'text/plain; version=0.0.4; charset=utf-8',
      body: renderMetrics(await snapshotJobs(state), state.config, now),
    }),
    'GET /health': async (now) => {
      const health = assessHealth(await snapshotJobs(state), gaps, state, now);
      return { status: health.status === 'ok' ? 200 : 503, type: 'application/json', body: `${JSON.stringify(health)}\n` };
    },
  };
}

const NOT_FOUND: Reply = { status: 404, type: 'text/plain', body: 'not found: try GET /metrics or GET /health\n' };

export async function startHttpServer(state: AgentState, log: Logger, host: string, port: number): Promise<http.Server> {
  const table = routes(state);
  const server = http.createServer((request, response) => {
    const route = `${request.method} ${(request.url ?? '/').split('?')[0]}`;
    const handler = table[route];
    const reply = handler ? handler(new Date()) : Promise.resolve(NOT_FOUND);
    reply
      .catch((error: Error): Reply => {
        log.error('http handler failed', { route, error: error.message });
        return { status: 500, type: 'text/plain', body: 'internal error\n' };
      })
      .then(({ status, type, body }) => {
        response.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' });
        response.end(body);
      });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  log.info('http endpoint listening', { host, port });
  return server;
}
