import { EXIT_CODES } from '../../contract';
import { loadSpec } from '../../spec/load';
import { sweepStackName } from '../../spec/types';
import { Command, OptionTable } from '../args';
import { AwsSession } from '../aws';
import type { Check } from '../doctor/types';
import { painter, wantsColour } from '../io';

/** `doctor --json`: every check, and whether any is a blocker. */
export interface DoctorJson {
  readonly sweep: string;
  readonly stack: string;
  readonly region: string;
  readonly checks: readonly Check[];
  readonly blockers: number;
  readonly warnings: number;
}

const LABEL: Record<Check['result'], string> = { ok: 'ok', warn: 'warn', blocker: 'BLOCKER', skipped: 'skipped' };

/** The text `doctor` prints: one line per check (result, name, finding, fix), then the verdict. */
export function formatDoctor(doc: DoctorJson, colour = false): string {
  const paint = painter(colour);
  const tone = { ok: 'green', warn: 'yellow', blocker: 'red', skipped: 'dim' } as const;
  const width = Math.max(...doc.checks.map((c) => c.name.length));
  const out = [`spot-sweep doctor: sweep "${doc.sweep}" (stack ${doc.stack}) in ${doc.region}`, ''];
  for (const c of doc.checks) {
    const label = paint(LABEL[c.result].padEnd(7), tone[c.result]);
    out.push(`${label}  ${c.name.padEnd(width)}  ${c.finding}${c.fix ? ` Fix: ${c.fix}` : ''}`);
  }
  out.push('');
  if (doc.blockers > 0) out.push(`${doc.blockers} blocker${doc.blockers === 1 ? '' : 's'}, ${doc.warnings} warning${doc.warnings === 1 ? '' : 's'}: fix the blockers before npx cdk deploy.`);
  else out.push(`No blockers${doc.warnings > 0 ? ` (${doc.warnings} warning${doc.warnings === 1 ? '' : 's'})` : ''}: the account is ready for this sweep.`);
  return out.join('\n') + '\n';
}

const options = {
  json: { type: 'boolean', help: 'print the checks as one JSON document (name, result, finding, fix) and nothing else' },
  'ami-parameter': { type: 'string', value: 'NAME', help: 'the SSM parameter the sweep was or will be deployed with (-c amiParameter); default: the DLAMI parameter of each GPU' },
  'toolkit-stack-name': { type: 'string', value: 'NAME', default: 'CDKToolkit', help: 'the CDK bootstrap stack (cdk bootstrap --toolkit-stack-name)' },
} as const satisfies OptionTable;

export const doctor: Command<typeof options> = {
  name: 'doctor',
  summary: 'check, read-only, that the AWS account can run the sweep',
  description: `
Read-only checks with your own credentials, before any money is spent: credentials and region (STS),
the CDK bootstrap stack, the foundation stack deployed at this checkout's version, each AMI SSM parameter
the sweep needs (and the image's name), each instance type offered in the foundation subnets' zones, the
spot and on-demand vCPU quotas per instance family (Service Quotas) against what the sweep needs at once
(spot-then-on-demand counts on both), prices for the region, and the artifact bucket. One line per check:
its result (ok, warn, BLOCKER, skipped), what it found and the fix.`,
  positionals: [{ name: 'spec.json', help: 'the sweep spec, e.g. sweeps/demo.json', required: true }],
  options,
  aws: true,
  exits: [['ok', 'no check found a blocker (warnings may remain)'], 'specError', 'usage', ['aws', 'no AWS credentials or no region: nothing was checked'], 'blocked'],
  async run({ positionals, options: o }, io) {
    const spec = loadSpec(positionals[0]);
    const session = await AwsSession.open(o, io.env);
    // Loaded when run: the checks pull in SDK clients every other verb would otherwise load too.
    const { sessionDeps } = require('../doctor/types') as typeof import('../doctor/types');
    const { runDoctor } = require('../doctor/run') as typeof import('../doctor/run');
    const deps = sessionDeps(session, io.env);
    try {
      const checks = await runDoctor(deps, spec, { bucket: o.bucket, amiParameter: o['ami-parameter'], toolkitStack: o['toolkit-stack-name'] });
      const doc: DoctorJson = {
        sweep: spec.name,
        stack: sweepStackName(spec.name),
        region: session.region,
        checks,
        blockers: checks.filter((c) => c.result === 'blocker').length,
        warnings: checks.filter((c) => c.result === 'warn').length,
      };
      io.out(o.json ? `${JSON.stringify(doc, null, 2)}\n` : formatDoctor(doc, wantsColour(io)));
      return doc.blockers > 0 ? EXIT_CODES.cli.blocked : EXIT_CODES.cli.ok;
    } finally {
      session.close();
    }
  },
};
