/**
 * GPU instance facts and prices, us-east-1, Linux.
 *
 * Plain data, no CDK imports: the spec validator, the cost model and the CLI all read it.
 *
 * GPU facts (model, count, memory): the accelerated-computing instance table,
 * @see https://docs.aws.amazon.com/ec2/latest/instancetypes/ac.html
 * bf16: tensor-core bf16 needs compute capability 8.0 or newer: Ampere (A10G, A100, 8.x), Ada (L4, L40S,
 * 8.9) and Hopper (H100, 9.0) have it; Volta (V100, 7.0) and Turing (T4, 7.5) do not, so
 * `precision: "bf16"` is refused there.
 * @see https://developer.nvidia.com/cuda-gpus
 * The PyTorch DLAMI with the open-source driver lists G4dn, G5, G6, G6e, P4, P4de, P5 as supported,
 * not P3: V100 needs the Amazon Linux 2 proprietary-driver DLAMI, past its end of life, so the spec accepts
 * P3 rows only in a config with `allowV100` (lib/spec/validate.ts).
 * @see https://docs.aws.amazon.com/dlami/latest/devguide/aws-deep-learning-ami-gpupt211oss-al2023-2026-09-07.html
 */

/** GPU models the table knows. */
export type GpuModel = 'T4' | 'A10G' | 'L4' | 'L40S' | 'V100' | 'A100' | 'H100';

/** One GPU model's facts. */
export interface GpuFacts {
  /** Whether the GPU has bf16 tensor cores. */
  readonly bf16: boolean;
  /** NVIDIA architecture name, for messages. */
  readonly architecture: string;
}

export const GPUS: Readonly<Record<GpuModel, GpuFacts>> = {
  T4: { bf16: false, architecture: 'Turing' },
  A10G: { bf16: true, architecture: 'Ampere' },
  L4: { bf16: true, architecture: 'Ada Lovelace' },
  L40S: { bf16: true, architecture: 'Ada Lovelace' },
  V100: { bf16: false, architecture: 'Volta' },
  A100: { bf16: true, architecture: 'Ampere' },
  H100: { bf16: true, architecture: 'Hopper' },
};

/** One instance type's facts and prices. */
export interface InstanceInfo {
  readonly instanceType: string;
  readonly gpuModel: GpuModel;
  readonly gpuCount: number;
  /** Memory of one GPU, GiB. */
  readonly gpuMemoryGiB: number;
  readonly bf16: boolean;
  readonly vcpus: number;
  /** On-demand list price, USD per hour, us-east-1 Linux (see PRICE_SOURCE). */
  readonly onDemandUsdPerHour: number;
  /** Typical spot price, USD per hour, us-east-1 (an assumption; see SPOT_DISCOUNT). */
  readonly spotUsdPerHour: number;
}

/** Where and when the prices were recorded. Re-check them before trusting a plan to the cent. */
export const PRICE_SOURCE = {
  region: 'us-east-1',
  recordedOn: '2026-11-28',
  onDemand:
    'AWS EC2 On-Demand price list, Linux, us-east-1 (https://aws.amazon.com/ec2/pricing/on-demand/); ' +
    'P4d/P4de/P5 at the list prices after the June 2025 price reduction for those families (AWS What\'s New, ' +
    'June 2025). Recorded from the published list, not fetched live.',
  spot:
    'Typical spot = on-demand x a per-family ratio read off EC2 Spot price history in us-east-1 ' +
    '(https://aws.amazon.com/ec2/spot/pricing/); spot prices move hourly and per AZ, so this is an ' +
    'assumption. `spot-sweep plan` asks DescribeSpotPriceHistory instead when AWS credentials are present.',
} as const;

/**
 * Typical spot price as a fraction of on-demand, per family (assumption, us-east-1, 2025-2026).
 * The seed plan saw p3.2xlarge at ~$0.92 of $3.06 (0.30) and p3.8xlarge at ~$3.67 of $12.24.
 */
const SPOT_DISCOUNT: Readonly<Record<string, number>> = {
  g4dn: 0.4,
  g5: 0.4,
  g6: 0.45,
  g6e: 0.5,
  p3: 0.3,
  p3dn: 0.3,
  p4d: 0.45,
  p4de: 0.45,
  p5: 0.5,
};

type Row = [instanceType: string, gpuModel: GpuModel, gpuCount: number, gpuMemoryGiB: number, vcpus: number, onDemand: number];

