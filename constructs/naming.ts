import { LABELS } from '../config/container-labels';

/** Container names are `<env>-<tenant>-<service>[-<n>]`, which is also their hostname on the network. */
export function containerName(environment: string, tenant: string, service: string, index?: number): string {
  return index === undefined ? `${environment}-${tenant}-${service}` : `${environment}-${tenant}-${service}-${index}`;
}

/** The labels every Tenantry container and volume carries, so operators can filter by them. */
export function tenantryLabels(environment: string, tenant: string, service: string): { label: string; value: string }[] {
  return [
    { label: LABELS.environment, value: environment },
    { label: LABELS.service, value: service },
    { label: LABELS.tenant, value: tenant },
  ];
}
