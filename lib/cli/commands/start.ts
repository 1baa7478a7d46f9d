import { ACTION, EXIT_CODES, groupName, REQUESTERS, STATE } from '../../contract';
import { readStatus, requestControl } from '../../store';
import { Command, OptionTable, SPEC_AND_CONFIG, targetConfigs } from '../args';
import { aws, AwsSession, openStore } from '../aws';

/*
 * Why `start` writes a start request before it scales the group up: the job runner obeys the newest
 * request in control.json at start and at every sync tick, so an instance launched while a stop request
 * stands would end at once, STOPPED. Once the request says start, the runner resumes from the config's
 * checkpoints when its job.json is unchanged (a changed job starts over). 0/1/1 is what the sweep stack's
 * restart resource sets when a deploy starts a config (lib/constructs/config-restart.ts); max 1 as well,
 * since `stop` and the budget stop leave the group at 0/0/0 and Auto Scaling refuses a desired capacity
 * above the maximum.
 * @see https://docs.aws.amazon.com/autoscaling/ec2/APIReference/API_UpdateAutoScalingGroup.html
 *
 * With maxParallel in the spec, `start` scales nothing: raising groups by hand would pass the cap. The start
 * request alone makes the config pending for the sweep's scheduler (lambda/scheduler/schedule.ts: a start
 * request newer than status.json), which starts it within a minute once a slot is free.
 */

const SUCCEEDED = STATE.SUCCEEDED;

const options = {
  reason: { type: 'string', value: 'TEXT', default: 'started with spot-sweep start', help: 'why, as a sentence (kept in control.json)' },
} as const satisfies OptionTable;

export const start: Command<typeof options> = {
  name: 'start',
  summary: 'run a stopped or failed config again (resuming from its checkpoint)',
  description: `
Writes a start request into control.json of each targeted config that has not SUCCEEDED, then sets
its Auto Scaling group back to min 0, max 1, desired 1, so an instance launches and the job runner
resumes from the config's last checkpoint (a job.json changed since starts over). A SUCCEEDED config
is left alone: its results stand. With maxParallel in the spec it only writes the start requests: the
sweep's scheduler starts each config within a minute of a slot being free, in spec order.`,
  positionals: SPEC_AND_CONFIG,
  options,
  aws: true,
  exits: [['ok', 'every targeted config that had not succeeded was asked to start and its group scaled to 1'], 'specError', 'usage', ['aws', 'AWS: no credentials, no region, a stack not deployed, or a group not scaled up']],
  async run({ positionals, options: o }, io) {
    const { spec, configs } = targetConfigs(positionals);
    const session = await AwsSession.open(o, io.env);
    try {
      await session.requireSweepStack(spec);
      const { store } = await openStore(session, o);
      const { UpdateAutoScalingGroupCommand } = await import('@aws-sdk/client-auto-scaling');
      const lines: string[] = [];
      let failed = 0;
      for (const config of configs) {
        const { status } = await readStatus(store, spec.name, config);
        if (status?.state === SUCCEEDED) {
          lines.push(`${config}: already SUCCEEDED; nothing to start (its results stand)`);
          continue;
        }
        await requestControl(store, spec.name, config, { action: ACTION.start, by: REQUESTERS.cliStart, reason: o.reason });
        const group = groupName(spec.name, config);
        if (typeof spec.maxParallel === 'number') {
          lines.push(`${config}: start requested (was ${status?.state ?? 'never started'}); the scheduler scales ${group} to 1 once fewer than ${spec.maxParallel} configs hold an instance (maxParallel)`);
          continue;
        }
        try {
          await aws(`Auto Scaling UpdateAutoScalingGroup ${group}`, () =>
            session.autoScaling().send(new UpdateAutoScalingGroupCommand({ AutoScalingGroupName: group, MinSize: 0, MaxSize: 1, DesiredCapacity: 1 })),
          );
          lines.push(`${config}: start requested (was ${status?.state ?? 'never started'}); ${group} scaled to 1`);
        } catch (err) {
          failed += 1;
          lines.push(`${config}: start requested, but ${group} was not scaled to 1: ${(err as Error).message}`);
        }
      }
      io.out(`Starting "${spec.name}" in ${session.region}:\n${lines.map((l) => `  ${l}`).join('\n')}\n`);
      return failed > 0 ? EXIT_CODES.cli.aws : EXIT_CODES.cli.ok;
    } finally {
      session.close();
    }
  },
};
