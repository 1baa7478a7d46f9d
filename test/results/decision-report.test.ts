import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { inflateSync } from 'node:zlib';
import { buildLeaderboardDocument } from '../../lib/results/leaderboard-document';
import { renderReportWithDecision } from '../../lib/results/report';
import { renderDecision } from '../../lib/results/decision-report';
import { runDemo } from './demo-run';
import { text, trainResults } from './fixtures';

jest.setTimeout(300_000);

/** RGB of each pixel of an 8-bit RGB or RGBA PNG (non-interlaced, as Chromium writes screenshots). */
function decodePng(png: Buffer): { width: number; height: number; rgb: (x: number, y: number) => [number, number, number] } {
  const width = png.readUInt32BE(16);
  const height = png.readUInt32BE(20);
  const colorType = png[25];
  const bpp = colorType === 6 ? 4 : 3;
  if (png[24] !== 8 || (colorType !== 2 && colorType !== 6)) throw new Error(`unexpected PNG format: depth ${png[24]}, colour type ${colorType}`);
  const idat: Buffer[] = [];
  for (let at = 8; at < png.length; ) {
    const len = png.readUInt32BE(at);
    if (png.toString('ascii', at + 4, at + 8) === 'IDAT') idat.push(png.subarray(at + 8, at + 8 + len));
    at += 12 + len;
  }
  const raw = inflateSync(Buffer.concat(idat));
  const stride = width * bpp;
  const out = Buffer.alloc(height * stride);
  for (let y = 0; y < height; y++) {
    const filter = raw[y * (stride + 1)];
    for (let i = 0; i < stride; i++) {
      const x = raw[y * (stride + 1) + 1 + i];
      const a = i >= bpp ? out[y * stride + i - bpp] : 0;
      const b = y > 0 ? out[(y - 1) * stride + i] : 0;
      const c = i >= bpp && y > 0 ? out[(y - 1) * stride + i - bpp] : 0;
      const paeth = (): number => {
        const p = a + b - c;
        const pa = Math.abs(p - a);
        const pb = Math.abs(p - b);
        const pc = Math.abs(p - c);
        return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
      };
      const pred = [0, a, b, (a + b) >> 1, paeth()][filter];
      out[y * stride + i] = (x + pred) & 0xff;
    }
  }
  return { width, height, rgb: (x, y) => [out[y * stride + x * bpp], out[y * stride + x * bpp + 1], out[y * stride + x * bpp + 2]] };
}

const demo = runDemo();
const decision = renderDecision({ configs: demo.configs });
const doc = buildLeaderboardDocument('demo', demo.configs, undefined, '2026-12-02T10:30:00.000Z');
const page = renderReportWithDecision(doc, decision.html);

