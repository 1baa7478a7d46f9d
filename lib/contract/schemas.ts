/**
 * The JSON Schemas of training/contract/ (draft 2020-12), compiled once with Ajv: every file the
 * parts exchange is checked against the same schema in TypeScript (here) and Python (jsonschema).
 */
import Ajv2020, { ErrorObject, ValidateFunction } from 'ajv/dist/2020';
import addFormats from 'ajv-formats';
import control from '../../training/contract/control.schema.json';
import job from '../../training/contract/job.schema.json';
import lease from '../../training/contract/lease.schema.json';
import results from '../../training/contract/results.schema.json';
import scheduled from '../../training/contract/scheduled.schema.json';
import spend from '../../training/contract/spend.schema.json';
import status from '../../training/contract/status.schema.json';
import trainSettings from '../../training/contract/train-settings.schema.json';

export const SCHEMAS = { job, status, control, results, spend, lease, scheduled, 'train-settings': trainSettings } as const;
export type SchemaName = keyof typeof SCHEMAS;

let ajv: Ajv2020 | undefined;
const compiled = new Map<SchemaName, ValidateFunction>();

function validator(name: SchemaName): ValidateFunction {
  if (!ajv) {
    ajv = new Ajv2020({ allErrors: true, strict: true, strictTypes: false, allowUnionTypes: true });
    addFormats(ajv, ['date-time']);
    for (const schema of Object.values(SCHEMAS)) ajv.addSchema(schema);
  }
  let fn = compiled.get(name);
  if (!fn) {
    fn = ajv.getSchema(SCHEMAS[name].$id) as ValidateFunction;
    compiled.set(name, fn);
  }
  return fn;
}

/** What is wrong with `document` against the schema: one line per problem naming the field; empty when it conforms. */
export function contractProblems(name: SchemaName, document: unknown, limit = 20): string[] {
  const validate = validator(name);
  if (validate(document)) return [];
  // A top-level oneOf (results.json: train | script) fails with every branch's errors mixed together.
  // Report only the branch the document meant: one whose discriminator (a top-level `const`, e.g.
  // mode) it matches, then the one with the fewest errors; so the problems name the field to fix.
  const branches = (SCHEMAS[name] as { oneOf?: readonly { $ref?: string }[] }).oneOf;
  if (branches && branches.every((b) => b.$ref?.startsWith('#/'))) {
    const score = (errors: readonly ErrorObject[]): number =>
      errors.length + (errors.some((e) => e.keyword === 'const' && /^\/[^/]+$/.test(e.instancePath)) ? 1e6 : 0);
    const perBranch = branches.map((b) => {
      const check = ajv?.getSchema(`${SCHEMAS[name].$id}${b.$ref}`) as ValidateFunction;
      return check(document) ? [] : [...(check.errors ?? [])];
    });
    const closest = perBranch.reduce((best, errors) => (score(errors) < score(best) ? errors : best));
    if (closest.length > 0) return closest.slice(0, limit).map(describe);
  }
  return (validate.errors ?? []).slice(0, limit).map(describe);
}

function describe(e: ErrorObject): string {
  const where = e.instancePath.replace(/^\//, '').replace(/\/(\d+)(?=\/|$)/g, '[$1]').replace(/\//g, '.') || '(top level)';
  const extra = e.keyword === 'additionalProperties' ? ` (${String((e.params as { additionalProperty?: string }).additionalProperty)})` : '';
  return `${where}: ${e.message ?? e.keyword}${extra}`;
}

type Property = { readonly type?: string; readonly enum?: readonly unknown[]; readonly default?: unknown; readonly minimum?: number; readonly maximum?: number; readonly exclusiveMinimum?: number; readonly description?: string };

/** The trainer settings, by camelCase key, with their defaults, enums and bounds. */
export const TRAIN_PROPERTIES = trainSettings.$defs.settings.properties as Readonly<Record<string, Property>>;
