/**
 * The S3 bucket naming rule, shared by the config schema, the off-site bucket construct and the
 * MinIO setup renderer: 3-63 characters of a-z, 0-9, "." and "-", starting and ending with a
 * letter or digit, no "..". (AWS also refuses names shaped like IP addresses; MinIO does too.)
 */
export const BUCKET_NAME = /^(?!.*\.\.)(?!\d+\.\d+\.\d+\.\d+$)[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;

/** The rule in words, for messages. */
export const BUCKET_NAME_RULE = '3-63 characters of a-z, 0-9, "." and "-", starting and ending with a letter or digit, no ".."';

export function isBucketName(name: string): boolean {
  return BUCKET_NAME.test(name);
}
