import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { SpecError } from './errors';
import { duplicateKeys, nestingDepth } from './json-scan';
import { SweepSpec } from './types';
import { validateSpec } from './validate';

/**
 * Reads and parses a spec file. A missing file or a JSON syntax error becomes a SpecError whose
 * message names the file (and line:column) and the fix.
 */
export function readSpecJson(file: string): unknown {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'it is a directory' : String(code ?? err);
    throw new SpecError(file, [
      {
        path: '(file)',
        message: `cannot read the sweep spec (${why}, looked at ${path.resolve(file)}); pass the path of a JSON spec, e.g. sweeps/demo.json.`,
      },
    ]);
  }
  // A UTF-8 byte order mark is not JSON whitespace; editors on some systems add one.
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  if (text.length > MAX_SPEC_CHARS) {
    throw new SpecError(file, [
      { path: '(file)', message: `is ${text.length.toLocaleString('en-US')} characters long; a sweep spec may be at most ${MAX_SPEC_CHARS.toLocaleString('en-US')}. A sweep of that size is a mistake (a data file passed as the spec?): pass the spec, and keep data in "data".` },
    ]);
  }
  const depth = nestingDepth(text);
  if (depth > MAX_SPEC_DEPTH) {
    throw new SpecError(file, [
      { path: '(file)', message: `nests objects and lists ${depth} deep; a sweep spec needs ${SPEC_DEPTH_USED} and may use at most ${MAX_SPEC_DEPTH}. Fix the file's structure (see sweeps/README.md).` },
    ]);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    const { line, column } = jsonErrorPosition((err as Error).message, text);
    const reason = (err as Error).message.replace(/\s*(in JSON )?at position \d+.*$/, '').replace(/\s*\(line \d+ column \d+\)$/, '');
    throw new SpecError(`${file}:${line}:${column}`, [
      {
        path: '(file)',
        message:
          `invalid JSON: ${reason}. Fix the syntax near line ${line}, column ${column}: JSON needs double quotes ` +
          'around keys and strings, commas between items, no trailing comma and no comments.',
      },
    ]);
  }
  const twice = duplicateKeys(text);
  if (twice.length > 0) {
    throw new SpecError(
      file,
      twice.map((d) => ({
        path: d.path === '(top level)' ? d.key : `${d.path}.${d.key}`,
        message: `appears twice in one object (again at line ${d.line}, column ${d.column}); JSON would silently keep the last one. Keep one of them.`,
      })),
    );
  }
  return parsed;
}

/** The largest spec file read, in characters: far above any real sweep (the seed plan is ~2,000). */
export const MAX_SPEC_CHARS = 1_000_000;
/** The deepest nesting a spec may have: it needs 6 (configs[].script.patches[] objects); the rest is headroom. */
export const MAX_SPEC_DEPTH = 16;
const SPEC_DEPTH_USED = 6;

/** Loads, validates and resolves a spec file; throws a SpecError listing every problem. */
export function loadSpec(file: string): SweepSpec {
  return validateSpec(readSpecJson(file), { specFile: path.resolve(file) });
}

/** 1-based line and column of a JSON.parse error, from the position in its message. */
function jsonErrorPosition(message: string, text: string): { line: number; column: number } {
  const lineCol = /line (\d+) column (\d+)/.exec(message);
  if (lineCol) return { line: Number(lineCol[1]), column: Number(lineCol[2]) };
  const pos = /position (\d+)/.exec(message);
  const offset = pos ? Number(pos[1]) : text.length;
  const before = text.slice(0, offset);
  const line = before.split('\n').length;
  const column = offset - (before.lastIndexOf('\n') + 1) + 1;
  return { line, column };
}
