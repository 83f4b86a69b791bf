import * as fs from 'fs';
import * as path from 'path';
import { DEFAULT_BACKUP_JOBS } from '../../../config/model';
import { portLayout, SLOT_SIZE } from '../../../config/ports';
import { BACKUP_SERVICES, SERVICE_DEFAULTS, servicesSchema } from '../../../config/schema';
import { loadOrThrow, REPO_ROOT, synthEnvironment } from '../synth/support';

/*
 * Examples and tables in the docs are checked against the code that decides them, so a doc cannot
 * drift from what Tenantry writes. On a mismatch the test prints the text that belongs there;
 * `UPDATE_DOCS=1 npx jest test/unit/docs` writes it into the file.
 */

const UPDATE = process.env.UPDATE_DOCS === '1';

/** Replaces the text between `<!-- generated: name -->` and `<!-- end: name -->`, or checks it. */
function checkGenerated(file: string, name: string, expected: string): void {
  const full = path.join(REPO_ROOT, file);
  const text = fs.readFileSync(full, 'utf8');
  const open = `<!-- generated: ${name} (test/unit/docs/generated-docs.test.ts) -->\n`;
  const close = `<!-- end: ${name} -->`;
  const start = text.indexOf(open);
  const end = text.indexOf(close);
  if (start < 0 || end < start) throw new Error(`${file} has no "${open.trim()}" ... "${close}" block`);
  const current = text.slice(start + open.length, end);
  if (UPDATE && current !== expected) {
    fs.writeFileSync(full, text.slice(0, start + open.length) + expected + text.slice(end));
    return;
  }
  if (current !== expected) {
    throw new Error(`${file}: the "${name}" block differs from what the code says; it should read:\n\n${expected}\n(UPDATE_DOCS=1 npx jest test/unit/docs rewrites it)`);
  }
}

describe('docs/agent-config.md', () => {
  it("shows, as its example, exactly the agent config the Backup construct writes for the bundled example's prod/acme", () => {
    const config = loadOrThrow(REPO_ROOT);
    const prod = config.environments.find((e) => e.name === 'prod')!;
    const { stack } = synthEnvironment(prod);
    const acme = stack.tenants.find((t) => t.node.id === 'acme')!;
    const agentConfig = JSON.stringify(acme.backup!.agentConfig, null, 2);
    checkGenerated('docs/agent-config.md', 'example', '```json\n' + agentConfig + '\n```\n');
  });
});

describe('README configuration reference', () => {
  it('lists which port of a slot each container publishes, as config/ports.ts assigns them', () => {
    // Every service on, at its maximum number of replicas and sentinels: the whole slot.
    const services = servicesSchema.parse({ postgres: {}, qdrant: {}, minio: {}, redis: { replicas: 5, sentinels: 7, quorum: 2 } });
    const rows = portLayout(services, true).map((e) => `| ${e.offset} | \`${e.container}\` | ${e.internal} | ${e.dataPort ? 'yes' : 'no'} |`);
    const table = ['| offset in the slot | container | container port | data port (refused in production unless allowed) |', '|---|---|---|---|', ...rows].join('\n');
    expect(rows.length).toBeLessThanOrEqual(SLOT_SIZE);
    checkGenerated('README.md', 'port-slots', table + '\n');
  });

  it('gives the backup defaults that config/model.ts applies', () => {
    const rows = BACKUP_SERVICES.map((service) => {
      const job = DEFAULT_BACKUP_JOBS[service];
      const r = job.retention;
      return `| \`${service}\` | \`${job.schedule}\` | ${job.verifySchedule ? `\`${job.verifySchedule}\`` : '—'} | ${r.daily} | ${r.weekly} | ${r.monthly} | ${job.offsite ? 'yes' : 'no'} |`;
    });
    const table = ['| job | schedule | verifySchedule | daily | weekly | monthly | offsite |', '|---|---|---|---|---|---|---|', ...rows].join('\n');
    checkGenerated('README.md', 'backup-defaults', table + '\n');
  });

  it("gives, in each services row, the defaults config/schema.ts resolves", () => {
    const readme = fs.readFileSync(path.join(REPO_ROOT, 'README.md'), 'utf8');
    const shown = (v: unknown) => (typeof v === 'string' ? `\`${v}\`` : Array.isArray(v) ? `[${v.join(', ')}]` : String(v));
    const wrong: string[] = [];
    for (const [service, defaults] of Object.entries(SERVICE_DEFAULTS)) {
      const row = readme.split('\n').find((line) => line.startsWith(`| \`services.${service}\` |`));
      if (!row) throw new Error(`README.md has no "services.${service}" row`);
      for (const [key, value] of Object.entries(defaults)) {
        // On/off is the row's default column; empty maps and lists have nothing to show.
        if (key === 'enabled' || (typeof value === 'object' && Object.keys(value as object).length === 0)) continue;
        const parenthesis = new RegExp(`\`${key}\` \\(([^)]*)\\)`).exec(row)?.[1] ?? '';
        const token = shown(value).replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
        if (!new RegExp(`(^|[^\\w.])${token}($|[^\\w.])`).test(parenthesis)) wrong.push(`services.${service}.${key}: the README should say "\`${key}\` (${shown(value)}"`);
      }
    }
    expect(wrong).toEqual([]);
  });
});