describe('decision section on the demo sweep', () => {
  test('shows the verdicts: warm worse, logq no difference shown, few-examples not comparable with why', () => {
    const rowOf = (config: string): string => decision.html.split('\n').find((l) => l.startsWith(`<tr><td>${config}</td>`))!;
    expect(rowOf('warm')).toContain('<td class="verdict v-worse">worse');
    expect(rowOf('logq')).toContain('no difference shown');
    expect(rowOf('few-examples')).toMatch(/not comparable<br><span class="note">few-examples is scored on 40 test queries per fold, baseline on 400/);
    expect(rowOf('warm')).toContain('train.temperature 0.2 (vs 0.05)');
    expect(rowOf('baseline')).toContain('(baseline)');
    expect(decision.html).toContain('Cost vs nDCG@10: no cost measured');
    expect(decision.html).toContain('Left out, far below the best: few-examples');
  });

  test('sits before the config table, and the page stays self-contained', () => {
    expect(page.indexOf('<section class="decision">')).toBeLessThan(page.indexOf('<h2>Configs</h2>'));
    expect(page).not.toMatch(/https?:\/\//i);
    expect(page).not.toMatch(/<(script|img|link|iframe|object|embed|use)\b/i);
  });

  test('draws the loss curves the trainer recorded: one line per demo config, a point per epoch, with a legend', () => {
    const epochs = (JSON.parse(demo.configs[0].resultsText!) as { folds: { epochLosses: number[] }[] }).folds.map((f) => f.epochLosses.length);
    expect(epochs).toEqual([2, 2, 2, 2, 2]); // sweeps/demo.json: 5 folds, 2 epochs
    const chart = page.slice(page.indexOf('class="loss-chart"'), page.indexOf('</svg>', page.indexOf('class="loss-chart"')));
    expect(chart.match(/<polyline/g)).toHaveLength(4);
    for (const c of ['baseline', 'logq', 'warm', 'few-examples']) expect(chart).toContain(`data-config="${c}"`);
    expect(chart.match(/<g class="legend-item"/g)).toHaveLength(4);
    const baselineLine = chart.slice(chart.indexOf('data-config="baseline"'), chart.indexOf('</g>', chart.indexOf('data-config="baseline"')));
    expect(baselineLine.match(/<circle/g)).toHaveLength(2);
  });

  test('has no unzoomed nDCG@10 bar chart above the decision section: its zoomed charts are the only nDCG charts', () => {
    expect(page).not.toContain('nDCG@10 per config');
    expect(page).not.toContain('axis does not start at 0');
    expect(page.indexOf('<svg')).toBeGreaterThan(page.indexOf('<section class="decision">'));
    expect(page).toContain('class="contenders-chart"');
    expect(page).toContain('class="delta-chart"');
    expect(page).not.toMatch(/<script\b/i);
  });

  test('escapes config names', () => {
    const evil = '<img src=x onerror=alert(1)>';
    const html = renderDecision({
      configs: [
        { config: 'a', resultsText: text(trainResults('s', 'a', [0.5, 0.51, 0.5])) },
        { config: evil, resultsText: text(trainResults('s', 'b', [0.52, 0.52, 0.53])) },
      ],
      costUsd: new Map([['a', 0.5]]),
    }).html;
    expect(html).not.toContain('<img');
    expect(html).toContain('&lt;img src=x onerror=alert(1)&gt;');
    expect(html).toContain('$0.50');
  });
});

const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
const haveChromium = existsSync(CHROMIUM);
if (!haveChromium && process.env.CI) throw new Error(`Chromium not found at ${CHROMIUM}: install it (apt-get install -y chromium) or set CHROMIUM.`);

(haveChromium ? describe : describe.skip)('the report with the decision section in headless Chromium', () => {
  const out = path.join(__dirname, '..', '..', 'test-output');
  const file = path.join(out, 'decision-report.html');
  const screenshot = path.join(out, 'decision-report.png');

  beforeAll(() => {
    mkdirSync(out, { recursive: true });
    rmSync(screenshot, { force: true });
    writeFileSync(file, page);
    const profile = mkdtempSync(path.join(tmpdir(), 'chromium-'));
    try {
      const flags = ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', `--user-data-dir=${profile}`, '--hide-scrollbars'];
      execFileSync(CHROMIUM, [...flags, '--window-size=1200,1600', `--screenshot=${screenshot}`, pathToFileURL(file).href], { stdio: 'pipe', timeout: 60_000 });
    } finally {
      rmSync(profile, { recursive: true, force: true });
    }
  }, 120_000);

  test('renders a screenshot (test-output/decision-report.png) with the delta chart\'s verdict colours', () => {
    const png = readFileSync(screenshot);
    expect(png.subarray(1, 4).toString()).toBe('PNG');
    const img = decodePng(png);
    expect([img.width, img.height]).toEqual([1200, 1600]);
    // warm's interval is drawn in the "worse" red (#b3261e), logq's in the "no difference" grey (#5d6575).
    const count = (rgb: [number, number, number]): number => {
      let n = 0;
      for (let y = 0; y < img.height; y += 1) for (let x = 0; x < img.width; x += 1) if (img.rgb(x, y).every((v, i) => Math.abs(v - rgb[i]) <= 6)) n++;
      return n;
    };
    expect(count([0xb3, 0x26, 0x1e])).toBeGreaterThan(200);
    expect(count([0x17, 0x71, 0x3a])).toBe(0); // nothing in the demo is "better"
  });
});
