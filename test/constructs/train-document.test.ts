import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { App, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { jobUri } from '../../lib/contract';
import { MAX_EXECUTION_TIMEOUT_SECONDS, TrainDocument, WHEEL_INDEX } from '../../lib/constructs/train-document';

interface DocParameter {
  readonly type: string;
  readonly default?: string;
  readonly allowedPattern: string;
}
interface DocContent {
  readonly schemaVersion: string;
  readonly parameters: Record<string, DocParameter>;
  readonly mainSteps: { action: string; name: string; inputs: { timeoutSeconds: string; runCommand: unknown[] } }[];
}

/** A runCommand line as text: Fn::Join is joined, any other intrinsic becomes its logical id or name. */
function render(value: unknown): string {
  if (typeof value === 'string') return value;
  const v = value as Record<string, unknown>;
  if (Array.isArray(v['Fn::Join'])) {
    const [sep, parts] = v['Fn::Join'] as [string, unknown[]];
    return parts.map(render).join(sep);
  }
  if (typeof v.Ref === 'string') return v.Ref;
  if (Array.isArray(v['Fn::GetAtt'])) return (v['Fn::GetAtt'] as string[]).join('.');
  return JSON.stringify(value);
}

function build(): { stack: Stack; template: Template; content: DocContent; script: string } {
  const app = new App();
  const stack = new Stack(app, 'Test', { env: { account: '111111111111', region: 'us-east-1' } });
  const bucket = new s3.Bucket(stack, 'Bucket');
  new TrainDocument(stack, 'Train', { bucket });
  const template = Template.fromStack(stack);
  const [doc] = Object.values(template.findResources('AWS::SSM::Document'));
  const content = doc.Properties.Content as DocContent;
  const script = content.mainSteps[0].inputs.runCommand.map(render).join('\n');
  return { stack, template, content, script };
}

describe('TrainDocument', () => {
  const { template, content, script } = build();

  test('is a schema 2.2 Command document with one runShellScript step', () => {
    template.hasResourceProperties('AWS::SSM::Document', { DocumentType: 'Command', DocumentFormat: 'JSON', UpdateMethod: 'NewVersion' });
    expect(content.schemaVersion).toBe('2.2');
    expect(content.mainSteps).toHaveLength(1);
    expect(content.mainSteps[0].action).toBe('aws:runShellScript');
  });

  test('takes the job, the code, the wheel index and the execution timeout as parameters', () => {
    expect(Object.keys(content.parameters).sort()).toEqual(['CodeUri', 'ExecutionTimeout', 'JobUri', 'WheelIndex']);
    expect(content.parameters.WheelIndex.default).toBe(WHEEL_INDEX.modern);
    expect(content.mainSteps[0].inputs.timeoutSeconds).toBe('{{ ExecutionTimeout }}');
  });

  test('the timeout pattern accepts 1 s to 48 h and nothing else', () => {
    const pattern = new RegExp(content.parameters.ExecutionTimeout.allowedPattern);
    for (const ok of ['1', '3600', '14400', '99999', '100000', '169999', '172799', '172800']) expect(pattern.test(ok)).toBe(true);
    for (const bad of ['0', '172801', '180000', '999999', '-1', '1e5', '3600 ', '']) expect(pattern.test(bad)).toBe(false);
  });

  test('fails when a job or code URI could break out of the shell quoting', () => {
    const job = new RegExp(content.parameters.JobUri.allowedPattern);
    const code = new RegExp(content.parameters.CodeUri.allowedPattern);
    expect(job.test('s3://my-bucket/sweeps/seed-plan/o/job.json')).toBe(true);
    expect(job.test('ssm:/spot-sweep/seed-plan/o/job')).toBe(true);
    // Exactly what the sweep stacks pass (lib/contract jobUri).
    expect(job.test(jobUri('seed-plan', 'o'))).toBe(true);
    for (const bad of ["ssm:/spot-sweep/x/o/job';reboot;'", 'ssm:/aws/service/x', 'ssm:/spot-sweep/X/o/job']) expect(job.test(bad)).toBe(false);
    expect(code.test('s3://cdk-hnb659fds-assets-111111111111-us-east-1/4f1c.zip')).toBe(true);
    for (const bad of ["s3://b/x';rm -rf /;'.json", 's3://b/a b.json', 'https://b/job.json', 's3://b/job.json.sh']) expect(job.test(bad)).toBe(false);
    expect(code.test("s3://bucket/code.zip'")).toBe(false);
  });

  test('runs bash (the agent uses sh), fetches the code and hands over to bootstrap.sh with the wheel cache', () => {
    expect(script).toContain("cat > /opt/spot-sweep/train.sh <<'TRAIN_SCRIPT'");
    expect(script).toContain('exec bash /opt/spot-sweep/train.sh');
    expect(script).toContain("aws s3 cp --only-show-errors '{{ CodeUri }}' /opt/spot-sweep/code.zip");
    expect(script).toMatch(/exec bash \/opt\/spot-sweep\/code\/bootstrap\.sh --job '\{\{ JobUri \}\}'/);
    expect(script).toContain("--wheel-index '{{ WheelIndex }}'");
    expect(script).toContain('/cache/wheels');
  });

  test('both the sh wrapper and the bash script it writes parse', () => {
    const dir = mkdtempSync(join(tmpdir(), 'train-doc-'));
    writeFileSync(join(dir, 'wrapper.sh'), script);
    expect(() => execFileSync('sh', ['-n', join(dir, 'wrapper.sh')])).not.toThrow();
    const inner = script.split('\n');
    const body = inner.slice(inner.indexOf("cat > /opt/spot-sweep/train.sh <<'TRAIN_SCRIPT'") + 1, inner.indexOf('TRAIN_SCRIPT'));
    writeFileSync(join(dir, 'train.sh'), body.join('\n'));
    expect(() => execFileSync('bash', ['-n', join(dir, 'train.sh')])).not.toThrow();
    expect(body.join('\n')).toContain('"log_group_name":"TrainLogs');
  });

  test('sends the output to CloudWatch Logs through the agent, into a log group with a retention', () => {
    template.hasResourceProperties('AWS::Logs::LogGroup', { RetentionInDays: 30 });
    expect(script).toContain('amazon-cloudwatch-agent-ctl');
    expect(script).toContain('/var/log/spot-sweep/*.log');
    expect(script).toMatch(/TrainLogs[0-9A-F]{8}/);
  });

  test('maps V100 to the CUDA 12.6 wheels and newer GPUs to CUDA 12.8', () => {
    expect(TrainDocument.wheelIndexFor('V100')).toBe(WHEEL_INDEX.volta);
    expect(TrainDocument.wheelIndexFor('A100')).toBe(WHEEL_INDEX.modern);
    expect(TrainDocument.wheelIndexFor('T4')).toBe(WHEEL_INDEX.modern);
  });

  test('turns maxRuntimeHours into seconds and fails when above the 48 h ceiling', () => {
    expect(TrainDocument.executionTimeoutSeconds(4)).toBe(14_400);
    expect(TrainDocument.executionTimeoutSeconds(48)).toBe(MAX_EXECUTION_TIMEOUT_SECONDS);
    expect(() => TrainDocument.executionTimeoutSeconds(49)).toThrow(/at most|allows 1 to 172800/);
  });
});
