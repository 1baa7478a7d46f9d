import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { contractProblems } from '../../lib/contract';
import { SpecIssue, checkSpec, renderJob, storePrefix, validateSpec } from '../../lib/spec';

/** The spec file lives in a real directory: a local encoder path resolves against it and is looked at on disk. */
const DIR = mkdtempSync(path.join(tmpdir(), 'spec-encoder-'));
const SPEC_FILE = path.join(DIR, 'sweeps', 'x.json');
const MODEL = path.join(DIR, 'models', 'minilm');
mkdirSync(MODEL, { recursive: true });
writeFileSync(path.join(MODEL, 'modules.json'), '[]');
mkdirSync(path.join(DIR, 'models', 'plain'), { recursive: true });

function base(): any {
  return {
    name: 'x',
    budgetUsd: 50,
    data: 's3://my-bucket/data/',
    defaults: { instanceTypes: ['g5.xlarge'] },
    configs: [{ name: 'a' }],
  };
}

function issuesOf(spec: any): SpecIssue[] {
  return checkSpec(spec, { specFile: SPEC_FILE }).issues;
}

function issueAt(issues: SpecIssue[], at: string): SpecIssue {
  const found = issues.find((i) => i.path === at);
  expect(found).toBeDefined();
  return found!;
}

describe('spec key encoder', () => {
  test('defaults to null, and job.json always states it', () => {
    const spec = validateSpec(base(), { specFile: SPEC_FILE });
    expect(spec.configs[0].encoder).toBeNull();
    const job = renderJob(spec, 'a', { store: storePrefix('s3://artifacts', 'x', 'a') });
    expect(job.encoder).toBeNull();
    expect(contractProblems('job', job)).toEqual([]);
  });

  test('a hub name is kept as written, and changes the config\'s job.json (so its job digest)', () => {
    const spec = validateSpec(
      { ...base(), configs: [{ name: 'a' }, { name: 'b', encoder: 'sentence-transformers/all-MiniLM-L6-v2@8b3219a' }] },
      { specFile: SPEC_FILE },
    );
    const store = (c: string) => ({ store: storePrefix('s3://artifacts', 'x', c) });
    const b = renderJob(spec, 'b', store('b'));
    expect(b.encoder).toBe('sentence-transformers/all-MiniLM-L6-v2@8b3219a');
    expect(contractProblems('job', b)).toEqual([]);
    // The two jobs differ in the encoder alone (besides their names): job.json's bytes, and so the digest the runner
    // starts over on, change with it.
    const a = renderJob(spec, 'a', store('a'));
    expect(a.encoder).toBeNull();
    expect({ ...a, encoder: b.encoder, config: 'b', store: b.store }).toEqual(b);
  });

  test('a local model directory resolves against the spec file\'s directory; an s3:// URI is kept', () => {
    const spec = validateSpec(
      { ...base(), defaults: { ...base().defaults, encoder: '../models/minilm' }, configs: [{ name: 'a' }, { name: 'b', encoder: 's3://my-bucket/models/minilm/' }, { name: 'c', encoder: null }] },
      { specFile: SPEC_FILE },
    );
    expect(spec.configs.map((c) => c.encoder)).toEqual([MODEL, 's3://my-bucket/models/minilm/', null]);
  });

  test('defaults.encoder does not apply to a script config', () => {
    const spec = validateSpec(
      { ...base(), defaults: { encoder: 'org/model' }, configs: [{ name: 'a' }, { name: 'own', script: { codeDir: 'code', entrypoint: 'train.py' } }] },
      { specFile: SPEC_FILE },
    );
    expect(spec.configs.map((c) => c.encoder)).toEqual(['org/model', null]);
    expect(renderJob(spec, 'own', { store: 's3://b/sweeps/x/own/' }).encoder).toBeNull();
  });

  test('a local encoder directory not built yet is accepted, resolved against the spec file (local and synth check it)', () => {
    const spec = validateSpec({ ...base(), configs: [{ name: 'a', encoder: '../models/nowhere' }] }, { specFile: SPEC_FILE });
    expect(spec.configs[0].encoder).toBe(path.join(DIR, 'models', 'nowhere'));
  });

  test('fails when a local encoder directory has no modules.json', () => {
    const issue = issueAt(issuesOf({ ...base(), defaults: { encoder: '../models/plain' } }), 'defaults.encoder');
    expect(issue.message).toMatch(/not a sentence-transformers model \(it has no modules\.json\)/);
  });

  test('fails when a script config sets an encoder', () => {
    const issue = issueAt(
      issuesOf({ ...base(), configs: [{ name: 'own', encoder: 'org/model', script: { codeDir: 'code', entrypoint: 'train.py' } }] }),
      'configs[0].encoder',
    );
    expect(issue.message).toMatch(/a script config cannot take an encoder.*remove "encoder" here/);
  });

  test('fails when the encoder is not a string, a bad s3:// URI, another scheme or no hub name, every problem at once', () => {
    const issues = issuesOf({
      ...base(),
      defaults: { encoder: 42 },
      configs: [
        { name: 'a', encoder: 's3://Bad_Bucket/m/' },
        { name: 'b', encoder: 'https://huggingface.co/org/model' },
        { name: 'c', encoder: 'org/model name with spaces' },
      ],
    });
    expect(issueAt(issues, 'defaults.encoder').message).toMatch(/must be a sentence-transformers model: a hub name, an s3:\/\/ URI or a local directory/);
    expect(issueAt(issues, 'configs[0].encoder').message).toMatch(/not a valid s3:\/\/ URI/);
    expect(issueAt(issues, 'configs[1].encoder').message).toMatch(/unsupported scheme/);
    expect(issueAt(issues, 'configs[2].encoder').message).toMatch(/neither a local directory .* nor a hub model name/);
  });
});
