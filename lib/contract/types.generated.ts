/* Generated from training/contract/*.schema.json by `npm run contract:types` (lib/contract/generate-types.ts); do not edit. */

/* eslint-disable */

// train-settings.schema.json
/**
 * The `train` object of a sweep spec (defaults, config) and of job.json. Every default, enum and bound of the trainer lives here: the spec validator (lib/spec/validate.ts) and the trainer (training/two_tower/config.py) read them from this file.
 */
export interface TrainSettingsJson {
  /**
   * Cross-validation folds, grouped by query id.
   */
  folds?: number;
  /**
   * Passes over each fold's training rows.
   */
  epochs?: number;
  /**
   * Rows per micro-batch over all GPUs; each row's in-batch negatives are the other rows of it.
   */
  batchSize?: number;
  /**
   * AdamW learning rate.
   */
  learningRate?: number;
  /**
   * AdamW decoupled weight decay.
   */
  weightDecay?: number;
  /**
   * auto: bf16 on GPUs that have it, fp16 + GradScaler on V100/T4, fp32 on CPU/MPS.
   */
  precision?: "auto" | "fp32" | "bf16" | "fp16";
  /**
   * Micro-batches summed per optimizer step; does not add in-batch negatives.
   */
  gradAccumulation?: number;
  /**
   * Seeds fold assignment, initialisation and data order.
   */
  seed?: number;
  /**
   * Softmax temperature dividing the cosine similarities.
   */
  temperature?: number;
  /**
   * Subtract log(document frequency) from the in-batch logits.
   */
  logQCorrection?: boolean;
  /**
   * labeled: rank each test query's judged documents; corpus: rank every document.
   */
  evalCandidates?: "labeled" | "corpus";
  /**
   * Hidden width of each tower's MLP.
   */
  hiddenDim?: number;
  /**
   * Minutes between mid-epoch checkpoints; there is also one at every epoch end.
   */
  checkpointMinutes?: number;
  /**
   * After cross-validation, train one more model on all rows (same epochs, seed and settings) and export it as model/ (model.safetensors + model.json) for python -m two_tower.encode; false skips that pass (faster, no model).
   */
  finalModel?: boolean;
}

// job.schema.json
/**
 * One config's complete job. Writer: the CDK app and `spot-sweep local` (lib/spec/job.ts renderJob); delivered as the SSM parameter ssmParameters.job of names.json or a file, copied by the job runner to the config's store prefix. Readers: the job runner (training/spot_runner/jobfile.py), the trainer (train settings), bootstrap.sh (gpus).
 */
