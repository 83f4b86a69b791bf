import * as path from 'path';

/*
 * What a storage path may be: the rule the schema applies to every host path, data root and NFS
 * export. Apart from the layout (config/storage-layout.ts), which needs the parsed config's types,
 * so that the schema can import it without importing itself back.
 */

/**
 * Directories that belong to the operating system or to Docker itself: tenant data at or under
 * them could overwrite the host, or be overwritten by it.
 */
const SYSTEM_DIRECTORIES = ['/bin', '/boot', '/dev', '/etc', '/lib', '/lib32', '/lib64', '/libx32', '/proc', '/run', '/sbin', '/sys', '/usr', '/var/lib/docker', '/var/lib/containerd', '/var/run'];
/** Directories whose direct children are the system's own: a root here would mix tenants with them. */
const SYSTEM_PARENTS = ['/', '/var', '/var/lib', '/home'];

/** What a storage path names: a directory on the Docker host, one relative to the config directory ("./…"), or an NFS export. */
type StoragePathKind = 'host' | 'relative' | 'nfs-export';

/**
 * Why a host path or NFS export cannot hold tenant data, as a predicate ("must …"), or undefined
 * when it can. Paths must be written normalized so that the one spelling the checks compare is
 * the one Docker mounts: one trailing "/" is allowed (and dropped), nothing else.
 */
export function storagePathProblem(p: string, kind: StoragePathKind): string | undefined {
  if (/[\s\u0000-\u001f\u007f]/.test(p)) return 'must not contain spaces or control characters';
  if (kind !== 'nfs-export' && p.includes(':')) return 'must not contain ":" (Docker reads it as the end of the host path)';
  if (p === '/') return kind === 'nfs-export' ? undefined : 'is the root of the host\'s file system: give tenant data a directory of its own, such as /srv/tenantry';
  const trimmed = p.replace(/(.)\/$/, '$1');
  const segments = trimmed.split('/').slice(1);
  const normalized = `${kind === 'relative' ? '.' : ''}${path.posix.normalize(trimmed)}`;
  if (segments.includes('..')) return 'must not contain ".." (a path must stay under the directory it names): write the directory it means without ".."';
  if (segments.includes('.')) return `must not contain "." segments: write ${normalized}`;
  if (segments.includes('')) return `must not contain empty segments ("//"): write ${normalized}`;
  if (kind !== 'host') return undefined;
  const system = SYSTEM_DIRECTORIES.find((dir) => trimmed === dir || trimmed.startsWith(`${dir}/`));
  if (system) return `is ${trimmed === system ? '' : 'under '}${system}, which belongs to the host's system or to Docker: give tenant data a directory of its own, such as /srv/tenantry`;
  if (SYSTEM_PARENTS.includes(trimmed)) return `is ${trimmed}, whose subdirectories are the system's own (tenant directories would sit among them): give tenant data a directory of its own, such as /srv/tenantry`;
  return undefined;
}

/**
 * Why an environment's `dataRoot` cannot be used, or undefined. A relative root is "./…" inside
 * the config directory: "../" would put tenant data in a folder that no file of this config names
 * and that moves when the config is checked out elsewhere, so such a root is written absolute.
 */
export function dataRootProblem(p: string): string | undefined {
  if (p === '..' || p.startsWith('../')) return 'must not leave the config directory: a relative dataRoot is "./…" inside it, so that the data moves with the config; write the absolute path instead';
  if (p === './') return 'is the config directory itself: name a folder inside it, such as ./data';
  if (p.startsWith('./')) return storagePathProblem(p.slice(1), 'relative');
  if (!p.startsWith('/')) return 'must be an absolute path, or start with "./" to mean relative to the config directory';
  return storagePathProblem(p, 'host');
}
