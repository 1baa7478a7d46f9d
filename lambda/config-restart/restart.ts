import { createHash } from 'node:crypto';
import { ACTION, REQUESTERS, RUNNING_STATES, STATE, storeKeys } from '../../lib/contract';
import { readControl, readStatus, requestControl, SweepStore } from '../../lib/store';

/**
 * What `cdk deploy` does to one config's Auto Scaling group, as the handler of the config's restart
 * custom resource (lib/constructs/config-restart.ts). The config's job.json is the resource's property, so
 * CloudFormation calls this on Create and afterwards only when the deployed job.json changed.
 *
 * - Create (the stack, or the config, is new) and Update with another job digest: the config runs.
 *   1. Unless status.json says the job already SUCCEEDED with exactly this job.json (and results.json is
 *      there): then nothing, since the job runner would exit at once, after an instance booted for nothing.
 *   2. A stop standing in control.json is answered with a start request: the job runner obeys the newest
 *      request, at start and at every sync tick, so the new job would otherwise end STOPPED.
 *   3. The group is set to min 0, max 1, desired 1 (max too: `spot-sweep stop` and the budget stop leave 0/0/0).
 *   4. Update only: an instance whose runner is running the old job (status.json BOOTSTRAPPING or TRAINING
 *      with another digest) is terminated without lowering the desired capacity, and the group launches one
 *      that reads the new job.json. The runner reads job.json once, at start: left alone, the old job would
 *      run to its end, its instance remove itself, and the new job never run. An instance whose runner has not
 *      started yet reads the new job.json anyway and is left alone.
 *   The job runner starts a changed job over (training/spot_runner/job.py: a new digest drops the old checkpoints).
 * - Update with the same digest (another property changed, or CloudFormation re-evaluated the value): nothing.
 * - Delete: nothing; the group goes with the stack.
 *
 * @see https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/crpg-ref-requesttypes-update.html
 *   ("When the template developer makes changes to the properties of a custom resource within the template
 *   and updates the stack, CloudFormation sends a request to the custom resource provider with RequestType
 *   set to Update.")
 */

/** Who asks, in control.json `by` (names.json `requesters.deploy`). */
export const DEPLOY_REQUESTER = REQUESTERS.deploy;

/** The custom resource's properties, as the construct sets them (CloudFormation passes strings). */
export interface RestartProperties {
  /** The config's name in the sweep. */
  readonly Config: string;
  /** Its Auto Scaling group (lib/contract `groupName`). */
  readonly GroupName: string;
  /** The config's job.json, exactly as CloudFormation wrote it into the job parameter. */
  readonly Job: string;
  /** The sweep's maxParallel, only when it has one (so stacks without a cap keep their template as it was). */
  readonly MaxParallel?: string;
}

/** The part of a CloudFormation custom resource request the handler reads (the Provider framework passes it on). */
export type RestartEvent =
  | { readonly RequestType: 'Create'; readonly ResourceProperties: RestartProperties }
  | { readonly RequestType: 'Update'; readonly PhysicalResourceId: string; readonly ResourceProperties: RestartProperties; readonly OldResourceProperties: RestartProperties }
  | { readonly RequestType: 'Delete'; readonly PhysicalResourceId: string; readonly ResourceProperties: RestartProperties };

/**
 * What the Provider framework sends back to CloudFormation: the same physical id on every update (a new
 * one would make CloudFormation replace the resource and delete the old one), and Data for `Fn::GetAtt`.
 * @see https://docs.aws.amazon.com/cdk/api/v2/docs/aws-cdk-lib.custom_resources-readme.html ("return data for success, or throw an exception for failure")
 */
export interface RestartResponse {
  readonly PhysicalResourceId: string;
  readonly Data: { readonly JobDigest: string; readonly Started: 'true' | 'false'; readonly Why: string };
}

export interface RestartDeps {
  readonly store: SweepStore;
  /**
   * The sweep's maxParallel, when it has one: then the scheduler (lambda/scheduler) starts the group once a
   * slot is free, and this handler only makes the config pending (answers a standing stop, replaces an
   * instance running the old job).
   * @default undefined (no cap: this handler starts the group)
   */
  readonly maxParallel?: number;
  /** Sets the group to min 0, max 1, desired 1. */
  startGroup(groupName: string): Promise<void>;
  /** The ids of the group's instances that are not on their way out (terminating). */
  liveInstances(groupName: string): Promise<string[]>;
  /** Terminates an instance of the group without lowering the desired capacity, so the group launches a replacement. */
  replaceInstance(instanceId: string): Promise<void>;
  log(message: string, detail?: Record<string, unknown>): void;
}

/** The job digest exactly as the job runner computes it: `sha256:` + hex of the job.json bytes (training/spot_runner/job.py). */
export function jobDigest(job: string): string {
  return `sha256:${createHash('sha256').update(Buffer.from(job, 'utf8')).digest('hex')}`;
}

/**
 * Whether this event starts the config, and why (before looking at the store). `unlessRan`: only if this
 * job.json has not run yet (status.json of another digest, or none).
 */
