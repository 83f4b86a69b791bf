/** One value of the backup agent's Prometheus /metrics, as a scraper reads it. */
import * as http from 'http';

/** The value of metric `name` for job `job`, or undefined when the agent does not answer or has none. */
export async function agentMetric(port: number, name: string, job: string): Promise<number | undefined> {
  const text = await new Promise<string>((resolve) => {
    const request = http.get({ host: '127.0.0.1', port, path: '/metrics', timeout: 2000 }, (response) => {
      let body = '';
      response.on('data', (chunk: Buffer) => (body += chunk.toString()));
      response.on('end', () => resolve(body));
    });
    request.on('error', () => resolve(''));
    request.on('timeout', () => request.destroy());
  });
  const match = new RegExp(`^${name}\\{[^}]*job="${job}"[^}]*\\} (\\S+)$`, 'm').exec(text);
  return match ? Number(match[1]) : undefined;
}
