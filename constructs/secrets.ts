import { Password } from '@cdktf/provider-random/lib/password';
import { Construct } from 'constructs';

/**
 * A generated secret. Only alphanumerics: the value is embedded in connection URLs, PgBouncer's
 * auth file and Redis config lines, where special characters would need a different escaping
 * each. 32 characters of [A-Za-z0-9] is ~190 bits.
 *
 * The value reaches the synthesized JSON only as a reference to the `random_password` resource.
 */
export function generatedSecret(scope: Construct, id: string): string {
  return new Password(scope, id, { length: 32, special: false }).result;
}
