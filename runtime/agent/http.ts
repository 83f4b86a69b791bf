/**
 * The agent's HTTP endpoint: GET /metrics (Prometheus) and GET /health (200 or 503 with JSON
 * saying which job is late). Nothing here changes state, and nothing reveals configuration
 * beyond job names: the port is reachable from the whole container network.
 */
import * as http from 'http';
import type { Logger } from './log';
import { AgentState, assessHealth, renderMetrics, scheduleGaps, snapshotJobs } from './status';

export async function startHttpServer(state: AgentState, log: Logger, host: string, port: number): Promise<http.Server> {
  const gaps = scheduleGaps(state.config, state.startedAt);
  const server = http.createServer((request, response) => {
    const reply = (status: number, type: string, body: string) => {
      response.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' });
      response.end(body);
    };
    const route = `${request.method} ${(request.url ?? '/').split('?')[0]}`;
    const now = new Date();
    const answer =
      route === 'GET /metrics'
        ? snapshotJobs(state).then((snapshots) => reply(200, 'text/plain; version=0.0.4; charset=utf-8', renderMetrics(snapshots, state.config, now)))
        : route === 'GET /health'
          ? snapshotJobs(state).then((snapshots) => {
              const health = assessHealth(snapshots, gaps, state, now);
              reply(health.status === 'ok' ? 200 : 503, 'application/json', `${JSON.stringify(health)}\n`);
            })
          : Promise.resolve(reply(404, 'text/plain', 'not found: try GET /metrics or GET /health\n'));
    answer.catch((error: Error) => {
      log.error('http handler failed', { route, error: error.message });
      if (!response.headersSent) reply(500, 'text/plain', 'internal error\n');
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  log.info('http endpoint listening', { host, port });
  return server;
}
