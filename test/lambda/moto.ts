import { ChildProcess, spawn } from 'node:child_process';
import { createServer } from 'node:net';

/**
 * A moto_server (the AWS API emulator) on 127.0.0.1 and a free port, for one test file: start it in
 * beforeAll, `reset()` between tests, `stop()` in afterAll.
 */
export interface Moto {
  readonly endpoint: string;
  reset(): Promise<void>;
  stop(): Promise<void>;
}

/** Settings every SDK client in the tests uses to reach the emulator. */
export const clientConfig = (endpoint: string) =>
  ({ endpoint, region: 'us-east-1', credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' } }) as const;

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/** How long a test file may wait for moto_server to start and load its first service (a shared, busy machine). */
export const MOTO_START_TIMEOUT_MS = 90_000;
/** Per-test timeout for tests against moto. */
export const MOTO_TEST_TIMEOUT_MS = 30_000;

export async function startMoto(): Promise<Moto> {
  const port = await freePort();
  const endpoint = `http://127.0.0.1:${port}`;
  const child: ChildProcess = spawn('moto_server', ['-H', '127.0.0.1', '-p', String(port)], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  const deadline = Date.now() + 45_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`moto_server exited (${child.exitCode}): ${stderr.slice(-500)}`);
    try {
      const res = await fetch(`${endpoint}/moto-api/`);
      if (res.ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      child.kill();
      throw new Error(`moto_server did not answer on ${endpoint} within 45 s (is moto[server] installed?): ${stderr.slice(-500)}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  return {
    endpoint,
    reset: async () => {
      await fetch(`${endpoint}/moto-api/reset`, { method: 'POST' });
    },
    stop: async () => {
      if (child.exitCode !== null) return;
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      // moto_server (werkzeug) can be slow to stop on a busy machine: make sure it is gone.
      const force = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(force);
    },
  };
}

/**
 * A moto server for the handler tests of this file: started before them, stopped after, with the
 * handlers' console logging silenced and process.env restored (`.savedEnv` is the environment from
 * before). Read `.endpoint` inside a test.
 */
export function useMotoForHandler(): {
  readonly endpoint: string;
  readonly savedEnv: NodeJS.ProcessEnv;
  /** The environment a handler sees in these tests: the saved one, the emulator as every AWS endpoint, test credentials, and `vars`. */
  handlerEnv(vars: Readonly<Record<string, string>>): NodeJS.ProcessEnv;
} {
  let moto: Moto | undefined;
  const saved = { ...process.env };
  beforeAll(async () => {
    moto = await startMoto();
    jest.spyOn(console, 'log').mockImplementation(() => undefined);
  }, MOTO_START_TIMEOUT_MS);
  afterAll(async () => {
    process.env = saved;
    jest.restoreAllMocks();
    await moto?.stop();
  }, MOTO_START_TIMEOUT_MS);
  const endpoint = (): string => {
    if (!moto) throw new Error('moto is not started yet: read .endpoint inside a test');
    return moto.endpoint;
  };
  return {
    savedEnv: saved,
    get endpoint(): string {
      return endpoint();
    },
    handlerEnv: (vars) => ({
      ...saved,
      AWS_ENDPOINT_URL: endpoint(),
      AWS_REGION: 'us-east-1',
      AWS_ACCESS_KEY_ID: 'testing',
      AWS_SECRET_ACCESS_KEY: 'testing',
      ...vars,
    }),
  };
}
