import * as path from 'node:path';
import { AWS_OPTIONS, Command, OptionTable } from '../args';
import { AwsSession } from '../aws';
import { awsCanaryDeps } from '../canary/aws-deps';
import { DEFAULT_TIMEOUTS } from '../canary/deps';
import { runCanary } from '../canary/run';

const options = {
  keep: { type: 'boolean', help: 'leave the canary stack and its data set deployed for a look (the destroy command is printed)' },
  // The AWS verbs' --region; not their --bucket: the canary finds (or deploys) the foundation itself.
  region: AWS_OPTIONS.region,
} as const satisfies OptionTable;

/**
 * `spot-sweep canary`: the demo through the whole AWS path on the cheapest GPU spot type, for cents, with a
 * checklist of every promise and its timing; the canary stack is destroyed at the end, also on failure and
 * on Ctrl-C. The orchestration is lib/cli/canary/run.ts, over the dependencies of lib/cli/canary/aws-deps.ts.
 */
export const canary: Command<typeof options> = {
  name: 'canary',
  summary: 'run the demo on the cheapest spot GPU and check every promise (cents), then destroy it',
  description: `
Deploys a one-config sweep of the demo (its own synthetic data set, uploaded under datasets/ of the
artifact bucket; the foundation first if it is missing) on the cheapest GPU spot type offered in the
region (g4dn.xlarge first), then checks each promise and prints a checklist with timings: the association
starts the job; the bootstrap ends in training; a stop request mid-training checkpoints and start resumes
from that checkpoint; GPU metrics arrive as the idle alarm reads them; results.json and report.html land;
the instance removes itself; the bootstrap phases and the launch-to-first-step time; the cost. Then it
destroys the canary stack and deletes its data set, also when a promise fails and on Ctrl-C (a deploy in
progress is let finish first). Takes about 30 minutes; the spec is kept in .spot-sweep/canary/.`,
  positionals: [],
  options,
  exits: [
    ['ok', 'every promise held, and the canary stack was destroyed'],
    'usage',
    ['someFailed', 'a promise failed, the deploy failed, or Ctrl-C: the checklist names which'],
    ['aws', 'AWS: no credentials or region, or the teardown left something deployed (the command that removes it is printed)'],
  ],
  async run({ options: o }, io) {
    const session = await AwsSession.open({ region: o.region }, io.env);
    try {
      const deps = awsCanaryDeps(session, io);
      const result = await runCanary(deps, { workRoot: path.resolve('.spot-sweep', 'canary'), keep: o.keep, timeouts: DEFAULT_TIMEOUTS, signal: io.signal, out: io.out });
      return result.code;
    } finally {
      session.close();
    }
  },
};
