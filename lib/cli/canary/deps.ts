import type { StatusJson } from '../../contract';

/**
 * Everything the canary does to the world, as one interface: the orchestration (./run.ts) only calls
 * these, so tests drive it with fakes and ./aws-deps.ts holds the real implementations (AWS SDK, the
 * project's CDK CLI, the venv's synthetic data generator, the `stop` and `start` verbs).
 */

/** Which GPU type the canary runs on, and why. */
export interface InstancePick {
  /** The chosen type; undefined when no candidate can launch here. */
  readonly instanceType?: string;
  /** One sentence: why this type, or why none (each candidate's reason). */
  readonly reason: string;
}

/** A config's Auto Scaling group as the canary watches it. */
export interface GroupState {
  readonly desired: number;
  /** Instances still in the group (any lifecycle state but Terminated). */
  readonly instances: number;
}

/** GPU utilisation datapoints read the way the idle alarm reads them (no unit). */
export interface GpuDatapoints {
  readonly count: number;
  /** The units CloudWatch returned with them (the agent publishes `None`). */
  readonly units: readonly string[];
}

export interface CanaryDeps {
  /**
   * The first of `candidates` (cheapest first) that this account can launch as spot in the region, or
   * none with each candidate's reason. The seam where the vCPU quota headroom of `doctor` plugs in.
   */
  pickInstanceType(candidates: readonly string[]): Promise<InstancePick>;
  /** The artifact bucket of the deployed foundation; undefined when the foundation is not deployed. */
  foundationBucket(): Promise<string | undefined>;
  /** `cdk deploy` of the foundation; throws with cdk's last lines on failure. */
  deployFoundation(): Promise<void>;
  /** Writes the canary's synthetic data set into `dir`. */
  makeDataset(dir: string): Promise<void>;
  /** Uploads every file of `dir` under `prefix` of the bucket; the keys written. */
  uploadDataset(dir: string, bucket: string, prefix: string): Promise<string[]>;
  /** Deletes the given keys of the bucket. */
  removeDataset(bucket: string, keys: readonly string[]): Promise<void>;
  /** `cdk deploy` of the sweep stack of `specFile`; throws with cdk's last lines on failure. */
  deploySweep(specFile: string): Promise<void>;
  /** `cdk destroy` of the sweep stack of `specFile`; throws with cdk's last lines on failure. */
  destroySweep(specFile: string): Promise<void>;
  /** status.json of the config, parsed; undefined while there is none. */
  readStatus(sweep: string, config: string): Promise<Partial<StatusJson> | undefined>;
  /** An object of the store as text; undefined when there is none. */
  readText(key: string): Promise<string | undefined>;
  /** The keys under a prefix of the store. */
  listKeys(prefix: string): Promise<string[]>;
  /** `spot-sweep stop <spec>`: a stop request, the wait for STOPPED, the group to 0. Returns what it printed. */
  stop(specFile: string, waitSeconds: number): Promise<string>;
  /** `spot-sweep start <spec>`: a start request and the group to 1. Returns what it printed. */
  start(specFile: string): Promise<string>;
  /** GPU utilisation of the group between two times, read as the idle alarm reads it. */
  gpuDatapoints(groupName: string, from: Date, to: Date): Promise<GpuDatapoints>;
  /** The group's desired capacity and instance count; undefined when it does not exist. */
  group(groupName: string): Promise<GroupState | undefined>;
  now(): Date;
  /** Resolves after `ms`, or at once when `signal` aborts. */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

/** How long the canary waits for each promise before it counts as failed, in seconds. */
export interface CanaryTimeouts {
  /** Deploy end to status.json BOOTSTRAPPING: the spot launch, the boot, SSM registration, the association. */
  readonly jobStart: number;
  /** BOOTSTRAPPING to the first training step: CUDA torch, the wheel cache, the data fetch. */
  readonly firstStep: number;
  /** The stop request to status.json STOPPED (the runner reads control.json every 30 s). */
  readonly stop: number;
  /** The start request to the resumed job's end (a new instance boots and bootstraps again). */
  readonly resume: number;
  /** SUCCEEDED to the GPU datapoints (the agent sends each minute; CloudWatch takes a few more). */
  readonly metrics: number;
  /** SUCCEEDED to results.json and report.html (the collector runs on the results.json event). */
  readonly results: number;
  /**
   * SUCCEEDED to the group's desired capacity at 0: the instance's own TerminateInstanceInAutoScalingGroup
   * (decrementing) comes seconds after the job ends. Shorter than the canary config's idleMinutes (10), so an
   * idle-GPU alarm scaling the group in cannot pass for a self-removal that never happened.
   */
  readonly selfRemoval: number;
  /** SUCCEEDED to the group at desired 0 with no instance (the termination hook waits for the upload). */
  readonly removal: number;
  /** Between reads. */
  readonly poll: number;
}

/**
 * Generous for a g4dn.xlarge from a cold Deep Learning AMI: the bootstrap installs CUDA torch (minutes
 * on the first run, before the wheel cache holds it), and a spot request may wait for capacity.
 */
export const DEFAULT_TIMEOUTS: CanaryTimeouts = {
  jobStart: 900,
  firstStep: 1500,
  stop: 300,
  resume: 2400,
  metrics: 600,
  results: 600,
  selfRemoval: 240,
  removal: 900,
  poll: 15,
};
