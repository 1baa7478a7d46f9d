import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { buildLeaderboardDocument } from '../../lib/results/leaderboard-document';
import { escapeHtml, renderReport, renderReportWithDecision } from '../../lib/results/report';
import { renderDecision } from '../../lib/results/decision-report';
import { ConfigArtifacts } from '../../lib/results/leaderboard';
import { scriptMetricResults, scriptResults, statusDoc, text, trainResults } from './fixtures';

const SWEEP = 'seed-plan';
/**
 * Five configs: two scored, one with a malformed results.json, one failed, one script-mode config that
 * succeeded without a metric; strings meant to break HTML. Each file fits its schema (but the broken one).
 */
const ARTIFACTS: ConfigArtifacts[] = [
  {
    config: 'o',
    resultsText: text(trainResults(SWEEP, 'o', [0.4482, 0.4401, 0.4563, 0.4519, 0.4447, 0.4488, 0.4392, 0.4575, 0.4471, 0.4512], { totalSeconds: 25200, examplesPerSecond: 1200 })),
    statusText: text(statusDoc(SWEEP, 'o', 'SUCCEEDED', { attempts: 2, interruptions: 1 })),
  },
  {
    config: 'p',
    resultsText: text(trainResults(SWEEP, 'p', [0.4611, 0.4702, 0.4655, 0.4588, 0.469], { totalSeconds: 4100, examplesPerSecond: 5400 })),
    statusText: text(statusDoc(SWEEP, 'p', 'SUCCEEDED', { message: '<img src=x onerror=alert(1)> & "gpu"' })),
  },
  { config: 'q', resultsText: '{"version": 1, "folds": [', statusText: text(statusDoc(SWEEP, 'q', 'SUCCEEDED')) },
  { config: 'r', statusText: text(statusDoc(SWEEP, 'r', 'FAILED', { attempts: 3, message: 'CUDA out of memory <script>alert("x")</script>' })) },
  { config: 's', resultsText: text(scriptResults(SWEEP, 's', ['results/<b>metrics</b>.json'])), statusText: text(statusDoc(SWEEP, 's', 'SUCCEEDED', { mode: 'script' })) },
];
/** The guard's ledger: per-config spend. */
const SPEND = JSON.stringify({ version: 1, sweep: SWEEP, budgetUsd: 40, totalUsd: 9.25, configs: { o: { usd: 2.25 }, p: { usd: 6.5 }, r: { usd: 0.5 } }, instances: {} });

const doc = buildLeaderboardDocument(SWEEP, ARTIFACTS, SPEND, '2026-11-28T14:00:00.000Z');
/** The page as the results Lambda and `local` write it (lib/results/sweep-files.ts): the table and the decision section. */
const html = renderReportWithDecision(doc, renderDecision({ configs: ARTIFACTS, costUsd: new Map([['o', 2.25], ['p', 6.5]]) }).html);

describe('leaderboard.json', () => {
  test('ranks the scored configs by mean nDCG@10, then the script config, with spend, runtime and interruptions', () => {
    expect(doc.rows.map((r) => [r.config, r.rank, r.state])).toEqual([
      ['p', 1, 'SUCCEEDED'],
      ['o', 2, 'SUCCEEDED'],
      ['s', undefined, 'SUCCEEDED'],
      ['q', undefined, 'SUCCEEDED'],
      ['r', undefined, 'FAILED'],
    ]);
    const o = doc.rows.find((r) => r.config === 'o')!;
    expect(o.ndcgMean).toBeCloseTo(0.4485, 4);
    expect(o.folds).toHaveLength(10);
    expect(o).toMatchObject({ spendUsd: 2.25, totalSeconds: 25200, examplesPerSecond: 1200, interruptions: 1, attempts: 2 });
    expect(doc.rows.find((r) => r.config === 'r')).toMatchObject({ spendUsd: 0.5, problem: 'CUDA out of memory <script>alert("x")</script>' });
    expect(doc).toMatchObject({ version: 1, sweep: SWEEP, totalSpendUsd: 9.25, budgetUsd: 40 });
  });

  test('reports a malformed results.json in problems instead of failing; a script config is not a problem', () => {
    expect(doc.problems).toEqual([expect.stringMatching(/^q\/results\.json: not valid JSON/)]);
    expect(doc.rows.find((r) => r.config === 'q')!.problem).toBe('results.json unreadable');
    expect(doc.rows.find((r) => r.config === 's')).toMatchObject({ mode: 'script', note: 'script: 1 result file(s), no metric declared' });
  });

  test('reports an unreadable ledger', () => {
    const badLedger = buildLeaderboardDocument(SWEEP, ARTIFACTS, '{', 'now');
    expect(badLedger.problems).toContainEqual(expect.stringMatching(/^spend\.json: not valid JSON/));
  });
});

