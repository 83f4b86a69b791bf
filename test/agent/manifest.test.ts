/**
 * manifest.json's own checksum: a damaged manifest is refused, one written before checksums is
 * still read, and `list` tells them apart (store.ts).
 */
import * as fs from 'fs';
import * as path from 'path';
import { Manifest, MANIFEST_FILE, readManifest, renderManifest } from '../../runtime/agent/manifest';
import { BackupStore } from '../../runtime/agent/store';
import { tempDir } from '../helpers/servers';

const manifest: Manifest = {
  formatVersion: 1,
  tenant: 'acme',
  environment: 'prod',
  job: 'pg',
  kind: 'postgres',
  id: 'pg-20250630T010000.000Z',
  trigger: 'schedule',
  status: 'ok',
  startedAt: '2025-06-30T01:00:00.000Z',
  endedAt: '2025-06-30T01:02:00.000Z',
  sizeBytes: 3,
  files: [{ path: 'app.dump/toc.dat', size: 3, sha256: 'a'.repeat(64) }],
  source: { version: '15.8' },
  tools: { pg_dump: 'pg_dump (PostgreSQL) 15.8' },
  check: { at: '2025-06-30T01:02:00.000Z', method: 'pg_restore --list', result: 'passed' },
  details: { databases: { app: { tables: { 'public.orders': 5000 } } } },
};

describe('manifest checksum', () => {
  test('a rendered manifest ends with its checksum and reads back as verified, unchanged', () => {
    const text = renderManifest(manifest);
    expect(text).toMatch(/,\n {2}"checksum": "sha256:[0-9a-f]{64}"\n}\n$/);
    expect(readManifest(text, 'm.json')).toEqual({ manifest, integrity: 'verified' });
    // Rewriting (a verification result, an off-site copy) renders a fresh checksum.
    expect(readManifest(renderManifest({ ...readManifest(text, 'm.json').manifest, offsite: { status: 'uploaded' } }), 'm.json').integrity).toBe('verified');
  });

  test('one changed row count makes the manifest damaged, named with both digests', () => {
    const text = renderManifest(manifest).replace('"public.orders": 5000', '"public.orders": 5001');
    expect(() => readManifest(text, '/backups/pg/x/manifest.json')).toThrow(
      /^\/backups\/pg\/x\/manifest\.json: manifest is damaged: its checksum is sha256:[0-9a-f]{64}, its content hashes to sha256:[0-9a-f]{64}$/,
    );
  });

  test('a manifest written before checksums is read as such', () => {
    const legacy = `${JSON.stringify({ ...manifest, trigger: undefined }, null, 2)}\n`;
    expect(readManifest(legacy, 'm.json')).toEqual({ manifest: { ...manifest, trigger: undefined }, integrity: 'absent' });
  });

  test('one damaged byte in the "checksum" key does not pass a changed row count off as a legacy manifest', () => {
    const text = renderManifest(manifest).replace('"public.orders": 5000', '"public.orders": 5001');
    const offset = text.indexOf('"checksum"') + 1;
    // Every position of the name, every byte value that keeps the file JSON.
    for (let i = 0; i < 'checksum'.length; i++) {
      for (let byte = 0; byte < 0x100; byte++) {
        const bytes = Buffer.from(text);
        if (bytes[offset + i] === byte || byte === 0x22 || byte === 0x5c) continue;
        bytes[offset + i] = byte;
        expect(() => readManifest(bytes.toString('utf8'), 'm.json')).toThrow(/^m\.json: manifest is (damaged|not JSON)/);
      }
    }
  });

  test('without "trigger" the changed name alone shows the damage, as does a key holding a sha256 digest', () => {
    const legacyShaped = (key: string, digest: string) => `${JSON.stringify({ ...manifest, trigger: undefined, [key]: digest }, null, 2)}\n`;
    expect(() => readManifest(legacyShaped('chec\ufffdsum', 'sha256:' + '0'.repeat(64)), 'm.json')).toThrow('m.json: manifest is damaged: its key "chec\ufffdsum" looks like a damaged "checksum" key');
    expect(() => readManifest(legacyShaped('cHecksuM', 'x'), 'm.json')).toThrow('m.json: manifest is damaged: its key "cHecksuM" looks like a damaged "checksum" key');
    expect(() => readManifest(legacyShaped('digest', 'sha256:' + '0'.repeat(64)), 'm.json')).toThrow('m.json: manifest is damaged: its key "digest" looks like a damaged "checksum" key');
  });

  test('a manifest without checksum that carries "trigger" is damaged, not legacy', () => {
    const stripped = `${JSON.stringify(manifest, null, 2)}\n`;
    expect(() => readManifest(stripped, 'm.json')).toThrow('m.json: manifest is damaged: it has no "checksum" key but carries "trigger", which only agents that write checksums write');
  });

  test('list: a damaged manifest is listed as damaged, a legacy one as ok with a note', async () => {
    const store = new BackupStore(path.join(tempDir('manifest-list'), 'backups'), 'pg');
    const write = (id: string, text: string) => {
      fs.mkdirSync(store.backupDir(id), { recursive: true });
      fs.writeFileSync(path.join(store.backupDir(id), MANIFEST_FILE), text);
    };
    write('pg-20250628T010000.000Z', `${JSON.stringify({ ...manifest, id: 'pg-20250628T010000.000Z', startedAt: '2025-06-28T01:00:00.000Z', trigger: undefined }, null, 2)}\n`);
    write(manifest.id, renderManifest(manifest).replace('"sizeBytes": 3', '"sizeBytes": 4'));
    const [legacy, damaged] = await store.list();
    expect(legacy).toMatchObject({ state: 'ok', problem: 'manifest without checksum (written before manifests had one); its data files are still checked against their sha256' });
    expect(damaged).toMatchObject({ id: manifest.id, state: 'damaged', unreadable: true, problem: expect.stringContaining('manifest is damaged') });
    await expect(store.read(manifest.id)).rejects.toThrow('manifest is damaged');
  });
});
