import type { State } from '../contract';

/**
 * Where the CLI writes, and how: every verb gets a {@link CliIo}; tests pass their own to capture
 * the output and to choose whether stdout is a terminal.
 */

export interface CliIo {
  readonly out: (text: string) => void;
  readonly err: (text: string) => void;
  readonly env: NodeJS.ProcessEnv;
  /**
   * Whether stdout is a terminal: colour, and `status --watch` clearing the screen, only then.
   * @default false
   */
  readonly isTTY?: boolean;
  /** Ends `status --watch`, `logs --follow` and `stop`'s wait. @default - aborted by Ctrl-C (SIGINT) */
  readonly signal?: AbortSignal;
}

/** Turns text into coloured text, or leaves it as it is. */
export type Paint = (text: string, colour: Colour) => string;
export type Colour = 'green' | 'red' | 'yellow' | 'cyan' | 'dim';

/** SGR codes; each coloured run is closed with a reset so a table cell never bleeds into the next. */
const SGR: Readonly<Record<Colour, string>> = { green: '32', red: '31', yellow: '33', cyan: '36', dim: '2' };

/**
 * Whether to colour: only on a terminal and only when NO_COLOR is unset or empty (https://no-color.org),
 * never in --json output (a program reads it).
 */
export function wantsColour(io: Pick<CliIo, 'isTTY' | 'env'>, json = false): boolean {
  return !json && io.isTTY === true && !io.env.NO_COLOR;
}

/** A {@link Paint} that colours when `enabled`, else returns the text unchanged. */
export function painter(enabled: boolean): Paint {
  return enabled ? (text, colour) => `\x1b[${SGR[colour]}m${text}\x1b[0m` : (text) => text;
}

/**
 * The colour of a job state in tables: green done, red failed, yellow stopped, cyan working. Keyed by
 * the contract's State type, so a renamed state fails the type check here.
 */
const STATE_COLOURS: Partial<Record<State, Colour>> = { SUCCEEDED: 'green', FAILED: 'red', STOPPED: 'yellow', TRAINING: 'cyan', BOOTSTRAPPING: 'cyan' };

/** Paints a job state (already padded) in its colour; unknown states stay plain. */
export function paintState(paint: Paint, state: string, text: string = state): string {
  const colour = STATE_COLOURS[state as State];
  return colour ? paint(text, colour) : text;
}
