import { FINAL_STATES, STATE } from '../contract';
import { formatEta } from './commands/status';
import { Paint, paintState, painter } from './io';

/**
 * `spot-sweep local`'s live view: one line per config (its place in the sweep, state, fold/epoch,
 * examples/s, ETA) under a header with the sweep's elapsed time and ETA. Plain TypeScript: the view
 * is fed what the job runner and the trainer write (the store's status.json, the trainer's
 * OUT/status.json) and the clock, so a test drives it without running anything.
 *
 * On a terminal the block is redrawn in place at every refresh. Without one (CI, a pipe) a config
 * prints a line when its state changes, and the running config at most one progress line per
 * `plainIntervalMs`: a log stays readable, at most one line per config per refresh.
 *
 * ETAs ignore warm-up: the trainer's own ETA counts from its start (data loading, the first step's
 * allocations), which made a first ETA of 7:20 for an 8 s run. Here a config's rate is measured
 * between two progress readings after the first one, and the sweep's ETA adds, for each config not
 * started yet, the seconds per unit of work (examples x epochs x (folds - 1)) measured so far.
 */

/** What the view knows of a config before it runs: its work, to estimate the configs not started. */
export interface PlannedConfig {
  readonly name: string;
  /** examples x epochs x (folds - 1), or undefined when unknown (all examples, a script). */
  readonly work?: number;
}

/** A reading of a running config: the trainer's OUT/status.json progress keys and the runner's state. */
export interface ConfigReading {
  /** The store's status.json state (BOOTSTRAPPING, TRAINING, ...), when read. */
  readonly state?: string;
  readonly fold?: number | null;
  readonly folds?: number | null;
  readonly epoch?: number | null;
  readonly epochs?: number | null;
  /** 0 to 1 over the config's whole run. */
  readonly progress?: number | null;
  readonly examplesPerSecond?: number | null;
  /** The store's status.json `retries`: restarts after failures used so far, of the job's max. */
  readonly retries?: { readonly used: number; readonly max: number } | null;
}

interface Line {
  readonly name: string;
  work?: number;
  state: string;
  reading: ConfigReading;
  /** When the config started (ms). */
  startedAt?: number;
  /** Wall seconds of a finished config. */
  seconds?: number;
  /** The first progress reading > 0 after warm-up, and the latest: the rate is measured between them. */
  firstProgress?: { at: number; progress: number };
  lastProgress?: { at: number; progress: number };
  /** What the plain (non-terminal) output last printed for this config, so it repeats nothing. */
  printed?: string;
  printedState?: string;
  printedAt?: number;
}

export interface LiveViewOptions {
  readonly out: (text: string) => void;
  /** Redraw in place (a terminal) or print plain lines. */
  readonly tty: boolean;
  readonly paint?: Paint;
  readonly now?: () => number;
  /** Without a terminal: least milliseconds between two progress lines of one config. @default 30000 */
  readonly plainIntervalMs?: number;
  /** Terminal width; lines are cut to it so a redraw never wraps. @default 80 */
  readonly columns?: number;
}

const PENDING = STATE.PENDING;

export class LiveView {
  private readonly lines: Line[];
  private readonly now: () => number;
  private readonly paint: Paint;
  private readonly plainIntervalMs: number;
  private readonly columns: number;
  private readonly startedAt: number;
  /** Lines the last terminal redraw wrote, to move the cursor back over them. */
  private drawn = 0;

  constructor(
    configs: readonly PlannedConfig[],
    private readonly options: LiveViewOptions,
  ) {
    this.now = options.now ?? Date.now;
    this.paint = options.paint ?? painter(false);
    this.plainIntervalMs = options.plainIntervalMs ?? 30_000;
    this.columns = Math.max(40, options.columns ?? 80);
    this.startedAt = this.now();
    this.lines = configs.map((c) => ({ name: c.name, work: c.work, state: PENDING, reading: {} }));
  }

  private line(name: string): Line {
    const line = this.lines.find((l) => l.name === name);
    if (!line) throw new Error(`live view: no config ${name}`);
    return line;
  }