export interface JobJson {
  version: 1;
  /**
   * Sweep and config names: they become stack names, tags and S3 prefixes.
   */
  sweep: string;
  /**
   * Sweep and config names: they become stack names, tags and S3 prefixes.
   */
  config: string;
  /**
   * s3://bucket/prefix/ or an absolute local directory; null only for a script that brings its own data.
   */
  data: string | null;
  /**
   * The config's store prefix: s3://bucket/sweeps/<sweep>/<config>/ or file:///abs/dir/sweeps/<sweep>/<config>/.
   */
  store: string;
  /**
   * @minItems 1
   * @maxItems 40
   */
  instanceTypes: [string, ...string[]];
  market: "spot" | "on-demand" | "spot-then-on-demand";
  gpus: number;
  /**
   * At most 48: SSM aws:runShellScript stops a step after executionTimeout, at most 172800 s.
   */
  maxRuntimeHours: number;
  /**
   * Training examples to use; null means all.
   */
  examples: number | null;
  /**
   * Every setting present (job.json's train object: the spec's settings with the defaults applied).
   */
  train: {
    /**
     * Cross-validation folds, grouped by query id.
     */
    folds: number;
    /**
     * Passes over each fold's training rows.
     */
    epochs: number;
    /**
     * Rows per micro-batch over all GPUs; each row's in-batch negatives are the other rows of it.
     */
    batchSize: number;
    /**
     * AdamW learning rate.
     */
    learningRate: number;
    /**
     * AdamW decoupled weight decay.
     */
    weightDecay: number;
    /**
     * auto: bf16 on GPUs that have it, fp16 + GradScaler on V100/T4, fp32 on CPU/MPS.
     */
    precision: "auto" | "fp32" | "bf16" | "fp16";
    /**
     * Micro-batches summed per optimizer step; does not add in-batch negatives.
     */
    gradAccumulation: number;
    /**
     * Seeds fold assignment, initialisation and data order.
     */
    seed: number;
    /**
     * Softmax temperature dividing the cosine similarities.
     */
    temperature: number;
    /**
     * Subtract log(document frequency) from the in-batch logits.
     */
    logQCorrection: boolean;
    /**
     * labeled: rank each test query's judged documents; corpus: rank every document.
     */
    evalCandidates: "labeled" | "corpus";
    /**
     * Hidden width of each tower's MLP.
     */
    hiddenDim: number;
    /**
     * Minutes between mid-epoch checkpoints; there is also one at every epoch end.
     */
    checkpointMinutes: number;
    /**
     * After cross-validation, train one more model on all rows (same epochs, seed and settings) and export it as model/ (model.safetensors + model.json) for python -m two_tower.encode; false skips that pass (faster, no model).
     */
    finalModel: boolean;
  };
  script: null | {
    /**
     * URI of a directory (local) or of a .zip (local or s3).
     */
    code: string;
    /**
     * The script, relative to the code root.
     */
    entrypoint: string;
    /**
     * @maxItems 256
     */
    args: string[];
    /**
     * @maxItems 256
     */
    patches: {
      file: string;
      find: string;
      replace: string;
    }[];
    /**
     * Glob of the result files, relative to the code root.
     */
    results: string;
    /**
     * The score the script reports, read by the job runner from its results file after it succeeds (results.json `metric`); null: the script is listed unscored.
     */
    metric: null | {
      /**
       * A JSON pointer (RFC 6901) to a value inside the script's results file, e.g. /ndcg@10 or /metrics/mean.
       */
      pointer: string;
      /**
       * The metric's name; configs whose names match (case-insensitive; ndcg10 and nDCG@10 are ndcg@10, the built-in trainer's) rank together.
       */
      name: string;
      higherIsBetter: boolean;
      /**
       * Pointer to an array of per-fold numbers; null: none.
       */
      folds: null | string;
      /**
       * The results file to read, relative to the code root; null: the single JSON file the results glob collects.
       */
      file: string | null;
    };
    /**
     * A pip requirements file in the code (relative to the code root), installed into a venv layered on the job's Python before the script runs (training/spot_runner/requirements.py); null: none.
     */
    requirements: string | null;
    /**
     * python: one process that sees every GPU; torchrun: one process per GPU (torch.distributed.run --standalone).
     */
    launcher: "python" | "torchrun";
  };
  /**
   * Restarts of a failed job on the same instance, from its checkpoint when there is one (training/spot_runner/retries.py), like AWS Batch retryStrategy with evaluateOnExit (https://docs.aws.amazon.com/batch/latest/userguide/job_retries.html) but counted as restarts, not attempts: max 2 means at most 3 runs. Spot interruptions are not failures and never use a retry. Exit codes that mean a user mistake or bad input (names.json exitCodes.runner badInput 2, interrupted 75, stopped 76, busy 73) are never retried, whatever onExitCodes says: a rerun would fail the same way, and the status history says why no retry was made.
   */
  retries: {
    /**
     * Restarts after a failure; 0: none (a failure is final).
     */
    max: number;
    /**
     * The exit codes of the trainer or script that are retried; empty: any failing exit code (except the never-retried ones above).
     *
     * @maxItems 32
     */
    onExitCodes: number[];
  };
  /**
   * The sentence-transformers model whose embeddings of the dataset's texts (queries.csv, docs.csv) the trainer trains on: a hub name (org/model, optionally @revision), an s3:// URI of a model directory, or an absolute local directory with modules.json. Encoded once per (encoder, texts) into the store's cache/embeddings/ (training/spot_runner/embedding_cache.py). null: the dataset as it is (embeddings, or hashed word n-grams of the texts). Never with a script.
   */
  encoder: string | null;
}

// status.schema.json
/**
 * One config's job as the job runner sees it, at sweeps/<sweep>/<config>/status.json. Writer: the job runner alone (training/spot_runner/status_board.py), conditionally (If-Match its last ETag). Readers: `spot-sweep status|logs|results|stop|local`, the results collector, the budget guard; they merge it with control.json (requests) and spend.json (spend). States and which are final: names.json states.
 */
