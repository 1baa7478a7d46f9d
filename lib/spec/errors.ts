/**
 * Errors a user can cause with a spec file. The CLI and the CDK app print `message` and exit 1,
 * never a stack trace.
 */

/** One problem in a spec: where, what was there, and how to fix it. */
export interface SpecIssue {
  /** JSON path, e.g. `configs[2].train.batchSize`; `(file)` for problems with the file itself. */
  readonly path: string;
  /** The value received, as JSON (truncated), or `undefined` when the key is missing. */
  readonly received?: string;
  /** What is wrong and how to fix it, as a sentence. */
  readonly message: string;
}

/** Every problem found in one spec file, reported at once. */
export class SpecError extends Error {
  public readonly issues: readonly SpecIssue[];
  public readonly source: string;

  constructor(source: string, issues: readonly SpecIssue[]) {
    super(formatIssues(source, issues));
    this.name = 'SpecError';
    this.source = source;
    this.issues = issues;
  }
}

/** Renders a value for a message: JSON, at most 60 characters. */
export function show(value: unknown): string {
  if (value === undefined) return 'nothing';
  let text: string;
  try {
    text = JSON.stringify(value) ?? String(value);
  } catch {
    text = String(value);
  }
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

function formatIssues(source: string, issues: readonly SpecIssue[]): string {
  const count = issues.length === 1 ? '1 problem' : `${issues.length} problems`;
  const lines = issues.map((issue) => {
    const got = issue.received === undefined ? '' : ` (got ${issue.received})`;
    return `  - ${issue.path}${got}: ${issue.message}`;
  });
  return [`${source}: ${count}:`, ...lines].join('\n');
}
