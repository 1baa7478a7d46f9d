import { DescribeImagesCommand } from '@aws-sdk/client-ec2';
import { GetParameterCommand } from '@aws-sdk/client-ssm';
import { INSTANCES } from '../../cost/instances';
import { SweepSpec } from '../../spec/types';
import { explainAwsError } from '../aws';
import { Check, check, DoctorDeps } from './types';

/**
 * Each SSM parameter the sweep stack's launch templates resolve their AMI from (lib/constructs/
 * config-launch-template.ts: the DLAMI parameter of each type's GPU, or the one `-c amiParameter` names),
 * with the configs that need it. CloudFormation resolves them at deploy, so one that does not resolve fails
 * the whole sweep stack.
 */
export async function amiParameters(spec: SweepSpec, override?: string): Promise<Map<string, string[]>> {
  // Loaded here only: the module holds CDK constructs, which the rest of the CLI never needs.
  const { amiFamilyFor, DLAMI_PARAMETERS } = require('../../constructs/config-launch-template') as typeof import('../../constructs/config-launch-template');
  const byParameter = new Map<string, string[]>();
  for (const c of spec.configs) {
    for (const type of c.instanceTypes) {
      const gpu = INSTANCES.get(type)?.gpuModel;
      if (!gpu) continue;
      const name = override ?? DLAMI_PARAMETERS[amiFamilyFor(gpu)];
      const configs = byParameter.get(name) ?? [];
      if (!configs.includes(c.name)) configs.push(c.name);
      byParameter.set(name, configs);
    }
  }
  return byParameter;
}

/**
 * One line per AMI parameter: it resolves (SSM GetParameter; ParameterNotFound when it does not, also for a
 * public /aws/service/ parameter retired, or never published, in the region: "Not all public parameters are
 * published to every AWS Region") and names an image EC2 knows (DescribeImages), whose
 * name is printed so the user sees which DLAMI release a deploy now would pin.
 * @see https://docs.aws.amazon.com/systems-manager/latest/APIReference/API_GetParameter.html
 * @see https://docs.aws.amazon.com/systems-manager/latest/userguide/parameter-store-finding-public-parameters.html
 * @see https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_DescribeImages.html
 */
export async function amiChecks(deps: DoctorDeps, spec: SweepSpec, override?: string): Promise<Check[]> {
  const parameters = await amiParameters(spec, override);
  return Promise.all(
    [...parameters].map(async ([parameter, configs]): Promise<Check> => {
      const name = `ami ${parameter}`;
      const fix = override
        ? `check the parameter name given with --ami-parameter (the deploy's -c amiParameter), and that it holds an AMI id in ${deps.region}.`
        : `the DLAMI line may be retired in ${deps.region}: see the DLAMI release notes (https://docs.aws.amazon.com/dlami/latest/devguide/appendix-ami-release-notes.html), or deploy with -c amiParameter=<your parameter> and pass the same --ami-parameter here.`;
      let imageId: string | undefined;
      try {
        imageId = (await deps.ssm.send(new GetParameterCommand({ Name: parameter }))).Parameter?.Value;
      } catch (err) {
        if ((err as Error).name === 'ParameterNotFound') return check(name, 'blocker', `SSM parameter ${parameter} does not exist in ${deps.region} (needed by ${configs.join(', ')}).`, fix);
        return check(name, 'blocker', explainAwsError(err, `SSM GetParameter ${parameter}`).message, 'the identity you use needs ssm:GetParameter; then run spot-sweep doctor again.');
      }
      if (!imageId || !/^ami-[0-9a-f]+$/.test(imageId)) return check(name, 'blocker', `SSM parameter ${parameter} holds "${imageId ?? ''}", not an AMI id.`, fix);
      let image;
      try {
        image = (await deps.ec2.send(new DescribeImagesCommand({ ImageIds: [imageId] }))).Images?.[0];
      } catch (err) {
        if ((err as Error).name !== 'InvalidAMIID.NotFound' && (err as Error).name !== 'InvalidAMIID.Unavailable') throw explainAwsError(err, `EC2 DescribeImages ${imageId}`);
      }
      if (!image) return check(name, 'blocker', `SSM parameter ${parameter} names ${imageId}, which EC2 does not find in ${deps.region}.`, fix);
      return check(name, 'ok', `${imageId} "${image.Name ?? '?'}" (for ${configs.join(', ')}).`);
    }),
  );
}
