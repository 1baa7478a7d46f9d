import { LiveView } from '../../lib/cli/live-view';

/** A view over a fake clock; `out` collects what it writes. */
function setup(tty: boolean, configs = [{ name: 'baseline', work: 1000 }, { name: 'logq', work: 2000 }, { name: 'script' }]) {
  let now = 0;
  const written: string[] = [];
  const view = new LiveView(configs, { out: (t) => written.push(t), tty, now: () => now, plainIntervalMs: 30_000 });
  return { view, written, advance: (ms: number) => (now += ms) };
}

describe('the live view of spot-sweep local', () => {
  test("a config's ETA is measured after warm-up, not from its start", () => {
    const { view, advance } = setup(false);
    view.start('baseline');
    // 60 s of warm-up (data loading, the first step) before the first progress reading at 10 %.
    advance(60_000);
    view.observe('baseline', { state: 'TRAINING', progress: 0.1, fold: 0, folds: 5, epoch: 0, epochs: 2, examplesPerSecond: 74600 });
    expect(view.configLine('baseline')).toContain('ETA measuring');
    advance(10_000);
    view.observe('baseline', { progress: 0.2 });
    // 10 % per 10 s from here: 80 s left. Counting from the start (20 % in 70 s) would say 280 s.
    expect(view.configLine('baseline')).toMatch(/\[1\/3\]\s+baseline\s+TRAINING\s+fold 1\/5 ep 1\/2\s+20%\s+74,600 ex\/s\s+ETA 80 s$/);
  });

  test('the sweep ETA adds the pending configs at the measured seconds per unit of work', () => {
    const { view, advance } = setup(false, [{ name: 'baseline', work: 1000 }, { name: 'logq', work: 2000 }]);
    view.start('baseline');
    expect(view.sweepEta()).toBeUndefined();
    advance(10_000);
    view.finish('baseline', 'SUCCEEDED');
    // 10 s for 1000 units: logq's 2000 units take 20 s.
    expect(view.sweepEta()).toBeCloseTo(20);
    view.start('logq');
    advance(5_000);
    view.observe('logq', { progress: 0.25 });
    advance(5_000);
    view.observe('logq', { progress: 0.5 });
    expect(view.sweepEta()).toBeCloseTo(10);
    expect(view.header()).toBe('config 2/2 running, 1 done, 20 s elapsed, sweep ETA 10 s');
    view.finish('logq', 'SUCCEEDED');
    expect(view.header()).toBe('2/2 configs done, 20 s elapsed');
  });

  test('a config of unknown size is estimated at the finished configs\u2019 mean wall time', () => {
    const { view, advance } = setup(false, [{ name: 'a', work: 100 }, { name: 'mine' }]);
    view.start('a');
    advance(30_000);
    view.finish('a', 'SUCCEEDED');
    expect(view.sweepEta()).toBeCloseTo(30);
  });

  test('without a terminal: a line per state change, progress at most once per interval, nothing repeated', () => {
    const { view, written, advance } = setup(false);
    view.start('baseline');
    view.render();
    view.render();
    expect(written).toHaveLength(1);
    view.observe('baseline', { state: 'TRAINING', progress: 0.1 });
    view.render();
    expect(written).toHaveLength(2);
    for (let i = 0; i < 10; i++) {
      advance(2_000);
      view.observe('baseline', { progress: 0.1 + i * 0.01 });
      view.render();
    }
    // 20 s of refreshes: no new line before the 30 s interval.
    expect(written).toHaveLength(2);
    advance(10_000);
    view.observe('baseline', { progress: 0.3 });
    view.render();
    expect(written).toHaveLength(3);
    view.finish('baseline', 'FAILED');
    view.render(true);
    expect(written.slice(3)).toEqual([expect.stringMatching(/^\[1\/3\]\s+baseline\s+FAILED\s+30 s\n$/), expect.stringMatching(/^config 2\/3 next, 1 done, 30 s elapsed, sweep ETA measuring\n$/)]);
    expect(written.join('')).not.toMatch(/\x1b/);
  });

  test('on a terminal: the header and one line per config, redrawn in place and never wider than the terminal', () => {
    const configs = [{ name: 'a-config-with-a-rather-long-name-for-a-narrow-terminal', work: 10 }, { name: 'b', work: 10 }];
    let now = 0;
    const written: string[] = [];
    const view = new LiveView(configs, { out: (t) => written.push(t), tty: true, now: () => now, columns: 60 });
    view.start(configs[0].name);
    view.observe(configs[0].name, { state: 'TRAINING', progress: 0.5, fold: 1, folds: 5, epoch: 0, epochs: 3, examplesPerSecond: 1234567 });
    view.render();
    now += 1000;
    view.render();
    expect(written).toHaveLength(2);
    expect(written[0].startsWith('\x1b[')).toBe(false);
    // The second drawing moves up over the three lines of the first (header + 2 configs), then redraws them.
    expect(written[1].startsWith('\x1b[3A')).toBe(true);
    const lines = written[1].replace('\x1b[3A', '').split('\n').filter(Boolean);
    expect(lines).toHaveLength(3);
    for (const line of lines) expect(line.replace(/\r\x1b\[2K/, '').length).toBeLessThan(60);
  });

  test('a config that restarted after a failure shows retry 1/2 beside its state, within 80 columns', () => {
    const { view, written } = setup(false);
    view.start('logq');
    view.observe('logq', { state: 'TRAINING', retries: { used: 0, max: 2 } });
    expect(view.configLine('logq')).not.toMatch(/retry/);
    view.observe('logq', { state: 'TRAINING', retries: { used: 1, max: 2 }, progress: 0.25, fold: 0, folds: 9, epoch: 1, epochs: 3, examplesPerSecond: 74600 });
    expect(view.configLine('logq')).toMatch(/^\[2\/3\] +logq +TRAINING +retry 1\/2  fold 1\/9 ep 2\/3/);
    view.render();
    expect(written.join('')).toMatch(/TRAINING +retry 1\/2/);
    // On an 80-column terminal the line is cut from its end: the retry stays in sight.
    const tty = new LiveView([{ name: 'a-long-config-name-of-thirty-chars' }], { out: () => undefined, tty: true, columns: 80 });
    tty.start('a-long-config-name-of-thirty-chars');
    tty.observe('a-long-config-name-of-thirty-chars', { state: 'TRAINING', retries: { used: 2, max: 2 }, progress: 0.5, fold: 3, folds: 9, epoch: 1, epochs: 3, examplesPerSecond: 1234567 });
    const line = tty.configLine('a-long-config-name-of-thirty-chars');
    expect(line.length).toBeLessThan(80);
    expect(line).toMatch(/TRAINING +retry 2\/2/);
  });
});