export interface StatusJson {
  version: 1;
  state: "PENDING" | "BOOTSTRAPPING" | "TRAINING" | "SUCCEEDED" | "FAILED" | "STOPPED";
  /**
   * Why the job failed, stopped or was interrupted, as a sentence.
   */
  message?: string;
  /**
   * The requester (control.json `by`) whose stop the job obeyed, or the cause of a stop the job runner decided itself (names.json stopCauses: its max-runtime deadline, a scale-in).
   */
  stoppedBy?: string;
  /**
   * The control.json `id` of the stop the job obeyed.
   */
  stopRequestId?: string;
  history: {
    state: "PENDING" | "BOOTSTRAPPING" | "TRAINING" | "SUCCEEDED" | "FAILED" | "STOPPED";
    at: string;
    attempt: number;
    /**
     * Why this state was entered, as a sentence: a failed attempt's error and whether it is retried (retries.py).
     */
    cause?: string;
    /**
     * The exit code of the trainer or script whose ending this entry records.
     */
    exitCode?: number;
  }[];
  updatedAt: string;
  /**
   * Sweep and config names: they become stack names, tags and S3 prefixes.
   */
  sweep: string;
  /**
   * Sweep and config names: they become stack names, tags and S3 prefixes.
   */
  config: string;
  mode?: "train" | "script";
  /**
   * sha256 of the job.json this status belongs to.
   */
  jobDigest?: string;
  attempts: number;
  interruptions: number;
  /**
   * Restarts after failures (job.json retries): used so far, of max. Kept across instances, so a replacement continues the count.
   */
  retries?: {
    used: number;
    max: number;
  };
  /**
   * The instance type of the current (or last) attempt; `local` off EC2.
   */
  instanceType?: string;
  /**
   * spot or on-demand (EC2 instance-life-cycle) of the current attempt; `local` off EC2.
   */
  market?: string;
  startedAt?: string;
  /**
   * 0-based index of the fold in progress (the trainer's); equal to folds during the final model's pass (train.finalModel), after the folds.
   */
  fold?: number | null;
  folds?: number | null;
  /**
   * 0-based index of the epoch in progress.
   */
  epoch?: number | null;
  epochs?: number | null;
  step?: number | null;
  /**
   * 0 to 1 over the whole run.
   */
  progress?: number | null;
  examplesPerSecond?: number | null;
  etaSeconds?: number | null;
  loss?: number | null;
}

// control.schema.json
/**
 * The latest request about one config's job, at sweeps/<sweep>/<config>/control.json. Writers: requesters only (`spot-sweep stop`, `spot-sweep start`, `spot-sweep local`, the budget guard, `cdk deploy` answering a stale stop of a changed job); each writes the whole object, conditionally (If-Match / If-None-Match). Reader: the job runner, at start and at every sync tick; a stop makes it checkpoint, upload and end STOPPED with this reason. The job runner never writes it.
 */
export interface ControlJson {
  version: 1;
  /**
   * stop: checkpoint and end STOPPED; start: run again (resuming from the checkpoint when the job is unchanged).
   */
  action: "stop" | "start";
  /**
   * Who asks: one of names.json requesters.
   */
  by: string;
  /**
   * Why, as a sentence; it becomes the STOPPED message.
   */
  reason: string;
  /**
   * When the request was made (ISO 8601, UTC).
   */
  at: string;
  /**
   * Unique per request, so a reader can tell a new request from one it has seen.
   */
  id: string;
}

// results.schema.json
/**
 * One config's results, at sweeps/<sweep>/<config>/results.json, written once by the job runner when the job SUCCEEDED (the trainer's OUT/results.json plus `job`, or the script-mode summary). Readers: the leaderboard (lib/results/leaderboard.ts), the results collector and report, `spot-sweep local|results`.
 */
