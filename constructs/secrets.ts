import { Password } from '@cdktf/provider-random/lib/password';
import { Construct } from 'constructs';

/** 32 characters of [A-Za-z0-9] is ~190 bits. */
const SECRET_LENGTH = 32;

/**
 * A generated secret. Only alphanumerics: the value is embedded in connection URLs, PgBouncer's
 * auth file and Redis config lines, where special characters would need a different escaping
 * each.
 *
 * The value reaches the synthesized JSON only as a reference to the `random_password` resource.
 */
export function generatedSecret(scope: Construct, id: string): string {
  return new Password(scope, id, { length: SECRET_LENGTH, special: false }).result;
}