describe('report.html', () => {
  test('escapes every string from the files', () => {
    expect(escapeHtml(`<a href="x">'&'</a>`)).toBe('&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;');
    expect(html).not.toContain('<img');
    expect(html).not.toContain('<script');
    expect(escapeHtml('<img src=x onerror=alert(1)> & "gpu"')).toBe('&lt;img src=x onerror=alert(1)&gt; &amp; &quot;gpu&quot;');
    expect(html).toContain('results/&lt;b&gt;metrics&lt;/b&gt;.json');
    expect(html).toContain('CUDA out of memory &lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;');
  });

  test('is self-contained: inline CSS and SVG, no script, no URL to fetch', () => {
    expect(html).toMatch(/<style>[\s\S]+<\/style>/);
    expect(html).toMatch(/<svg [\s\S]+<\/svg>/);
    expect(html).not.toMatch(/https?:\/\//i);
    // No tag with a src/href attribute and no CSS that loads anything (escaped text from the files holds no `<`).
    expect(html).not.toMatch(/<[a-z][^>]*\s(src|href|xlink:href|srcset|action)\s*=/i);
    expect(html).not.toMatch(/<(link|iframe|object|embed|img|image|use|script)\b/i);
    const css = /<style>([\s\S]*?)<\/style>/.exec(html)![1];
    expect(css).not.toMatch(/url\(|@import|@font-face/i);
  });

  test('shows cost, runtime, throughput, device, instance type, market and interruptions per config', () => {
    const rowO = html.split('\n').find((l) => l.startsWith('<tr><td class="num">2</td><td>o</td>'))!;
    expect(rowO).toContain('<td class="num">$2.25</td>');
    expect(rowO).toContain('<td class="text">cuda</td><td class="text">g5.xlarge</td><td class="text">spot</td><td class="num">1</td>');
    expect(html).toContain('<th>instance type</th><th>market</th>');
    expect(html).toContain('0.4485 ± ');
    expect(html).toContain('$2.25');
    expect(html).toContain('7.00 h');
    expect(html).toContain('1,200');
    expect(html).toContain('Spend so far: $9.25 of a $40.00 budget.');
    expect(html).toContain('q/results.json: not valid JSON');
  });

  test('has no unzoomed nDCG@10 bar chart; the zoomed contenders chart draws every fold of the configs in reach', () => {
    expect(html).not.toContain('nDCG@10 per config');
    expect(html).not.toContain('axis does not start at 0');
    expect(html).not.toContain('class="fold"');
    const contenders = html.slice(html.indexOf('<svg viewBox="0 0 960 320"'), html.indexOf('</svg>', html.indexOf('class="contenders-chart"')));
    expect(contenders).toContain('class="contenders-chart"');
    expect(contenders.match(/<circle /g)).toHaveLength(15);
  });

  test('lists a script config in the table without a score and not under Problems', () => {
    const row = html.split('\n').find((l) => l.startsWith('<tr class="mode-script">'))!;
    expect(row).toContain('<td>s</td>');
    expect(row).toContain('no metric');
    expect(row).toContain('script: 1 result file(s), no metric declared (results/&lt;b&gt;metrics&lt;/b&gt;.json)');
    const problems = html.slice(html.indexOf('<h2>Problems</h2>'));
    expect(problems).toContain('q/results.json');
    expect(problems).not.toContain('script');
    expect(html).toContain('Their result files are under sweeps/seed-plan/&lt;config&gt;/results/ in the bucket');
  });

  test('a script config scored by nDCG@10 is ranked with the built-in configs; another metric is ranked apart, named', () => {
    const scored = buildLeaderboardDocument(
      SWEEP,
      [
        ARTIFACTS[0],
        { config: 'mine', resultsText: text(scriptMetricResults(SWEEP, 'mine', { name: 'nDCG@10', folds: [0.5, 0.52] })), statusText: text(statusDoc(SWEEP, 'mine', 'SUCCEEDED', { mode: 'script' })) },
        { config: 'rmse', resultsText: text(scriptMetricResults(SWEEP, 'rmse', { name: 'RMSE', folds: [1.5, 1.7], higherIsBetter: false })), statusText: text(statusDoc(SWEEP, 'rmse', 'SUCCEEDED', { mode: 'script' })) },
      ],
      undefined,
      'now',
    );
    expect(scored.rows.map((r) => [r.config, r.rank])).toEqual([
      ['mine', 1],
      ['o', 2],
      ['rmse', 1],
    ]);
    const page = renderReport(scored);
    const rows = page.split('\n').filter((l) => l.startsWith('<tr class="mode-script">'));
    expect(rows[0]).toContain('<td class="num">1</td><td>mine</td>');
    expect(rows[0]).toContain('0.5100 ± 0.0141');
    expect(rows[1]).toContain('rmse (lower is better): 1.6000 ± 0.1414');
    expect(page).not.toContain('<h2>Problems</h2>');
  });

  test('says so when no config has results yet', () => {
    const empty = renderReportWithDecision(buildLeaderboardDocument('x', [{ config: 'a' }], undefined, 'now'), renderDecision({ configs: [{ config: 'a' }] }).html);
    expect(empty).toContain('No config has train-mode results yet.');
    expect(empty).toContain('not measured yet');
  });
});

/**
 * Headless Chromium (Debian's `chromium`; CI installs it) opens the report from disk with a network
 * log: the page must render (screenshot in test-output/) and request nothing. The browser's own
 * background requests (component updater, time sync), made despite the flags, carry the initiator
 * `not an origin` in the log; anything the page asks for carries its (file) origin.
 */
const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
const haveChromium = existsSync(CHROMIUM);
if (!haveChromium && process.env.CI) throw new Error(`Chromium not found at ${CHROMIUM}: install it (apt-get install -y chromium) or set CHROMIUM.`);

/** Opens `file` in headless Chromium; returns its DOM and the URLs the page (not the browser) requested. */
function openInChromium(file: string, screenshot?: string): { dom: string; pageRequests: string[] } {
  const profile = mkdtempSync(path.join(tmpdir(), 'chromium-'));
  const netLog = path.join(profile, 'netlog.json');
  const flags = [
    '--headless',
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
    `--user-data-dir=${profile}`,
    '--window-size=1200,900',
    `--log-net-log=${netLog}`,
  ];
  try {
    const url = pathToFileURL(file).href;
    if (screenshot) execFileSync(CHROMIUM, [...flags, `--screenshot=${screenshot}`, url], { stdio: 'pipe', timeout: 60_000 });
    const dom = execFileSync(CHROMIUM, [...flags, '--dump-dom', url], { stdio: ['ignore', 'pipe', 'pipe'], timeout: 60_000 }).toString();
    // Chromium closes the log's JSON on a clean exit; a log cut short ends after an event and a comma.
    const text = readFileSync(netLog, 'utf8').trim();
    const log = JSON.parse(text.endsWith('}') && !text.endsWith('},') ? text : `${text.replace(/,$/, '')}]}`) as {
      constants: { logEventTypes: Record<string, number> };
      events: { type: number; params?: { url?: string; initiator?: string } }[];
    };
    const start = log.constants.logEventTypes.URL_REQUEST_START_JOB;
    const pageRequests = log.events
      .filter((e) => e.type === start && e.params?.url !== undefined && e.params.initiator !== 'not an origin')
      .map((e) => e.params!.url!);
    return { dom, pageRequests };
  } finally {
    rmSync(profile, { recursive: true, force: true });
  }
}

(haveChromium ? describe : describe.skip)('report.html in headless Chromium', () => {
  const out = path.join(__dirname, '..', '..', 'test-output');
  const screenshot = path.join(out, 'report.png');
  let report: { dom: string; pageRequests: string[] };
  let control: { dom: string; pageRequests: string[] };

  beforeAll(() => {
    mkdirSync(out, { recursive: true });
    rmSync(screenshot, { force: true });
    writeFileSync(path.join(out, 'report.html'), html);
    report = openInChromium(path.join(out, 'report.html'), screenshot);
    // The check's control: a page with one external image must show up as a page request.
    writeFileSync(path.join(out, 'external-control.html'), '<!doctype html><title>control</title><img src="http://127.0.0.1:9/pixel.png">');
    control = openInChromium(path.join(out, 'external-control.html'));
  }, 120_000);

  test('renders the report (screenshot in test-output/report.png)', () => {
    expect(readFileSync(screenshot).subarray(1, 4).toString()).toBe('PNG');
    expect(report.dom).toContain('<h1>Sweep seed-plan</h1>');
    expect(report.dom).toContain('class="contenders-chart"');
    expect(report.dom).toContain('class="loss-chart"');
    expect(report.dom).not.toContain('<img');
  });

  test('makes no network request (a page with an external image, as a control, does)', () => {
    expect(control.pageRequests).toEqual(['http://127.0.0.1:9/pixel.png']);
    expect(report.pageRequests).toEqual([]);
  });
});
