import { AwsOptions, AwsSession, bucketStore, FINAL_STATES, loadSweep, parseArgs, seconds, sleep, UsageError, utf8Stream } from './aws';
import { parseObject } from './status';

export const LOGS_USAGE = 'spot-sweep logs <spec.json> <config> [--follow] [--interval SECONDS] [--region R] [--bucket NAME]';

/**
 * Seconds between polls with `--follow`. The job runner uploads train.log every 30 s
 * (`--sync-seconds`), so polling faster only costs requests.
 */
const DEFAULT_INTERVAL_SECONDS = 10;

export interface LogsIo {
  readonly out: (text: string) => void;
  readonly err: (text: string) => void;
  readonly env: NodeJS.ProcessEnv;
  /** Ends `--follow` (the CLI aborts it on Ctrl-C). */
  readonly signal?: AbortSignal;
}

/**
 * `spot-sweep logs`: prints the config's train.log from the bucket (every attempt, each headed by
 * the runner). With `--follow` it polls the object and prints only the bytes added since, until the
 * config's status.json is final (SUCCEEDED, FAILED or STOPPED) or `signal` aborts.
 */
export async function runLogs(args: readonly string[], io: LogsIo): Promise<number> {
  const parsed = parseArgs(args, { flags: ['--follow'], values: ['--interval'] });
  const [specFile, config, ...extra] = parsed.positional;
  if (extra.length > 0) throw new UsageError(`unexpected argument "${extra[0]}".`);
  const spec = loadSweep(specFile, LOGS_USAGE);
  const names = spec.configs.map((c) => c.name);
  if (config === undefined) throw new UsageError(`name the config whose log to print; the configs of "${spec.name}" are ${names.join(', ')}.`);
  if (!names.includes(config)) throw new UsageError(`the sweep "${spec.name}" has no config "${config}"; its configs are ${names.join(', ')}.`);
  const interval = seconds('--interval', parsed.values.get('--interval'), DEFAULT_INTERVAL_SECONDS, 0.1);
  const options: AwsOptions = { region: parsed.values.get('--region'), bucket: parsed.values.get('--bucket') };
  const session = await AwsSession.open(options, io.env);
  try {
    const bucket = await session.bucket(options);
    const store = await bucketStore(session, bucket);
    const prefix = `sweeps/${spec.name}/${config}`;
    const logKey = `${prefix}/train.log`;
    if (!parsed.flags.has('--follow')) {
      const text = await store.read(logKey);
      if (text === undefined) io.err(`spot-sweep logs: no train.log for ${config} yet (s3://${bucket}/${logKey}); the job runner uploads it every 30 s once the job starts.\n`);
      else io.out(text);
      return 0;
    }
    const decode = utf8Stream();
    let offset = 0;
    let waiting = true;
    for (;;) {
      // The status first: the runner uploads the final log before it writes a final state, so a
      // final state read here means the log read next is complete.
      const state = parseObject(await store.read(`${prefix}/status.json`), 'status.json').value?.state;
      const size = await store.size(logKey);
      if (size !== undefined && size < offset) {
        io.err(`spot-sweep logs: train.log was replaced (job started over); printing it from the start.\n`);
        offset = 0;
      }
      if (size !== undefined && size > offset) {
        const bytes = await store.readFrom(logKey, offset);
        offset += bytes.length;
        io.out(decode(bytes));
        waiting = false;
      } else if (size === undefined && waiting) {
        io.err(`spot-sweep logs: no train.log for ${config} yet; waiting for the job to start (Ctrl-C to stop).\n`);
        waiting = false;
      }
      if (typeof state === 'string' && FINAL_STATES.has(state)) {
        io.err(`spot-sweep logs: ${config} is ${state}; stopping --follow.\n`);
        return 0;
      }
      await sleep(interval * 1000, io.signal);
      if (io.signal?.aborted) return 0;
    }
  } finally {
    session.close();
  }
}
