/**
 * JSON pointers (RFC 6901), as `script.metric.pointer` and `folds` name a value in a script's results file.
 * The job runner resolves them (training/spot_runner/script_metric.py); the spec only checks their syntax
 * and takes the last token as the metric's default name.
 * @see https://www.rfc-editor.org/rfc/rfc6901
 */

/** The pointer's reference tokens, unescaped (`~1` -> `/`, `~0` -> `~`); undefined when it is not a pointer. */
export function pointerTokens(pointer: string): string[] | undefined {
  if (pointer === '') return [];
  if (!pointer.startsWith('/') || /~(?![01])/.test(pointer)) return undefined;
  return pointer
    .slice(1)
    .split('/')
    .map((t) => t.replace(/~1/g, '/').replace(/~0/g, '~'));
}