  /** The config's job runner started. */
  start(name: string): void {
    const line = this.line(name);
    line.startedAt = this.now();
    line.state = STATE.BOOTSTRAPPING;
  }

  /** A reading while the config runs; a later reading replaces what an earlier one said. */
  observe(name: string, reading: ConfigReading): void {
    const line = this.line(name);
    if (reading.state && !FINAL_STATES.has(reading.state)) line.state = reading.state;
    line.reading = { ...line.reading, ...Object.fromEntries(Object.entries(reading).filter(([, v]) => v !== undefined && v !== null)) };
    const progress = reading.progress;
    if (typeof progress === 'number' && progress > 0) {
      const at = this.now();
      // The first reading marks the end of warm-up: the rate is measured from it, not from the start.
      if (!line.firstProgress) line.firstProgress = { at, progress };
      else if (progress > line.firstProgress.progress) line.lastProgress = { at, progress };
    }
  }

  /** The config's runner ended with `state` (the store's status.json; UNKNOWN when it wrote none). */
  finish(name: string, state: string): void {
    const line = this.line(name);
    line.state = state;
    line.seconds = line.startedAt === undefined ? 0 : (this.now() - line.startedAt) / 1000;
    if (state === STATE.SUCCEEDED) line.reading = { ...line.reading, progress: 1 };
  }

  /** Seconds left for a running config, from its rate after warm-up; undefined until two readings. */
  private configEta(line: Line): number | undefined {
    const { firstProgress: a, lastProgress: b } = line;
    if (!a || !b || b.at <= a.at) return undefined;
    const rate = (b.progress - a.progress) / ((b.at - a.at) / 1000);
    return rate > 0 ? (1 - b.progress) / rate : undefined;
  }

  /** The configs' measured seconds per unit of work: finished configs' wall time over their work. */
  private secondsPerWork(): number | undefined {
    const done = this.lines.filter((l) => l.seconds !== undefined && l.work !== undefined && l.work > 0 && l.state === STATE.SUCCEEDED);
    const work = done.reduce((s, l) => s + (l.work ?? 0), 0);
    return work > 0 ? done.reduce((s, l) => s + (l.seconds ?? 0), 0) / work : undefined;
  }

  /**
   * Seconds until the sweep ends: the running config's ETA plus each pending config's work at the
   * measured seconds per unit (or the finished configs' mean wall time when its work is unknown).
   * Undefined while nothing has been measured.
   */
  sweepEta(): number | undefined {
    const running = this.lines.filter((l) => l.startedAt !== undefined && l.seconds === undefined);
    const pending = this.lines.filter((l) => l.startedAt === undefined);
    // Only successes measure: a config that failed after a minute says nothing of how long the others take.
    const finished = this.lines.filter((l) => l.seconds !== undefined && l.state === STATE.SUCCEEDED);
    const perWork = this.secondsPerWork();
    const meanSeconds = finished.length > 0 ? finished.reduce((s, l) => s + (l.seconds ?? 0), 0) / finished.length : undefined;
    let total = 0;
    for (const line of running) {
      const eta = this.configEta(line);
      if (eta === undefined) return undefined;
      total += eta;
    }
    for (const line of pending) {
      const estimate = line.work !== undefined && perWork !== undefined ? line.work * perWork : meanSeconds;
      if (estimate === undefined) return undefined;
      total += estimate;
    }
    return total;
  }

  /** The header: `config 2/4 running, 1 done, 12 s elapsed, sweep ETA 20 s`. */
  header(): string {
    const total = this.lines.length;
    const done = this.lines.filter((l) => l.seconds !== undefined).length;
    const current = this.lines.findIndex((l) => l.startedAt !== undefined && l.seconds === undefined);
    const elapsed = `${formatEta((this.now() - this.startedAt) / 1000)} elapsed`;
    if (done === total) return `${total}/${total} configs done, ${elapsed}`;
    const where = current >= 0 ? `config ${current + 1}/${total} running` : `config ${done + 1}/${total} next`;
    const eta = this.sweepEta();
    return `${where}, ${done} done, ${elapsed}, sweep ETA ${eta === undefined ? 'measuring' : formatEta(eta)}`;
  }

