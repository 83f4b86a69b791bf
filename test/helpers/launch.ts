/** Writing a rendered ContainerLaunch to disk, as the container would see it (tests' paths are temp paths). */
import * as fs from 'fs';
import * as path from 'path';
import type { ContainerLaunch } from '../../runtime/render/types';

/** Writes a launch's files where they say, start scripts executable. */
export function writeLaunchFiles(launch: ContainerLaunch): void {
  for (const file of launch.files) {
    fs.mkdirSync(path.dirname(file.path), { recursive: true });
    fs.writeFileSync(file.path, file.content, { mode: file.executable ? 0o755 : 0o644 });
  }
}

/** Writes a launch's files and returns its start script (`/bin/sh <script>` entrypoints). */
export function writeStartScript(launch: ContainerLaunch): string {
  writeLaunchFiles(launch);
  const script = launch.entrypoint?.[1];
  if (!script) throw new Error('the launch has no start script');
  return script;
}
