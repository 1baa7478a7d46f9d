import { ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
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
    expect(script).toContain(`exec bash "$code_dir"/bootstrap.sh --job '{{ JobUri }}' --code-dir "$code_dir"`);
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

/**
 * The document's script, run for real: /opt/spot-sweep and /var/log/spot-sweep moved under a temp folder, the
 * parameters filled in as SSM fills them, `aws` a stand-in first on PATH that copies a zip from a folder standing
 * in for S3 (flock and python3 are real). Each zip's bootstrap.sh is a stand-in that records where it runs from,
 * takes a lock of its own as the real one does (and leaves quietly when it is held), and waits for a release file.
 */
describe('TrainDocument on an instance', () => {
  const { script } = build();
  const root = mkdtempSync(join(tmpdir(), 'train-doc-run-'));
  const marks = join(root, 'marks');
  const s3 = join(root, 's3');
  const bin = join(root, 'bin');
  const jobUriValue = jobUri('seed-plan', 'o');
  const codeUri = (version: string) => `s3://cdk-hnb659fds-assets-111111111111-us-east-1/${version}.zip`;
  for (const dir of [marks, join(s3, 'cdk-hnb659fds-assets-111111111111-us-east-1'), bin]) mkdirSync(dir, { recursive: true });
  writeFileSync(
    join(bin, 'aws'),
    ['#!/bin/bash', '[ "$1 $2" = "s3 cp" ] || { echo "aws stand-in: unexpected $*" >&2; exit 2; }', 'src=${*: -2:1}', 'cp "$FAKE_S3/${src#s3://}" "${*: -1}"'].join('\n'),
  );
  chmodSync(join(bin, 'aws'), 0o755);

  /** A code bundle whose bootstrap.sh stands in for the real one. */
  function bundle(version: string): void {
    const dir = mkdtempSync(join(root, `src-${version}-`));
    writeFileSync(join(dir, 'version.txt'), version);
    writeFileSync(
      join(dir, 'bootstrap.sh'),
      [
        'set -eu',
        'here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)',
        'exec 8>"$MARKS/bootstrap.lock"',
        'flock -n 8 || { echo "stand-in bootstrap: another bootstrap holds the job"; exit 0; }',
        `echo "$$ $here $*" > "$MARKS/started-${version}"`,
        `until [ -e "$MARKS/release-${version}" ]; do sleep 0.05; done`,
      ].join('\n'),
    );
    execFileSync('python3', ['-m', 'zipfile', '-c', join(s3, 'cdk-hnb659fds-assets-111111111111-us-east-1', `${version}.zip`), 'bootstrap.sh', 'version.txt'], { cwd: dir });
  }

  /** The runCommand as the agent gets it for one CodeUri, written where sh can run it. */
  function command(version: string): string {
    const text = script
      .split('{{ CodeUri }}').join(codeUri(version))
      .split('{{ JobUri }}').join(jobUriValue)
      .split('{{ WheelIndex }}').join(WHEEL_INDEX.modern)
      .split('/opt/spot-sweep').join(join(root, 'opt'))
      .split('/var/log/spot-sweep').join(join(root, 'log'));
    const file = join(root, `command-${version}.sh`);
    writeFileSync(file, text);
    return file;
  }
  const env = { ...process.env, PATH: `${bin}:${process.env.PATH}`, FAKE_S3: s3, MARKS: marks };
  // Whatever a failed run left waiting ends with the test file.
  afterAll(() => {
    for (const version of ['v1', 'v2']) writeFileSync(join(marks, `release-${version}`), '');
  });
  const startedBy = (version: string) => readFileSync(join(marks, `started-${version}`), 'utf8').split(' ');

  async function waitFor(what: string, ok: () => boolean, seconds = 20): Promise<void> {
    const until = Date.now() + seconds * 1000;
    while (!ok()) {
      if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  test('a re-run with new code while a job is live leaves the job, its code and its process alone; the next run unpacks the new version', async () => {
    bundle('v1');
    bundle('v2');
    // Code an older document unpacked straight into the code folder (no marker): a job may still run from it.
    const legacy = join(root, 'opt', 'code', 'spot_runner');
    mkdirSync(legacy, { recursive: true });
    writeFileSync(join(legacy, 'job.py'), '');
    const first: ChildProcess = spawn('sh', [command('v1')], { env, stdio: 'ignore' });
    const firstExit = new Promise<number | null>((resolve) => first.on('exit', resolve));
    await waitFor('the first run to start its job', () => existsSync(join(marks, 'started-v1')));
    const [, liveCodeDir, ...liveArgs] = startedBy('v1');
    expect(liveArgs.join(' ')).toContain(`--code-dir ${liveCodeDir}`);

    const second = spawnSync('sh', [command('v2')], { env, encoding: 'utf8', timeout: 20_000 });
    expect(second.status).toBe(0);
    // Nothing of the live job changed: its code, its process, and no second job started.
    expect(readFileSync(join(liveCodeDir, 'version.txt'), 'utf8')).toBe('v1');
    expect(existsSync(join(liveCodeDir, 'bootstrap.sh'))).toBe(true);
    expect(first.exitCode).toBeNull();
    expect(existsSync(join(marks, 'started-v2'))).toBe(false);
    const leftAlone = /a job is live on this instance; this run \(code (\S+), job (\S+)\) leaves it alone/;
    expect(second.stdout).toMatch(leftAlone);
    expect(second.stdout.match(leftAlone)!.slice(1)).toEqual([codeUri('v2'), jobUriValue]);
    expect(readFileSync(join(root, 'log', 'bootstrap.log'), 'utf8')).toMatch(leftAlone);

    writeFileSync(join(marks, 'release-v1'), '');
    expect(await firstExit).toBe(0);

    writeFileSync(join(marks, 'release-v2'), '');
    const third = spawnSync('sh', [command('v2')], { env, encoding: 'utf8', timeout: 20_000 });
    expect(third.status).toBe(0);
    const [, newCodeDir] = startedBy('v2');
    expect(newCodeDir).not.toBe(liveCodeDir);
    expect(readFileSync(join(newCodeDir, 'version.txt'), 'utf8')).toBe('v2');
    // The finished job's code is removed only by a run that holds the lock.
    expect(existsSync(liveCodeDir)).toBe(false);
    expect(existsSync(join(legacy, 'job.py'))).toBe(true);
  }, 60_000);
});
