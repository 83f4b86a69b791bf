import * as fs from 'fs';
import * as path from 'path';
import { ownDaemonPaths, startTestDocker } from '../helpers/docker';

describe('startTestDocker', () => {
  test('reuses the daemon DOCKER_HOST names and leaves it running on stop()', async () => {
    const reused = await startTestDocker();
    expect(reused.startedHere).toBe(false);
    expect(reused.host).toBe(process.env.DOCKER_HOST);
    await reused.stop();
    await expect(reused.docker.ping()).resolves.toBeTruthy();
  });

  test('starts its own dockerd (own data root, socket, exec root) when none answers, and stop() ends that process', async () => {
    // A second daemon beside the suite's: no bridge and no iptables rules, so the two do not meet.
    const cache = fs.mkdtempSync(path.join(process.env.TMPDIR ?? '/tmp', 'dockerd-'));
    const own = await startTestDocker({ env: {}, cache, daemonArgs: ['--bridge=none', '--iptables=false'] });
    try {
      expect(own.startedHere).toBe(true);
      const files = ownDaemonPaths(cache);
      expect(own.host).toBe(`unix://${files.socket}`);
      expect((await own.docker.info()).DockerRootDir).toBe(files.dataRoot);
      const pid = Number(fs.readFileSync(files.pidFile, 'utf8'));
      // Not the starting run's TMPDIR, which goes away while other runs still use the daemon.
      expect(fs.readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0')).toContain(`TMPDIR=${files.tmp}`);
      await own.stop();
      expect(() => process.kill(pid, 0)).toThrow();
      await expect(own.docker.ping()).rejects.toThrow();
    } finally {
      await own.stop();
      fs.rmSync(cache, { recursive: true, force: true });
    }
  });
});