function decide(event: RestartEvent): { readonly start: boolean; readonly why: string; readonly unlessRan?: boolean } {
  switch (event.RequestType) {
    case 'Create':
      return { start: true, why: 'deployed for the first time' };
    case 'Update': {
      const [before, after] = [jobDigest(event.OldResourceProperties.Job), jobDigest(event.ResourceProperties.Job)];
      if (before !== after) return { start: true, why: `job.json changed (was ${before})` };
      // maxParallel taken out of the spec: the scheduler that would have started the configs still waiting for
      // a slot goes with this deploy, so a config that never ran its job.json starts now, as an uncapped deploy
      // would have started it.
      if (event.OldResourceProperties.MaxParallel !== undefined && event.ResourceProperties.MaxParallel === undefined) {
        return { start: true, why: `maxParallel ${event.OldResourceProperties.MaxParallel} removed`, unlessRan: true };
      }
      return { start: false, why: 'job.json unchanged' };
    }
    case 'Delete':
      return { start: false, why: 'removed with the stack' };
  }
}

function checkProperties(p: Partial<RestartProperties> | undefined): asserts p is RestartProperties {
  const missing = (['Config', 'GroupName', 'Job'] as const).filter((k) => typeof p?.[k] !== 'string' || p[k] === '');
  if (missing.length > 0) {
    throw new Error(`The restart resource lacks ${missing.join(', ')}; lib/constructs/config-restart.ts sets them, so deploy the sweep stack again.`);
  }
}

/** Handles one custom resource request for one config of `sweep`. Throws (the deploy fails, naming the cause) when the store or Auto Scaling refuses. */
export async function onEvent(deps: RestartDeps, sweep: string, event: RestartEvent): Promise<RestartResponse> {
  const props = event.ResourceProperties;
  checkProperties(props);
  const digest = jobDigest(props.Job);
  const physicalId = event.RequestType === 'Create' ? props.GroupName : event.PhysicalResourceId;
  const answer = (started: boolean, why: string): RestartResponse => {
    deps.log(started ? 'config started' : 'config left as it is', { sweep, config: props.Config, group: props.GroupName, request: event.RequestType, jobDigest: digest, why });
    return { PhysicalResourceId: physicalId, Data: { JobDigest: digest, Started: started ? 'true' : 'false', Why: why } };
  };

  const decision = decide(event);
  if (!decision.start) return answer(false, decision.why);

  const { status } = await readStatus(deps.store, sweep, props.Config);
  if (decision.unlessRan && status?.jobDigest === digest) {
    return answer(false, `${decision.why}, but this job.json already ran (${status.state}); spot-sweep start runs it again`);
  }
  if (status?.state === STATE.SUCCEEDED && status.jobDigest === digest && (await deps.store.size(storeKeys.configFile(sweep, props.Config, 'results'))) !== undefined) {
    return answer(false, `${decision.why}, but this job.json already SUCCEEDED (its results stand)`);
  }
  const { control } = await readControl(deps.store, sweep, props.Config);
  let why = decision.why;
  if (control?.action === ACTION.stop) {
    await requestControl(deps.store, sweep, props.Config, {
      action: ACTION.start,
      by: DEPLOY_REQUESTER,
      reason: `cdk deploy started the job (${decision.why}); it replaces the stop requested by ${control.by} at ${control.at}.`,
    });
    why = `${why}; the standing stop request was answered with a start request`;
  }
  const capped = deps.maxParallel !== undefined;
  if (capped && control?.action !== ACTION.stop && status?.jobDigest === digest) {
    // This very job.json ended short of SUCCEEDED (the stack was destroyed and deployed again): the scheduler
    // starts a config with a status.json of its digest only for a start request newer than it.
    await requestControl(deps.store, sweep, props.Config, { action: ACTION.start, by: DEPLOY_REQUESTER, reason: `cdk deploy started the job (${decision.why}).` });
    why = `${why}; a start request asks the scheduler to run this job.json again`;
  }
  if (!capped) {
    try {
      await deps.startGroup(props.GroupName);
    } catch (err) {
      throw new Error(
        `Could not start ${props.GroupName} (UpdateAutoScalingGroup to min 0, max 1, desired 1): ${(err as Error).message}. ` +
          `The deploy fails rather than leave config "${props.Config}" stopped; fix the cause and deploy again, or run spot-sweep start.`,
      );
    }
  }
  let replaced = false;
  if (event.RequestType === 'Update' && status?.state !== undefined && RUNNING_STATES.has(status.state) && status.jobDigest !== digest) {
    const running = await deps.liveInstances(props.GroupName);
    for (const id of running) {
      await deps.replaceInstance(id).catch((err: Error) => {
        throw new Error(`Could not replace ${id} of ${props.GroupName}, which runs the old job of config "${props.Config}": ${err.message}. Terminate it yourself (the group launches one that runs the new job.json), or deploy again.`);
      });
    }
    if (running.length > 0) why = `${why}; ${running.join(', ')} was running the old job (${status.state}) and is replaced`;
    replaced = running.length > 0;
  }
  // With a cap, a config whose instance was replaced keeps its slot; any other waits for the scheduler.
  if (capped && !replaced) why = `${why}; the scheduler starts it once fewer than ${deps.maxParallel} configs hold an instance (maxParallel)`;
  return answer(!capped || replaced, why);
}
