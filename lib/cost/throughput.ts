import { GpuModel } from './instances';

/**
 * Throughput model of the built-in two-tower trainer, per GPU model.
 *
 * ASSUMPTIONS, not measurements on these GPUs: still unmeasured. Calibrate them with
 * `python -m two_tower.bench gpu` (training/bench/gpu-check.sh on a GPU machine: the trainer's
 * examples/s, the config-O-shaped time with evaluation, the plan's estimate against it), or from
 * `examplesPerSecond` in the results.json of real runs (replace the number, cite the run here).
 * How they were set:
 * - Work per training example: two towers of 384 -> 512 -> 256 (config O's shape) cost about
 *   1.3 MFLOP forward, ~4 MFLOP with the backward pass, plus the in-batch softmax (~1 MFLOP at
 *   batch 1024): ~5 MFLOP.
 * - Measured on CPU (2 cores, `python -m two_tower.bench`, 876K pairs x 384-d, 2026-11-28): 12,500
 *   examples/s, i.e. ~60 GFLOP/s achieved. Nothing was measured on a GPU yet.
 * - GPUs: the trainer keeps the data on the device and batches are index slices, so a step is a
 *   few dozen kernels with no host work. Small MLPs reach a low fraction of peak; we assume ~5% of
 *   the dense fp16/bf16 tensor peak for a batch of 1024 (kernel launches dominate below that), e.g.
 *   V100 125 TFLOP/s -> ~6 TFLOP/s -> ~1M examples/s, then halve it for evaluation, checkpoints and
 *   launch overhead. The seed's plan hoped for ~4,500/s on a V100 (config O in 1.5 h): that is the
 *   per-example DataLoader loop, which the bench shows is capped at 90-180K examples/s by loading alone.
 * - Multi-GPU: DDP over NVLink/NVSwitch (V100, A100, H100) keeps ~80% per GPU (the all-gather of
 *   in-batch negatives is on the critical path); PCIe-only parts (T4, A10G, L4, L40S) ~70%.
 * - Setup: instance boot, Deep Learning AMI start-up, code and data download, and for V100 the
 *   cu126 wheel install from the S3 wheel cache (the proprietary-driver base AMI has no PyTorch).
 *   At these speeds setup dominates a run's cost. Calibrate setupMinutes from results.json
 *   `job.setup.bootToFirstStepSeconds / 60` of real runs on the model's instance types, where
 *   `job.setup.phases` shows which phase took the time (README, "The instance bootstrap").
 * - fp32 runs at about 40% of the mixed-precision rate (A100/H100 still use TF32 tensor cores).
 */
export interface GpuThroughput {
  /** Training examples per second on one GPU, mixed precision, batch size 1024. */
  readonly examplesPerSecondPerGpu: number;
  /** Fraction of linear speed-up kept per GPU when gpus > 1. */
  readonly multiGpuEfficiency: number;
  /** Minutes from launch to the first training step; measured runs record it as results.json `job.setup.bootToFirstStepSeconds`. */
  readonly setupMinutes: number;
}

export const THROUGHPUT: Readonly<Record<GpuModel, GpuThroughput>> = {
  T4: { examplesPerSecondPerGpu: 150_000, multiGpuEfficiency: 0.7, setupMinutes: 10 },
  A10G: { examplesPerSecondPerGpu: 300_000, multiGpuEfficiency: 0.7, setupMinutes: 10 },
  L4: { examplesPerSecondPerGpu: 250_000, multiGpuEfficiency: 0.7, setupMinutes: 10 },
  L40S: { examplesPerSecondPerGpu: 600_000, multiGpuEfficiency: 0.7, setupMinutes: 10 },
  V100: { examplesPerSecondPerGpu: 400_000, multiGpuEfficiency: 0.8, setupMinutes: 15 },
  A100: { examplesPerSecondPerGpu: 800_000, multiGpuEfficiency: 0.8, setupMinutes: 12 },
  H100: { examplesPerSecondPerGpu: 1_200_000, multiGpuEfficiency: 0.8, setupMinutes: 12 },
};

/** Throughput relative to mixed precision (see the assumptions above). */
export const FP32_FACTOR = 0.4;

/** Examples per second of `gpus` GPUs of one model. */
export function examplesPerSecond(gpuModel: GpuModel, gpus: number, precision: string): number {
  const t = THROUGHPUT[gpuModel];
  const scale = gpus === 1 ? 1 : gpus * t.multiGpuEfficiency;
  return t.examplesPerSecondPerGpu * scale * (precision === 'fp32' ? FP32_FACTOR : 1);
}