export type ResultsJson =
  | {
      /**
       * The final model's pass (train.finalModel: one model trained on all rows after the folds, exported to OUT/model/); null when finalModel is false. Absent in results of trainers before it.
       */
      finalModel?: null | {
        trainLoss: number;
        trainExamples: number;
        seconds: number;
        /**
         * SHA-256 of model/model.safetensors.
         */
        sha256: string;
      };
      version: 1;
      mode: "train";
      /**
       * The resolved trainer settings (train-settings.schema.json recorded: settings added after the first version may be absent in older files), plus maxExamples (null: all rows).
       */
      config: {
        /**
         * Cross-validation folds, grouped by query id.
         */
        folds: number;
        /**
         * Passes over each fold's training rows.
         */
        epochs: number;
        /**
         * Rows per micro-batch over all GPUs; each row's in-batch negatives are the other rows of it.
         */
        batchSize: number;
        /**
         * AdamW learning rate.
         */
        learningRate: number;
        /**
         * AdamW decoupled weight decay.
         */
        weightDecay: number;
        /**
         * auto: bf16 on GPUs that have it, fp16 + GradScaler on V100/T4, fp32 on CPU/MPS.
         */
        precision: "auto" | "fp32" | "bf16" | "fp16";
        /**
         * Micro-batches summed per optimizer step; does not add in-batch negatives.
         */
        gradAccumulation: number;
        /**
         * Seeds fold assignment, initialisation and data order.
         */
        seed: number;
        /**
         * Softmax temperature dividing the cosine similarities.
         */
        temperature: number;
        /**
         * Subtract log(document frequency) from the in-batch logits.
         */
        logQCorrection: boolean;
        /**
         * labeled: rank each test query's judged documents; corpus: rank every document.
         */
        evalCandidates: "labeled" | "corpus";
        /**
         * Hidden width of each tower's MLP.
         */
        hiddenDim: number;
        /**
         * Minutes between mid-epoch checkpoints; there is also one at every epoch end.
         */
        checkpointMinutes: number;
        /**
         * After cross-validation, train one more model on all rows (same epochs, seed and settings) and export it as model/ (model.safetensors + model.json) for python -m two_tower.encode; false skips that pass (faster, no model).
         */
        finalModel?: boolean;
        maxExamples: number | null;
      };
      /**
       * @minItems 1
       */
      folds: [
        {
          fold: number;
          ndcg10: number;
          /**
           * The fold's last epoch's mean train loss (its epochLosses' last value).
           */
          trainLoss: number;
          /**
           * The fold's mean train loss of each epoch, in order (one per epoch; the report's loss curves). Carried in the trainer's checkpoints, so a resumed fold keeps the epochs done before the interruption. The trainer always writes it; optional so that results.json written before it existed still fit and rank (they have no loss curve).
           *
           * @minItems 1
           */
          epochLosses?: [number, ...number[]];
          trainExamples: number;
          testQueries: number;
          seconds: number;
        },
        ...{
          fold: number;
          ndcg10: number;
          /**
           * The fold's last epoch's mean train loss (its epochLosses' last value).
           */
          trainLoss: number;
          /**
           * The fold's mean train loss of each epoch, in order (one per epoch; the report's loss curves). Carried in the trainer's checkpoints, so a resumed fold keeps the epochs done before the interruption. The trainer always writes it; optional so that results.json written before it existed still fit and rank (they have no loss curve).
           *
           * @minItems 1
           */
          epochLosses?: [number, ...number[]];
          trainExamples: number;
          testQueries: number;
          seconds: number;
        }[]
      ];
      ndcg10: {
        mean: number;
        std: number;
        ddof: 1;
      };
      totalSeconds: number;
      examplesPerSecond: number;
      hardware: {
        device: "cpu" | "cuda" | "mps";
        gpuName: string | null;
        gpuCount: number;
        precision: "fp32" | "bf16" | "fp16";
      };
      software: {
        torch: string;
        cuda: string | null;
        python: string;
      };
      /**
       * Digest of each data file read: file name -> sha256:<hex>.
       */
      data: {
        [k: string]: string | undefined;
      };
      /**
       * Added by the job runner: where and how the job ran.
       */
      job: {
        /**
         * Sweep and config names: they become stack names, tags and S3 prefixes.
         */
        sweep: string;
        /**
         * Sweep and config names: they become stack names, tags and S3 prefixes.
         */
        config: string;
        instanceType: string;
        market: string;
        attempts: number;
        interruptions: number;
        jobDigest?: string;
        /**
         * Setup time of the attempt that finished (the one that wrote these results; earlier, interrupted attempts are not in it), measured by the job runner (training/spot_runner/setup_times.py); absent in results of runners before it. The README says how to calibrate `plan`'s setupMinutes (lib/cost/throughput.ts) from it.
         */
        setup?: {
          /**
           * Each phase measured, in order: the bootstrap's (bootstrap.sh: metadata, driver, job, python, requirements, gpus, gpu-metrics; none when the runner ran without it), then the runner's own (fetch-code, fetch-data, fetch-checkpoint, those the job has).
           */
          phases: {
            name: string;
            seconds: number;
          }[];
          /**
           * The machine's boot time (Linux /proc/stat btime); null where unknown.
           */
          bootedAt: string | null;
          /**
           * When the runner saw the trainer's first training step of this attempt (its OUT/status.json with step > 0, written at that step); in script mode the script's start, the best the runner knows. Null when not seen.
           */
          firstStepAt: string | null;
          /**
           * firstStepAt - bootedAt: the setup time of this attempt; null when either is unknown.
           */
          bootToFirstStepSeconds: number | null;
        };
        /**
         * When the job runner wrote these results (the job's end); the report's History names it for results moved to history/. Absent in results of runners before it.
         */
        finishedAt?: string;
      };
      /**
       * Added by the job runner: where the final model (model.safetensors + model.json) was uploaded, before this file, and the SHA-256 of its model.safetensors; null when the trainer exported none (finalModel false). Absent in results of runners before it.
       */
      model?: null | {
        /**
         * The store key of the model/ folder: sweeps/<sweep>/<config>/model/.
         */
        key: string;
        sha256: string;
      };
    }
  | {
      version: 1;
      mode: "script";
      /**
       * @minItems 1
       */
      files: [string, ...string[]];
      /**
       * The single result file's JSON, or null (several files, or not JSON).
       */
      results: {
        [k: string]: unknown | undefined;
      };
      /**
       * The script's declared metric (job.json script.metric) as read from its results file; null when it declares none. Absent in results of runners before it (read as null).
       */
      metric?: null | {
        /**
         * As declared (job.json script.metric.name).
         */
        name: string;
        higherIsBetter: boolean;
        /**
         * The value at the metric's pointer.
         */
        mean: number;
        /**
         * Standard deviation of the per-fold values (ddof 1); null with fewer than two folds or none.
         */
        std: number | null;
        /**
         * The per-fold values at the folds pointer; null when none is declared.
         */
        folds: number[] | null;
        /**
         * The results file read, relative to the code root.
         */
        file: string;
      };
      /**
       * Added by the job runner: where and how the job ran.
       */
      job: {
        /**
         * Sweep and config names: they become stack names, tags and S3 prefixes.
         */
        sweep: string;
        /**
         * Sweep and config names: they become stack names, tags and S3 prefixes.
         */
        config: string;
        instanceType: string;
        market: string;
        attempts: number;
        interruptions: number;
        jobDigest?: string;
        /**
         * Setup time of the attempt that finished (the one that wrote these results; earlier, interrupted attempts are not in it), measured by the job runner (training/spot_runner/setup_times.py); absent in results of runners before it. The README says how to calibrate `plan`'s setupMinutes (lib/cost/throughput.ts) from it.
         */
        setup?: {
          /**
           * Each phase measured, in order: the bootstrap's (bootstrap.sh: metadata, driver, job, python, requirements, gpus, gpu-metrics; none when the runner ran without it), then the runner's own (fetch-code, fetch-data, fetch-checkpoint, those the job has).
           */
          phases: {
            name: string;
            seconds: number;
          }[];
          /**
           * The machine's boot time (Linux /proc/stat btime); null where unknown.
           */
          bootedAt: string | null;
          /**
           * When the runner saw the trainer's first training step of this attempt (its OUT/status.json with step > 0, written at that step); in script mode the script's start, the best the runner knows. Null when not seen.
           */
          firstStepAt: string | null;
          /**
           * firstStepAt - bootedAt: the setup time of this attempt; null when either is unknown.
           */
          bootToFirstStepSeconds: number | null;
        };
        /**
         * When the job runner wrote these results (the job's end); the report's History names it for results moved to history/. Absent in results of runners before it.
         */
        finishedAt?: string;
      };
    };

