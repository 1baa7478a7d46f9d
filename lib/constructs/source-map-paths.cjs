'use strict';
/**
 * `node source-map-paths.cjs <map file> <project root>`: rewrites the `sources` of an esbuild source
 * map so that they no longer depend on where the checkout and the cloud assembly are. esbuild writes
 * each source relative to the map's directory, which CDK puts in the cloud assembly (`cdk.out`,
 * or `-o`), so the bundle, and with it the asset hash and the template, changed with the directory a
 * sweep was synthesized from. Afterwards a source is relative to the project root
 * (`lambda/budget-guard/index.ts`), and a dependency is named from its `node_modules/` on
 * (`node_modules/ajv/dist/ajv.js`), wherever that folder is.
 *
 * Run by SpotSweepFunction's afterBundling hook (spot-sweep-function.ts). Plain CommonJS: it runs
 * under the synthesizing node binary without a TypeScript loader.
 */
const fs = require('node:fs');
const path = require('node:path');

const [mapFile, projectRoot] = process.argv.slice(2);
if (!mapFile || !projectRoot) {
  console.error('usage: node source-map-paths.cjs <map file> <project root>');
  process.exit(2);
}
const map = JSON.parse(fs.readFileSync(mapFile, 'utf8'));
const base = path.resolve(path.dirname(mapFile), map.sourceRoot || '');
const root = path.resolve(projectRoot);
const marker = `${path.sep}node_modules${path.sep}`;
map.sources = (map.sources || []).map((source) => {
  const absolute = path.resolve(base, source);
  let relative = path.relative(root, absolute);
  if (relative.startsWith('..') || path.isAbsolute(relative)) {
    // Outside the project: a dependency of a node_modules folder linked from elsewhere.
    const dependency = absolute.indexOf(marker);
    if (dependency >= 0) relative = absolute.slice(dependency + 1);
  }
  return relative.split(path.sep).join('/');
});
delete map.sourceRoot;
fs.writeFileSync(mapFile, `${JSON.stringify(map)}\n`);
