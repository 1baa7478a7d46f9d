/**
 * The guard's changes to a config's status.json (the job runner's file): read-modify-write that
 * keeps every field it does not own. The job runner keeps unknown fields when it rewrites the file.
 */

/** States the guard never overwrites: the run is over, its outcome stands. */
const FINISHED = new Set(['SUCCEEDED', 'FAILED']);

export interface StatusPatch {
  /** The config's spend so far, USD. */
  readonly spendUsd: number;
  /** Set when the sweep budget stopped the config. */
  readonly stoppedMessage?: string;
  /** Set when the group was moved to on-demand. */
  readonly onDemand?: { readonly since: string; readonly reason: string };
}

/**
 * Applies the patch to status.json's text. Returns the new text, `unchanged` when nothing differs,
 * or a problem when the file is not a JSON object (it is then left alone: never clobber the runner's file).
 */
export function mergeStatus(text: string | undefined, patch: StatusPatch): { text?: string; unchanged?: true; problem?: string } {
  let status: Record<string, unknown> = {};
  if (text !== undefined) {
    try {
      const parsed: unknown = JSON.parse(text);
      if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) return { problem: 'status.json is not a JSON object' };
      status = parsed as Record<string, unknown>;
    } catch (err) {
      return { problem: `status.json is not valid JSON (${(err as Error).message})` };
    }
  }
  const next: Record<string, unknown> = { ...status, spendUsd: patch.spendUsd };
  const state = typeof status.state === 'string' ? status.state : undefined;
  if (patch.stoppedMessage && !(state && FINISHED.has(state)) && !(state === 'STOPPED' && status.stoppedBy === 'budget')) {
    Object.assign(next, { state: 'STOPPED', stoppedBy: 'budget', message: patch.stoppedMessage, updatedAt: new Date().toISOString() });
  }
  // Own keys, not `market`: that one is the runner's (the market of the instance running now), and
  // the runner rewrites its own keys on every update.
  if (patch.onDemand && status.onDemandSince === undefined) {
    Object.assign(next, { onDemandSince: patch.onDemand.since, onDemandReason: patch.onDemand.reason });
  }
  if (text !== undefined && JSON.stringify(next) === JSON.stringify(status)) return { unchanged: true };
  return { text: `${JSON.stringify(next, null, 2)}\n` };
}
