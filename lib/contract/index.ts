/**
 * `lib/contract/`: the TypeScript face of training/contract/, the one source of truth for every
 * contract between TypeScript, Python and bash. Names and exit codes (names.ts), the JSON Schemas
 * with an Ajv validator (schemas.ts) and the types generated from them (types.generated.ts).
 */
export * from './names';
export * from './schemas';
export * from './types.generated';
