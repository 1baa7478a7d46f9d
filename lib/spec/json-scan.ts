/**
 * What JSON.parse does not say about a spec file: keys that appear twice in one object (JSON.parse
 * keeps the last one silently, so a second `"budgetUsd": 100000` would win unseen) and how deeply it
 * nests (a deep enough file overflows the parser's stack). A scan over the text, strings skipped.
 */

export interface DuplicateKey {
  /** JSON path of the object, e.g. `configs[1]`; `(top level)` for the outermost one. */
  readonly path: string;
  readonly key: string;
  /** 1-based position of the second occurrence. */
  readonly line: number;
  readonly column: number;
}

type Frame = { kind: 'object'; path: string; keys: Set<string>; expectKey: boolean; lastKey?: string } | { kind: 'array'; path: string; index: number };

/** The deepest nesting of objects and arrays in the text (outside strings); 0 for a scalar. */
export function nestingDepth(text: string): number {
  let depth = 0;
  let deepest = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '"') i = endOfString(text, i);
    else if (c === '{' || c === '[') deepest = Math.max(deepest, ++depth);
    else if (c === '}' || c === ']') depth--;
  }
  return deepest;
}

/** Every key that repeats within one object, with where; the text must be valid JSON. */
export function duplicateKeys(text: string): DuplicateKey[] {
  const found: DuplicateKey[] = [];
  const stack: Frame[] = [];
  const childPath = (): string => {
    const top = stack[stack.length - 1];
    if (!top) return '(top level)';
    const base = top.path === '(top level)' ? '' : top.path;
    return top.kind === 'array' ? `${base}[${top.index}]` : base ? `${base}.${top.lastKey}` : String(top.lastKey);
  };
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    const top = stack[stack.length - 1];
    if (c === '"') {
      const end = endOfString(text, i);
      if (top?.kind === 'object' && top.expectKey) {
        const key = JSON.parse(text.slice(i, end + 1)) as string;
        if (top.keys.has(key)) found.push({ path: top.path, key, ...position(text, i) });
        top.keys.add(key);
        top.lastKey = key;
        top.expectKey = false;
      }
      i = end;
    } else if (c === '{') {
      stack.push({ kind: 'object', path: childPath(), keys: new Set(), expectKey: true });
    } else if (c === '[') {
      stack.push({ kind: 'array', path: childPath(), index: 0 });
    } else if (c === '}' || c === ']') {
      stack.pop();
    } else if (c === ',') {
      if (top?.kind === 'object') top.expectKey = true;
      else if (top?.kind === 'array') top.index++;
    }
  }
  return found;
}

/** Index of the quote that closes the string opened at `start`. */
function endOfString(text: string, start: number): number {
  for (let i = start + 1; i < text.length; i++) {
    if (text[i] === '\\') i++;
    else if (text[i] === '"') return i;
  }
  return text.length;
}

function position(text: string, offset: number): { line: number; column: number } {
  const before = text.slice(0, offset);
  const line = before.split('\n').length;
  return { line, column: offset - (before.lastIndexOf('\n') + 1) + 1 };
}
