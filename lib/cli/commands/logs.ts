import { ACTION, EXIT_CODES, FINAL_STATES, storeKeys } from '../../contract';
import { loadSpec } from '../../spec/load';
import { readControl, readStatus } from '../../store';
import { Command, OptionTable, requireConfig } from '../args';
import { AwsSession, openStore, sleep, utf8Stream } from '../aws';

const options = {
  follow: { type: 'boolean', help: 'keep printing what is added until the config has finished; Ctrl-C ends it' },
  // The job runner uploads train.log every 30 s, so polling much faster only costs requests.
  interval: { type: 'seconds', default: 10, min: 0.1, help: 'seconds between polls with --follow' },
} as const satisfies OptionTable;

/**
 * `spot-sweep logs`: prints the config's train.log from the bucket (every attempt, each headed by
 * the runner). With `--follow` it polls the object and prints only the bytes added since, until the
 * config's status.json is final or `signal` aborts.
 */
export const logs: Command<typeof options> = {
  name: 'logs',
  summary: "print a config's train.log from the bucket (--follow to keep printing)",
  description: `
Prints the config's train.log from the bucket: every attempt, each headed by the job runner. With
--follow it prints what is added (polled every --interval seconds) until the config has finished.`,
  positionals: [
    { name: 'spec.json', help: 'the sweep spec the sweep was deployed from', required: true },
    { name: 'config', help: 'the config whose log to print', required: true },
  ],
  options,
  aws: true,
  exits: [['ok', 'the log was printed (or there is none yet, which it says)'], 'specError', 'usage', 'aws'],
  async run({ positionals, options: o }, io) {
    const spec = loadSpec(positionals[0]);
    const config = requireConfig(spec.name, spec.configs.map((c) => c.name), positionals[1]);
    const session = await AwsSession.open(o, io.env);
    try {
      const { store } = await openStore(session, o);
      const logKey = storeKeys.configFile(spec.name, config, 'log');
      if (!o.follow) {
        const text = await store.read(logKey);
        if (text === undefined) io.err(`spot-sweep logs: no train.log for ${config} yet (${store.describe(logKey)}); the job runner uploads it every 30 s once the job starts.\n`);
        else io.out(text);
        return EXIT_CODES.cli.ok;
      }
      const decode = utf8Stream();
      let offset = 0;
      let waiting = true;
      for (;;) {
        // The status first: the runner uploads the final log before it writes a final state, so a
        // final state read here means the log read next is complete.
        const { status } = await readStatus(store, spec.name, config);
        const state = status?.state;
        // A start requested after the job last wrote its status (spot-sweep start on a STOPPED or FAILED
        // config) means a new attempt is on its way: the old final state does not end --follow.
        const { control } = await readControl(store, spec.name, config);
        const restarting = control?.action === ACTION.start && typeof status?.updatedAt === 'string' && Date.parse(control.at) > Date.parse(status.updatedAt);
        const size = await store.size(logKey);
        if (size !== undefined && size < offset) {
          io.err('spot-sweep logs: train.log was replaced (job started over); printing it from the start.\n');
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
        if (typeof state === 'string' && FINAL_STATES.has(state) && !restarting) {
          io.err(`spot-sweep logs: ${config} is ${state}; stopping --follow.\n`);
          return EXIT_CODES.cli.ok;
        }
        await sleep(o.interval * 1000, io.signal);
        if (io.signal?.aborted) return EXIT_CODES.cli.ok;
      }
    } finally {
      session.close();
    }
  },
};
