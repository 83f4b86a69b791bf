import { LABELS } from '../config/container-labels';

// The rule lives in config/ (its checks compare the names too); constructs name containers by it.
export { containerName } from '../config/naming';

/** The labels every Tenantry container and volume carries, so operators can filter by them. */
export function tenantryLabels(environment: string, tenant: string, service: string): { label: string; value: string }[] {
  return [
    { label: LABELS.environment, value: environment },
    { label: LABELS.service, value: service },
    { label: LABELS.tenant, value: tenant },
  ];
}