const ROWS: readonly Row[] = [
  // G4dn: NVIDIA T4, 16 GiB.
  ['g4dn.xlarge', 'T4', 1, 16, 4, 0.526],
  ['g4dn.2xlarge', 'T4', 1, 16, 8, 0.752],
  ['g4dn.4xlarge', 'T4', 1, 16, 16, 1.204],
  ['g4dn.8xlarge', 'T4', 1, 16, 32, 2.176],
  ['g4dn.12xlarge', 'T4', 4, 16, 48, 3.912],
  ['g4dn.16xlarge', 'T4', 1, 16, 64, 4.352],
  ['g4dn.metal', 'T4', 8, 16, 96, 7.824],
  // G5: NVIDIA A10G, 24 GiB.
  ['g5.xlarge', 'A10G', 1, 24, 4, 1.006],
  ['g5.2xlarge', 'A10G', 1, 24, 8, 1.212],
  ['g5.4xlarge', 'A10G', 1, 24, 16, 1.624],
  ['g5.8xlarge', 'A10G', 1, 24, 32, 2.448],
  ['g5.12xlarge', 'A10G', 4, 24, 48, 5.672],
  ['g5.16xlarge', 'A10G', 1, 24, 64, 4.096],
  ['g5.24xlarge', 'A10G', 4, 24, 96, 8.144],
  ['g5.48xlarge', 'A10G', 8, 24, 192, 16.288],
  // G6: NVIDIA L4, 24 GiB.
  ['g6.xlarge', 'L4', 1, 24, 4, 0.8048],
  ['g6.2xlarge', 'L4', 1, 24, 8, 0.9776],
  ['g6.4xlarge', 'L4', 1, 24, 16, 1.3232],
  ['g6.8xlarge', 'L4', 1, 24, 32, 2.0144],
  ['g6.12xlarge', 'L4', 4, 24, 48, 4.6016],
  ['g6.16xlarge', 'L4', 1, 24, 64, 3.3968],
  ['g6.24xlarge', 'L4', 4, 24, 96, 6.6752],
  ['g6.48xlarge', 'L4', 8, 24, 192, 13.3504],
  // G6e: NVIDIA L40S, 48 GiB.
  ['g6e.xlarge', 'L40S', 1, 48, 4, 1.861],
  ['g6e.2xlarge', 'L40S', 1, 48, 8, 2.24208],
  ['g6e.4xlarge', 'L40S', 1, 48, 16, 3.00424],
  ['g6e.8xlarge', 'L40S', 1, 48, 32, 4.52856],
  ['g6e.12xlarge', 'L40S', 4, 48, 48, 10.49264],
  ['g6e.16xlarge', 'L40S', 1, 48, 64, 7.57719],
  ['g6e.24xlarge', 'L40S', 4, 48, 96, 15.06559],
  ['g6e.48xlarge', 'L40S', 8, 48, 192, 30.13118],
  // P3: NVIDIA V100, 16 GiB (p3dn: 32 GiB).
  ['p3.2xlarge', 'V100', 1, 16, 8, 3.06],
  ['p3.8xlarge', 'V100', 4, 16, 32, 12.24],
  ['p3.16xlarge', 'V100', 8, 16, 64, 24.48],
  ['p3dn.24xlarge', 'V100', 8, 32, 96, 31.212],
  // P4d/P4de: NVIDIA A100 40 GiB / 80 GiB. Before the June 2025 reduction: $32.77 / $40.96 (the seed plan's figure).
  ['p4d.24xlarge', 'A100', 8, 40, 96, 21.96],
  ['p4de.24xlarge', 'A100', 8, 80, 96, 27.447],
  // P5: NVIDIA H100, 80 GiB. Before the June 2025 reduction: $98.32.
  ['p5.48xlarge', 'H100', 8, 80, 192, 55.04],
];

function family(instanceType: string): string {
  return instanceType.split('.')[0];
}

function round4(x: number): number {
  return Math.round(x * 10000) / 10000;
}

/** Every instance type the table knows, by name. */
export const INSTANCES: ReadonlyMap<string, InstanceInfo> = new Map(
  ROWS.map(([instanceType, gpuModel, gpuCount, gpuMemoryGiB, vcpus, onDemand]) => [
    instanceType,
    {
      instanceType,
      gpuModel,
      gpuCount,
      gpuMemoryGiB,
      bf16: GPUS[gpuModel].bf16,
      vcpus,
      onDemandUsdPerHour: onDemand,
      spotUsdPerHour: round4(onDemand * SPOT_DISCOUNT[family(instanceType)]),
    },
  ]),
);

/**
 * Instance families with NVIDIA/AMD GPUs or other accelerators that the table does not (yet) price.
 * A type from these families gets "not in the price table" rather than "not a GPU type".
 */
const OTHER_ACCELERATED_FAMILIES = new Set([
  'p2', 'p5e', 'p5en', 'p6-b200', 'p6e-gb200', 'g3', 'g3s', 'g4ad', 'g5g', 'g6f', 'gr6', 'gr6f',
  'inf1', 'inf2', 'trn1', 'trn1n', 'trn2', 'dl1', 'dl2q', 'f1', 'f2', 'vt1',
]);

/** What the table knows about an instance type name. */
export type InstanceLookup =
  | { readonly kind: 'gpu'; readonly info: InstanceInfo }
  | { readonly kind: 'unknown-size'; readonly sizes: readonly string[] }
  | { readonly kind: 'unpriced-accelerated' }
  | { readonly kind: 'not-gpu' }
  | { readonly kind: 'malformed' };

/** Classifies an instance type name (e.g. `p3.2xlarge`, `m5.large`, `p3.2xl`). */
export function lookupInstance(instanceType: string): InstanceLookup {
  const info = INSTANCES.get(instanceType);
  if (info) return { kind: 'gpu', info };
  const match = /^([a-z][a-z0-9-]*)\.([a-z0-9-]+)$/.exec(instanceType);
  if (!match) return { kind: 'malformed' };
  const fam = match[1];
  const sizes = [...INSTANCES.keys()].filter((t) => family(t) === fam);
  if (sizes.length > 0) return { kind: 'unknown-size', sizes };
  if (OTHER_ACCELERATED_FAMILIES.has(fam)) return { kind: 'unpriced-accelerated' };
  return { kind: 'not-gpu' };
}
