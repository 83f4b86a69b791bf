/**
 * The labels every Tenantry container and volume carries (DESIGN.md, "Contracts users rely on"):
 * the constructs write them, and the operator CLI finds a tenant's containers on its Docker host by
 * them, so both read them from here.
 */
export const LABELS = { environment: 'tenantry.env', tenant: 'tenantry.tenant', service: 'tenantry.service' } as const;

/** `tenantry.service` of the container that runs a tenant's backup agent (`tenantry-agent serve`). */
export const BACKUP_SERVICE = 'backup';

/** `tenantry.service` of a tenant's own Postgres server, which a point-in-time restore restarts. */
export const POSTGRES_SERVICE = 'postgres';
