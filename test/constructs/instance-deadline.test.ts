import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { DEADLINE_MARGIN_MINUTES, DEADLINE_UNIT, deadlineSeconds, instanceDeadlineCommands, SHUTDOWN_BACKSTOP_MINUTES } from '../../lib/constructs/instance-deadline';

/**
 * The generated user data runs under bash with stand-ins first on PATH for systemd-run, shutdown, curl (IMDSv2)
 * and aws; each records its arguments, one call per line, in calls.log.
 */
function sandbox(opts: { awsFails?: boolean; imdsDown?: boolean; lifecycle?: string } = {}) {
  const dir = mkdtempSync(path.join(tmpdir(), 'spot-sweep-deadline-'));
  const bin = path.join(dir, 'bin');
  execFileSync('mkdir', ['-p', bin]);
  const log = path.join(dir, 'calls.log');
  const stub = (name: string, body: string) => {
    writeFileSync(path.join(bin, name), `#!/bin/bash\necho "${name} $*" >> '${log}'\n${body}\n`);
    chmodSync(path.join(bin, name), 0o755);
  };
  stub('systemd-run', 'exit 0');
  stub('shutdown', 'exit 0');
  stub('aws', opts.awsFails ? 'exit 254' : 'exit 0');
  // IMDSv2: a PUT for the token, then GETs that must carry it.
  stub(
    'curl',
    opts.imdsDown
      ? 'exit 7'
      : [
          'case "$*" in',
          '  *"-X PUT"*api/token*) echo -n TOKEN ;;',
          '  *"X-aws-ec2-metadata-token: TOKEN"*meta-data/instance-id) echo -n i-0abc ;;',
          '  *"X-aws-ec2-metadata-token: TOKEN"*meta-data/placement/region) echo -n eu-west-1 ;;',
          ...(opts.lifecycle ? [`  *"X-aws-ec2-metadata-token: TOKEN"*meta-data/autoscaling/target-lifecycle-state) echo -n ${opts.lifecycle} ;;`] : []),
          '  *) exit 22 ;;',
          'esac',
        ].join('\n'),
  );
  const env = { ...process.env, PATH: `${bin}:${process.env.PATH}` };
  const script = path.join(dir, 'sbin', 'spot-sweep-deadline');
  const calls = () => readFileSync(log, 'utf8').trim().split('\n');
  return { dir, env, script, log, calls, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

function boot(box: ReturnType<typeof sandbox>, maxRuntimeHours: number) {
  const userData = ['#!/bin/bash', 'set -u', ...instanceDeadlineCommands({ maxRuntimeHours, scriptPath: box.script })].join('\n');
  const file = path.join(box.dir, 'user-data.sh');
  writeFileSync(file, userData);
  execFileSync('bash', [file], { env: box.env });
}

describe('instance deadline (user data)', () => {
  test('arms a systemd timer maxRuntimeHours + the margin after boot, and a shutdown after that', () => {
    const box = sandbox();
    try {
      boot(box, 6);
      const [timer, shutdown] = box.calls();
      const seconds = 6 * 3600 + DEADLINE_MARGIN_MINUTES * 60;
      expect(timer).toBe(`systemd-run --unit=${DEADLINE_UNIT} --description=spot-sweep instance deadline --on-active=${seconds}s --timer-property=AccuracySec=1s ${box.script}`);
      expect(shutdown).toBe(`shutdown -h +${seconds / 60 + SHUTDOWN_BACKSTOP_MINUTES} spot-sweep: instance deadline passed`);
      expect(deadlineSeconds(0.25)).toBe(900 + DEADLINE_MARGIN_MINUTES * 60);
    } finally {
      box.cleanup();
    }
  });

  test('when it fires: removes the instance from its group with the desired capacity decremented, and does not shut down', () => {
    const box = sandbox();
    try {
      boot(box, 1);
      execFileSync(box.script, { env: box.env });
      const fired = box.calls().slice(2);
      expect(fired.filter((c) => c.startsWith('aws'))).toEqual([
        'aws autoscaling terminate-instance-in-auto-scaling-group --instance-id i-0abc --should-decrement-desired-capacity --region eu-west-1',
      ]);
      expect(fired.filter((c) => c.startsWith('shutdown'))).toEqual([]);
    } finally {
      box.cleanup();
    }
  });

  test('fails over to shutting down when the call fails', () => {
    const box = sandbox({ awsFails: true });
    try {
      boot(box, 1);
      execFileSync(box.script, { env: box.env, stdio: 'ignore' });
      expect(box.calls().slice(2).filter((c) => c.startsWith('shutdown'))).toEqual(['shutdown -h now']);
    } finally {
      box.cleanup();
    }
  });

  test('does not shut down an instance its group is already terminating (the lifecycle hook holds it while the job checkpoints)', () => {
    const box = sandbox({ awsFails: true, lifecycle: 'Terminated' });
    try {
      boot(box, 1);
      const out = execFileSync(box.script, { env: box.env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
      expect(out).toContain('already terminating i-0abc');
      expect(box.calls().slice(2).filter((c) => c.startsWith('shutdown'))).toEqual([]);
    } finally {
      box.cleanup();
    }
    // In service, the failed call still ends in a shutdown.
    const inService = sandbox({ awsFails: true, lifecycle: 'InService' });
    try {
      boot(inService, 1);
      execFileSync(inService.script, { env: inService.env, stdio: 'ignore' });
      expect(inService.calls().slice(2).filter((c) => c.startsWith('shutdown'))).toEqual(['shutdown -h now']);
    } finally {
      inService.cleanup();
    }
  });

  test('shuts down when IMDS does not answer (no instance id to remove), without calling Auto Scaling', () => {
    const box = sandbox({ imdsDown: true });
    try {
      boot(box, 1);
      execFileSync(box.script, { env: box.env, stdio: 'ignore' });
      const fired = box.calls().slice(2);
      expect(fired.some((c) => c.startsWith('aws'))).toBe(false);
      expect(fired.filter((c) => c.startsWith('shutdown'))).toEqual(['shutdown -h now']);
    } finally {
      box.cleanup();
    }
  });

  test('fails when maxRuntimeHours gives no deadline', () => {
    expect(() => instanceDeadlineCommands({ maxRuntimeHours: 0 })).toThrow(/maxRuntimeHours 0 gives no instance deadline; set it above 0/);
  });
});
