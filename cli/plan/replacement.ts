/*
 * Which attribute changes make Terraform replace a resource (destroy, then create) instead of
 * updating it in place: the providers' own schemas, read at the versions the stacks require
 * (test/unit/cli/replacement.test.ts fails when a stack requires another version, so this table
 * is read again then). A path "a/b" is a nested attribute; a change at or under a listed path
 * forces replacement.
 *
 * - docker: github.com/kreuzwerker/terraform-provider-docker at tag v3.6.2,
 *   internal/provider/resource_docker_{container,image,network,volume}.go: every attribute with
 *   `ForceNew: true` (nested ones under their block; a block that is itself ForceNew is listed alone).
 *   Not listed, so updated in place: a container's memory, memory_swap, cpu_shares, cpu_set,
 *   restart, max_retry_count, must_run, healthcheck, destroy_grace_seconds.
 * - random: github.com/hashicorp/terraform-provider-random at tag v3.7.2,
 *   internal/provider/resource_password.go: attributes with a RequiresReplace plan modifier.
 * - aws: github.com/hashicorp/terraform-provider-aws. Read from source (the newest stored versions,
 *   not exactly 6.25.0): internal/service/iam/{user_policy,access_key}.go and
 *   internal/service/s3/bucket_{policy,public_access_block}.go, `ForceNew: true`. The other S3
 *   entries (bucket, versioning, encryption, lifecycle, object lock) are from the provider's
 *   documented behaviour, not a reading of its source: they decide only AWS rows, never a
 *   container's or a volume's. An IAM user is renamed in place.
 */

/** The provider versions the table below was read at, by the stacks' required_providers key. */
export const PROVIDERS_READ = { docker: '3.6.2', random: '3.7.2', aws: '6.25.0' } as const;

export const FORCE_NEW: Readonly<Record<string, readonly string[]>> = {
  docker_container: [
    'capabilities', 'cgroup_parent', 'cgroupns_mode', 'command', 'cpus', 'devices', 'dns', 'dns_opts',
    'dns_search', 'domainname', 'entrypoint', 'env', 'gpus', 'group_add', 'host', 'hostname', 'image',
    'ipc_mode', 'labels', 'log_driver', 'log_opts', 'mounts', 'name', 'network_mode',
    'networks_advanced', 'pid_mode', 'ports', 'privileged', 'publish_all_ports', 'read_only',
    'runtime', 'security_opts', 'shm_size', 'stdin_open', 'stop_signal', 'stop_timeout',
    'storage_opts', 'sysctls', 'tty', 'ulimit', 'upload', 'user', 'userns_mode', 'volumes',
    'working_dir',
  ],
  docker_image: [
    'build/build_args', 'build/build_id', 'build/build_log_file', 'build/builder', 'build/cache_from',
    'build/cgroup_parent', 'build/context', 'build/cpu_period', 'build/cpu_quota',
    'build/cpu_set_cpus', 'build/cpu_set_mems', 'build/cpu_shares', 'build/dockerfile',
    'build/extra_hosts', 'build/force_remove', 'build/isolation', 'build/labels', 'build/memory',
    'build/memory_swap', 'build/network_mode', 'build/no_cache', 'build/platform', 'build/pull_parent',
    'build/remote_context', 'build/secrets/env', 'build/secrets/id', 'build/secrets/src',
    'build/security_opt', 'build/session_id', 'build/shm_size', 'build/squash',
    'build/suppress_output', 'build/target', 'build/ulimit/hard', 'build/ulimit/name',
    'build/ulimit/soft', 'build/version', 'name', 'platform', 'pull_triggers', 'triggers',
  ],
  docker_network: [
    'attachable', 'check_duplicate', 'driver', 'ingress', 'internal', 'ipam_config', 'ipam_driver',
    'ipam_options', 'ipv6', 'labels', 'name', 'options',
  ],
  docker_volume: [
    'driver', 'driver_opts', 'labels', 'name',
  ],
  random_password: [
    'keepers', 'length', 'lower', 'min_lower', 'min_numeric', 'min_special', 'min_upper', 'number',
    'numeric', 'override_special', 'special', 'upper',
  ],
  aws_s3_bucket: ['bucket', 'bucket_prefix', 'object_lock_enabled'],
  aws_s3_bucket_lifecycle_configuration: ['bucket', 'expected_bucket_owner'],
  aws_s3_bucket_object_lock_configuration: ['bucket', 'expected_bucket_owner', 'object_lock_enabled'],
  aws_s3_bucket_policy: ['bucket'],
  aws_s3_bucket_public_access_block: ['bucket'],
  aws_s3_bucket_server_side_encryption_configuration: ['bucket', 'expected_bucket_owner'],
  aws_s3_bucket_versioning: ['bucket', 'expected_bucket_owner', 'mfa'],
  aws_iam_user: [],
  aws_iam_user_policy: ['name', 'name_prefix', 'user'],
  aws_iam_access_key: ['pgp_key', 'user'],
};

/**
 * The changed attribute paths (dotted, list indices dropped: "upload.content") that force `type`'s
 * replacement. A resource type missing from the table is assumed replaced by any change: a plan
 * that over-warns is safe, one that under-warns is not.
 */
export function replacingAttributes(type: string, changed: readonly string[]): string[] {
  const forceNew = FORCE_NEW[type];
  if (forceNew === undefined) return [...changed];
  return changed.filter((attribute) => {
    const slashed = attribute.split('.').join('/');
    return forceNew.some((p) => slashed === p || slashed.startsWith(`${p}/`));
  });
}
