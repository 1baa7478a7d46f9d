/**
 * Writes lib/contract/types.generated.ts from the JSON Schemas of training/contract/, and the `train`
 * table of the spec reference (sweeps/README.md) from train-settings.schema.json: `npm run contract:types`. test/contract/types.test.ts generates them again and fails when the file
 * is stale, so a schema change that TypeScript does not follow fails a test.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { compile } from 'json-schema-to-typescript';

const CONTRACT_DIR = path.join(__dirname, '..', '..', 'training', 'contract');
export const TYPES_FILE = path.join(__dirname, 'types.generated.ts');
const ID_BASE = 'https://spot-sweep.github.io/contract/';

/** The generated types, one interface per schema, in this order. */
const ROOTS: readonly [file: string, typeName: string][] = [
  ['train-settings.schema.json', 'TrainSettingsJson'],
  ['job.schema.json', 'JobJson'],
  ['status.schema.json', 'StatusJson'],
  ['control.schema.json', 'ControlJson'],
  ['results.schema.json', 'ResultsJson'],
  ['spend.schema.json', 'SpendJson'],
  ['lease.schema.json', 'LeaseJson'],
  ['scheduled.schema.json', 'ScheduledJson'],
];

function load(file: string): Record<string, unknown> {
  return JSON.parse(readFileSync(path.join(CONTRACT_DIR, file), 'utf8')) as Record<string, unknown>;
}

type Schema = Record<string, unknown>;

/** The schema a `$ref` names: `other.schema.json#/$defs/x`, `#/$defs/x`, or an `$id` URL. */
function resolveRef(ref: string, from: string): { schema: Schema; file: string } {
  const [target, pointer = ''] = ref.split('#');
  const file = target === '' ? from : path.basename(target.startsWith(ID_BASE) ? target.slice(ID_BASE.length) : target);
  let node: unknown = load(file);
  for (const part of pointer.split('/').filter(Boolean)) node = (node as Schema)[part];
  if (node === undefined) throw new Error(`${from}: $ref ${ref} names nothing`);
  return { schema: node as Schema, file };
}

/**
 * The schema with every `$ref` inlined: json-schema-to-typescript does not follow draft 2020-12
 * `$defs` across files. A `$ref` with sibling keywords merges them (properties and required are
 * united), and `unevaluatedProperties: false` becomes `additionalProperties: false` on the merged
 * object, which is what it means for these schemas.
 */
function inline(node: unknown, file: string): unknown {
  if (Array.isArray(node)) return node.map((n) => inline(n, file));
  if (node === null || typeof node !== 'object') return node;
  const { $ref, $defs: _defs, $id: _id, $schema: _schema, unevaluatedProperties, ...rest } = node as Schema;
  let out: Schema = Object.fromEntries(Object.entries(rest).map(([k, v]) => [k, k === 'properties' || k === 'patternProperties' ? mapValues(v as Schema, file) : inline(v, file)]));
  if (typeof $ref === 'string') {
    const target = resolveRef($ref, file);
    const base = inline(target.schema, target.file) as Schema;
    out = {
      ...base,
      ...out,
      ...(base.properties || out.properties ? { properties: { ...(base.properties as Schema), ...(out.properties as Schema) } } : {}),
      ...(base.required || out.required ? { required: [...new Set([...((base.required as string[]) ?? []), ...((out.required as string[]) ?? [])])] } : {}),
    };
  }
  if (unevaluatedProperties === false) out.additionalProperties = false;
  return out;
}

function mapValues(o: Schema, file: string): Schema {
  return Object.fromEntries(Object.entries(o).map(([k, v]) => [k, inline(v, file)]));
}

export async function generateTypes(): Promise<string> {
  const parts = [
    '/* Generated from training/contract/*.schema.json by `npm run contract:types` (lib/contract/generate-types.ts); do not edit. */',
    '/* eslint-disable */',
  ];
  for (const [file, name] of ROOTS) {
    const schema = { ...(inline(load(file), file) as Schema), title: name };
    const ts = await compile(schema as never, name, {
      bannerComment: '',
      additionalProperties: false,
      strictIndexSignatures: true,
      format: true,
    });
    parts.push(`// ${file}\n${ts.trim()}`);
  }
  return `${parts.join('\n\n')}\n`;
}

export const SPEC_REFERENCE = path.join(__dirname, '..', '..', 'sweeps', 'README.md');
const BEGIN = '<!-- train-settings table: generated from training/contract/train-settings.schema.json by `npm run contract:types` -->';
const END = '<!-- end of the generated table -->';

/** The `train` table of the spec reference (sweeps/README.md), from the schema: it never restates a default by hand. */
export function trainSettingsTable(): string {
  const props = (load('train-settings.schema.json').$defs as Schema).settings as Schema;
  const rows = Object.entries(props.properties as Record<string, Schema>).map(([key, p]) => {
    const type = p.enum ? 'string' : String(p.type);
    const low = p.exclusiveMinimum !== undefined ? `> ${String(p.exclusiveMinimum)}` : p.minimum !== undefined ? `>= ${String(p.minimum)}` : '';
    const rule = p.enum ? (p.enum as unknown[]).map((v) => `\`${JSON.stringify(v)}\``).join(', ') : [low, p.maximum !== undefined ? `<= ${String(p.maximum)}` : ''].filter(Boolean).join(', ');
    return `| \`${key}\` | ${type} | \`${JSON.stringify(p.default)}\` | ${rule} | ${String(p.description ?? '')} |`;
  });
  return [BEGIN, '| key | type | default | rule | meaning |', '|---|---|---|---|---|', ...rows, END].join('\n');
}

/** sweeps/README.md with its generated table replaced by the current one. */
export function specReferenceWithTable(text: string): string {
  const start = text.indexOf(BEGIN);
  const end = text.indexOf(END);
  if (start < 0 || end < start) throw new Error(`${SPEC_REFERENCE}: the markers of the generated train table are missing`);
  return text.slice(0, start) + trainSettingsTable() + text.slice(end + END.length);
}

if (require.main === module) {
  generateTypes().then(
    (text) => {
      // --stdout: print instead of writing (test/conformance/types.test.ts compares it with the file).
      if (process.argv.includes('--stdout')) return void process.stdout.write(text);
      writeFileSync(TYPES_FILE, text);
      writeFileSync(SPEC_REFERENCE, specReferenceWithTable(readFileSync(SPEC_REFERENCE, 'utf8')));
      console.log(`wrote ${path.relative(process.cwd(), TYPES_FILE)} and the train table of ${path.relative(process.cwd(), SPEC_REFERENCE)}`);
    },
    (err: unknown) => {
      console.error(err);
      process.exit(1);
    },
  );
}