  /** One config's line: `[2/4] logq  TRAINING  retry 1/2  fold 3/5 ep 1/2  74,600 ex/s  ETA 12 s` (retry: only once one was used). */
  configLine(name: string): string {
    const index = this.lines.findIndex((l) => l.name === name);
    const line = this.lines[index];
    const r = line.reading;
    const width = Math.max(...this.lines.map((l) => l.name.length));
    const cells = [`[${index + 1}/${this.lines.length}]`, line.name.padEnd(width), line.state.padEnd(13)];
    // Right after the state, so that a narrow terminal cuts the progress cells before it.
    if (r.retries && r.retries.used > 0) cells.push(`retry ${r.retries.used}/${r.retries.max}`);
    const running = line.startedAt !== undefined && line.seconds === undefined;
    if (running) {
      const at = (i: number | null | undefined, n: number | null | undefined) => (typeof n === 'number' ? `${Math.min((i ?? 0) + 1, n)}/${n}` : undefined);
      const fold = at(r.fold, r.folds);
      const epoch = at(r.epoch, r.epochs);
      // fold == folds: the final model's pass after the folds (train.finalModel).
      const final = typeof r.fold === 'number' && typeof r.folds === 'number' && r.fold >= r.folds;
      if (final) cells.push(`final model${epoch ? ` ep ${epoch}` : ''}`);
      else if (fold) cells.push(`fold ${fold}${epoch ? ` ep ${epoch}` : ''}`);
      if (typeof r.progress === 'number') cells.push(`${(r.progress * 100).toFixed(0).padStart(3)}%`);
      if (typeof r.examplesPerSecond === 'number') cells.push(`${Math.round(r.examplesPerSecond).toLocaleString('en-US')} ex/s`);
      const eta = this.configEta(line);
      if (typeof r.progress === 'number') cells.push(`ETA ${eta === undefined ? 'measuring' : formatEta(eta)}`);
    } else if (line.seconds !== undefined) {
      cells.push(`${formatEta(line.seconds)}`);
    }
    const text = this.fit(cells.join('  '));
    return text.replace(line.state.padEnd(13), paintState(this.paint, line.state, line.state.padEnd(13)));
  }

  /** On a terminal, a line cut to its width (a wrapped line would break the redraw); a log keeps it whole. */
  private fit(text: string): string {
    return this.options.tty && text.length > this.columns - 1 ? `${text.slice(0, this.columns - 2)}…` : text;
  }

  /**
   * Writes the view. A terminal: the header and every config's line, over the previous drawing. No
   * terminal: a config's line when its state changed, or (the running one) when `plainIntervalMs` has
   * passed since its last line; nothing when nothing is new. `final`: the last drawing (a terminal's
   * block stays; plain output gets the header once).
   */
  render(final = false): void {
    if (this.options.tty) {
      const block = [this.fit(this.header()), ...this.lines.map((l) => this.configLine(l.name))];
      const up = this.drawn > 0 ? `\x1b[${this.drawn}A` : '';
      this.options.out(`${up}${block.map((text) => `\r\x1b[2K${text}\n`).join('')}`);
      this.drawn = block.length;
      if (final) this.drawn = 0;
      return;
    }
    const now = this.now();
    for (const line of this.lines) {
      if (line.startedAt === undefined) continue;
      const text = this.configLine(line.name);
      const stateChanged = line.printedState !== line.state;
      const due = line.seconds === undefined && (line.printedAt === undefined || now - line.printedAt >= this.plainIntervalMs);
      if (text === line.printed || (!stateChanged && !due)) continue;
      this.options.out(`${text}\n`);
      line.printed = text;
      line.printedState = line.state;
      line.printedAt = now;
    }
    if (final) this.options.out(`${this.header()}\n`);
  }

  /** Stops redrawing over the block: output written after this goes below it. */
  release(): void {
    this.drawn = 0;
  }
}