// spend.schema.json
/**
 * The sweep's spend ledger, at sweeps/<sweep>/spend.json: every instance the sweep ever ran, priced. Writer: the budget guard Lambda alone (lambda/budget-guard). Readers: `spot-sweep status`, the results collector.
 */
export interface SpendJson {
  version: 1;
  /**
   * Sweep and config names: they become stack names, tags and S3 prefixes.
   */
  sweep: string;
  budgetUsd: number;
  updatedAt: string;
  totalUsd: number;
  configs: {
    [k: string]:
      | {
          usd: number;
          instanceHours: number;
          instances: number;
          /**
           * Spot interruptions seen in the ledger.
           */
          interruptions: number;
          spotLaunchFailures?: number;
          /**
           * When the guard moved a spot-then-on-demand group to on-demand.
           */
          onDemandSince?: string;
          onDemandReason?: string;
        }
      | undefined;
  };
  instances: {
    [k: string]:
      | {
          instanceId: string;
          config: string;
          instanceType: string;
          market: "spot" | "on-demand";
          availabilityZone: string;
          launchTime: string;
          state: string;
          lastSeenAt: string;
          lastSeenRunningAt?: string;
          endedAt?: string;
          endSource?: "state transition time" | "first seen stopped" | "last seen running";
          interrupted: boolean;
          hours: number;
          usd: number;
          priceSource?:
            | "spot price history"
            | "on-demand price table"
            | "on-demand price table (no spot price history)"
            | "unpriced";
          final: boolean;
        }
      | undefined;
  };
  /**
   * Set the first time the total reached the budget.
   */
  stoppedForBudget?: {
    at: string;
    totalUsd: number;
  };
  notes: string[];
}

