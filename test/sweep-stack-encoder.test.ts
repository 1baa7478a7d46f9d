import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { App } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import { FoundationStack } from '../lib/foundation-stack';
import { validateSpec } from '../lib/spec';
import { SweepStack } from '../lib/sweep-stack';

const CDK_CONTEXT = require('../cdk.json').context as Record<string, unknown>;

/** Fn::Join and Fn::Sub flattened into a string; any other intrinsic becomes `<ref>`. */
function flatten(value: unknown): string {
  if (typeof value === 'string') return value;
  const sub = (value as { 'Fn::Sub'?: string })['Fn::Sub'];
  if (typeof sub === 'string') return sub.replace(/\$\{[^}]+\}/g, '<ref>');
  const join = (value as { 'Fn::Join'?: [string, unknown[]] })['Fn::Join'];
  if (join) return join[1].map(flatten).join(join[0]);
  return '<ref>';
}

// A local sentence-transformers directory (what SentenceTransformer.save writes first: modules.json).
const MODEL_DIR = mkdtempSync(path.join(tmpdir(), 'spot-sweep-minilm-'));
writeFileSync(path.join(MODEL_DIR, 'modules.json'), '[]');
mkdirSync(path.join(MODEL_DIR, '1_Pooling'));
writeFileSync(path.join(MODEL_DIR, '1_Pooling', 'config.json'), '{}');
afterAll(() => rmSync(MODEL_DIR, { recursive: true, force: true }));

const SPEC = validateSpec({
  name: 'enc',
  budgetUsd: 10,
  data: 's3://other-data/texts/',
  defaults: { instanceTypes: ['g5.xlarge'] },
  configs: [
    { name: 'hashed' },
    { name: 'hub', encoder: 'sentence-transformers/all-MiniLM-L6-v2' },
    { name: 'local', encoder: MODEL_DIR },
    { name: 'bucket', encoder: 's3://model-bucket/minilm/' },
  ],
});

const app = new App({ context: CDK_CONTEXT });
const stack = new SweepStack(app, 'SpotSweep-enc', { spec: SPEC, foundation: new FoundationStack(app, 'SpotSweep-Foundation') });
const template = Template.fromStack(stack);

function jobs(): Map<string, any> {
  const out = new Map<string, any>();
  for (const r of Object.values(template.findResources('AWS::SSM::Parameter'))) {
    out.set(r.Properties.Name.split('/')[3], JSON.parse(flatten(r.Properties.Value)));
  }
  return out;
}

describe('SweepStack with encoders', () => {
  test('each job.json states its encoder as the instance reads it: none, a hub name, the uploaded directory, the s3:// one', () => {
    const byConfig = jobs();
    expect(byConfig.get('hashed').encoder).toBeNull();
    expect(byConfig.get('hub').encoder).toBe('sentence-transformers/all-MiniLM-L6-v2');
    expect(byConfig.get('local').encoder).toMatch(/^s3:\/\/<ref>\/datasets\/enc\/spot-sweep-minilm-[a-z0-9-]+\/$/);
    expect(byConfig.get('bucket').encoder).toBe('s3://model-bucket/minilm/');
  });

  test('the local model directory is uploaded at deploy beside the data sets', () => {
    template.hasResourceProperties('Custom::CDKBucketDeployment', { DestinationBucketKeyPrefix: Match.stringLikeRegexp('^datasets/enc/spot-sweep-minilm-[a-z0-9-]+/$') });
  });

  test('the instance may read the other bucket\'s model prefix', () => {
    const [policy] = Object.entries(template.findResources('AWS::IAM::ManagedPolicy')).filter(([id]) => id.startsWith('InstanceAccess')).map(([, p]) => p);
    const reads = policy.Properties.PolicyDocument.Statement.filter((s: any) => [s.Action].flat().includes('s3:GetObject')).flatMap((s: any) => [s.Resource].flat().map(flatten));
    expect(reads).toContain('arn:<ref>:s3:::model-bucket/minilm/*');
  });
});
