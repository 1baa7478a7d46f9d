import { CONFIG_FILES, StatusJson, storeKeys } from '../contract';
import { SweepStore } from './types';

/**
 * A config's status.json, read only (the job runner is its one writer): the parsed object, or why there
 * is none that can be read (`problem`: not JSON, or not an object). Neither when there is no file yet.
 */
export async function readStatus(store: SweepStore, sweep: string, config: string): Promise<{ status?: Partial<StatusJson>; problem?: string }> {
  const text = await store.read(storeKeys.configFile(sweep, config, 'status'));
  if (text === undefined) return {};
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    return { problem: `${CONFIG_FILES.status} is not valid JSON (${(err as Error).message})` };
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return { problem: `${CONFIG_FILES.status} is not a JSON object` };
  return { status: value as Partial<StatusJson> };
}
