import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { loadSpec, MAX_SPEC_CHARS, SpecError } from '../../lib/spec';

const dir = mkdtempSync(path.join(tmpdir(), 'spec-load-'));
const file = (name: string, text: string): string => {
  const f = path.join(dir, name);
  writeFileSync(f, text);
  return f;
};
const problems = (f: string): string => {
  try {
    loadSpec(f);
  } catch (err) {
    if (err instanceof SpecError) return err.message;
    throw err;
  }
  throw new Error('expected a SpecError');
};

describe('reading a spec file', () => {
  test('fails when a key appears twice in one object: each one named with its line, not the last silently kept', () => {
    const f = file(
      'twice.json',
      '{\n  "name": "twice",\n  "budgetUsd": 10,\n  "data": "s3://my-bucket/d/",\n  "configs": [{ "name": "o", "examples": 5, "examples": 500 }],\n  "budgetUsd": 100000\n}\n',
    );
    const message = problems(f);
    expect(message).toMatch(/2 problems/);
    expect(message).toMatch(/- budgetUsd: appears twice in one object \(again at line 6, column 3\)/);
    expect(message).toMatch(/- configs\[0\]\.examples: appears twice in one object \(again at line 5/);
  });

  test('a key spelled the same in two different objects is not a duplicate', () => {
    const f = file('ok.json', JSON.stringify({ name: 'ok', budgetUsd: 5, data: 's3://my-bucket/d/', configs: [{ name: 'a' }, { name: 'b' }] }));
    expect(loadSpec(f).configs.map((c) => c.name)).toEqual(['a', 'b']);
  });

  test('fails when the spec nests too deep, before the JSON parser can overflow its stack', () => {
    const f = file('deep.json', `${'['.repeat(200_000)}${']'.repeat(200_000)}`);
    expect(problems(f)).toMatch(/nests objects and lists 200000 deep; a sweep spec needs 6 and may use at most 16/);
  });

  test('fails when the spec is larger than any sweep spec can be', () => {
    const f = file('huge.json', `{"name": "x", "pad": "${'x'.repeat(MAX_SPEC_CHARS)}"}`);
    expect(problems(f)).toMatch(/characters long; a sweep spec may be at most 1,000,000/);
  });

  test('fails when a number is absurd: budgetUsd 1e300 is refused, never printed as $Infinity', () => {
    const f = file('rich.json', JSON.stringify({ name: 'rich', budgetUsd: 1e300, data: 's3://my-bucket/d/', configs: [{ name: 'a' }] }));
    expect(problems(f)).toMatch(/budgetUsd \(got 1e\+300\): must be a positive number and at most 1000000/);
  });
});
