/**
 * The TypeScript types are generated from the JSON Schemas (lib/contract/generate-types.ts): a schema
 * change that TypeScript does not follow (no `npm run contract:types`) fails here, and the regenerated
 * types then fail `tsc` wherever the code no longer fits. The generator runs in its own process: its
 * formatter (prettier) loads modules in a way jest's VM does not allow.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { ROOT } from './python';

test('lib/contract/types.generated.ts is what the schemas give (run `npm run contract:types` after a schema change)', () => {
  const done = spawnSync(path.join(ROOT, 'node_modules', '.bin', 'tsx'), ['lib/contract/generate-types.ts', '--stdout'], { cwd: ROOT, encoding: 'utf8', timeout: 60_000 });
  expect(done.stderr).toBe('');
  expect(done.status).toBe(0);
  expect(readFileSync(path.join(ROOT, 'lib', 'contract', 'types.generated.ts'), 'utf8')).toBe(done.stdout);
}, 90_000);

test('the train table of the spec reference (sweeps/README.md) is the schema as it is now', () => {
  // Imported here, not at the top: the module's json-schema-to-typescript import loads prettier, which
  // jest's VM cannot; requiring only these two pure functions' module in a child keeps it out.
  const done = spawnSync(
    path.join(ROOT, 'node_modules', '.bin', 'tsx'),
    ['-e', "const g=require('./lib/contract/generate-types.ts');const fs=require('fs');process.stdout.write(String(fs.readFileSync(g.SPEC_REFERENCE,'utf8')===g.specReferenceWithTable(fs.readFileSync(g.SPEC_REFERENCE,'utf8'))))"],
    { cwd: ROOT, encoding: 'utf8', timeout: 60_000 },
  );
  expect(done.stderr).toBe('');
  expect(done.stdout).toBe('true');
}, 90_000);