// lease.schema.json
/**
 * Which job runner holds one config, at sweeps/<sweep>/<config>/lease.json: one runner per config across machines (a replacement instance while the old one still runs, a manual run beside the fleet). Writer: the job runner alone (training/spot_runner/lease.py), always conditionally: If-None-Match to take a free lease, If-Match the ETag it saw to take over a released or stale one, renew it, or release it. A runner takes over an unreleased lease only after watching it stay unchanged for the holder's ttlSeconds, so the timestamps (written by clocks that may disagree) only inform people. Readers: the job runner; people (who holds it, since when).
 */
export interface LeaseJson {
  version: 1;
  /**
   * The runner that holds (or last held) the config.
   */
  holder: {
    /**
     * Its host name.
     */
    host: string;
    /**
     * Its process id on that host.
     */
    pid: number;
    /**
     * Its EC2 instance id; null off EC2.
     */
    instanceId: string | null;
  };
  /**
   * Random per acquisition: tells this holding apart from an earlier one of the same host and pid.
   */
  token: string;
  /**
   * When the holder took the lease (its clock, ISO 8601, UTC).
   */
  acquiredAt: string;
  /**
   * The holder's latest renewal (its clock, ISO 8601, UTC).
   */
  renewedAt: string;
  /**
   * How long another runner waits for a renewal before it takes the lease over; the holder renews three times as often.
   */
  ttlSeconds: number;
  /**
   * true once the holder has ended: the next runner takes the lease at once.
   */
  released: boolean;
}

// scheduled.schema.json
/**
 * With the sweep's maxParallel: the scheduler's record that it started one config's group, at sweeps/<sweep>/<config>/scheduled.json. Writer: the scheduler alone (lambda/scheduler), after it set the group to desired 1. Reader: the scheduler: a config it already started for this job digest is not started again unless control.json holds a start request with another id than startRequestId, so a job that ends before its runner writes status.json (a failed code download, an instance that never boots) is not restarted on every tick. The job runner never reads it.
 */
export interface ScheduledJson {
  version: 1;
  /**
   * The job digest (sha256: + hex of job.json's bytes) the scheduler started the group for.
   */
  jobDigest: string;
  /**
   * The id of control.json's start request the start answered; null when there was none (the job's first run).
   */
  startRequestId: string | null;
  /**
   * When the scheduler started the group (its clock; ISO 8601, UTC), for people.
   */
  at: string;
}
