import { GpuModel } from './instances';

/**
 * Throughput model of the built-in two-tower trainer, per GPU model.
 *
 * ASSUMPTIONS, not measurements. Calibrate from `examplesPerSecond` in the results.json of real
 * runs (replace the number, note the run in the comment). Starting points:
 * - The seed's laptop (Apple MPS) ran config O (876K examples, 10 folds, 3 epochs = 23.7M training
 *   example-passes) in 7-8 h: about 900 examples/s at batch size 96.
 * - The seed expected a V100 to be 3-5x faster (config O in ~1.5 h on p3.2xlarge): ~4,500/s.
 * - Other GPUs are scaled from V100 by their mixed-precision tensor throughput for small MLP towers,
 *   discounted because the trainer is partly input-bound (embedding lookups, data loading).
 * - Multi-GPU: DDP over NVLink/NVSwitch (V100, A100, H100) keeps ~90% per GPU; PCIe-only parts
 *   (T4, A10G, L4, L40S) ~80%.
 * - Setup: instance boot, DLAMI start-up, wheel install from the S3 cache and data download before
 *   the first step. V100 takes longer: the proprietary-driver AMI and the cu126 wheels.
 * - fp32 runs at about 60% of the mixed-precision rate (A100/H100 still use TF32 tensor cores).
 * - Evaluation time per fold is not modelled separately (it is small next to training for
 *   `evalCandidates: "labeled"`).
 */
export interface GpuThroughput {
  /** Training examples per second on one GPU, mixed precision, batch size 1024. */
  readonly examplesPerSecondPerGpu: number;
  /** Fraction of linear speed-up kept per GPU when gpus > 1. */
  readonly multiGpuEfficiency: number;
  /** Minutes from launch to the first training step. */
  readonly setupMinutes: number;
}

export const THROUGHPUT: Readonly<Record<GpuModel, GpuThroughput>> = {
  T4: { examplesPerSecondPerGpu: 2_000, multiGpuEfficiency: 0.8, setupMinutes: 12 },
  A10G: { examplesPerSecondPerGpu: 5_000, multiGpuEfficiency: 0.8, setupMinutes: 12 },
  L4: { examplesPerSecondPerGpu: 4_000, multiGpuEfficiency: 0.8, setupMinutes: 12 },
  L40S: { examplesPerSecondPerGpu: 9_000, multiGpuEfficiency: 0.8, setupMinutes: 12 },
  V100: { examplesPerSecondPerGpu: 4_500, multiGpuEfficiency: 0.9, setupMinutes: 15 },
  A100: { examplesPerSecondPerGpu: 12_000, multiGpuEfficiency: 0.9, setupMinutes: 15 },
  H100: { examplesPerSecondPerGpu: 20_000, multiGpuEfficiency: 0.9, setupMinutes: 15 },
};

/** Throughput relative to mixed precision (see the assumptions above). */
export const FP32_FACTOR = 0.6;

/** Examples per second of `gpus` GPUs of one model. */
export function examplesPerSecond(gpuModel: GpuModel, gpus: number, precision: string): number {
  const t = THROUGHPUT[gpuModel];
  const scale = gpus === 1 ? 1 : gpus * t.multiGpuEfficiency;
  return t.examplesPerSecondPerGpu * scale * (precision === 'fp32' ? FP32_FACTOR : 1);
}
