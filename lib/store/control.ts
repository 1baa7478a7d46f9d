import { randomUUID } from 'node:crypto';
import { ControlJson, contractProblems, storeKeys } from '../contract';
import { isPreconditionFailed } from './s3-store';
import { SweepStore } from './types';

/** A request about one config's job, as a requester states it. */
export interface ControlRequest {
  readonly action: ControlJson['action'];
  /** Who asks: a value of REQUESTERS (lib/contract). */
  readonly by: string;
  /** Why, as a sentence: it becomes the STOPPED message. */
  readonly reason: string;
}

/**
 * Writes a request into the config's control.json (the job runner reads it at start and at every sync
 * tick, and obeys a stop by checkpointing, uploading and ending STOPPED with this reason). The write is
 * conditional on what was read, retried when another requester wrote in between; the newest request wins.
 * Returns the document written.
 */
export async function requestControl(store: SweepStore, sweep: string, config: string, request: ControlRequest, now: Date = new Date()): Promise<ControlJson> {
  const key = storeKeys.configFile(sweep, config, 'control');
  const doc: ControlJson = { version: 1, action: request.action, by: request.by, reason: request.reason, at: now.toISOString(), id: randomUUID() };
  const problems = contractProblems('control', doc);
  if (problems.length > 0) throw new Error(`control request for ${sweep}/${config} does not fit control.schema.json: ${problems.join('; ')}`);
  for (let attempt = 1; ; attempt++) {
    const current = await store.readObject(key);
    try {
      await store.write(key, `${JSON.stringify(doc, null, 2)}\n`, { ifMatch: current ? current.etag : 'absent' });
      return doc;
    } catch (err) {
      if (!isPreconditionFailed(err) || attempt >= 3) throw err;
    }
  }
}

/** A request as the readers (status, the leaderboard) show it: `stop requested by <who> at <when>: <why>`. */
export function describeRequest(request: Pick<ControlJson, 'action' | 'by' | 'at' | 'reason'>): string {
  return `${request.action} requested by ${request.by} at ${request.at}: ${request.reason}`;
}

/** The config's control.json, parsed; undefined when there is none or it does not fit the schema (with the reason). */
export async function readControl(store: SweepStore, sweep: string, config: string): Promise<{ control?: ControlJson; problem?: string }> {
  const text = await store.read(storeKeys.configFile(sweep, config, 'control'));
  return parseControl(text);
}

export function parseControl(text: string | undefined): { control?: ControlJson; problem?: string } {
  if (text === undefined) return {};
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    return { problem: `control.json is not valid JSON (${(err as Error).message})` };
  }
  const problems = contractProblems('control', value);
  return problems.length > 0 ? { problem: `control.json does not fit its schema: ${problems.join('; ')}` } : { control: value as ControlJson };
}
