import { closeSync, fstatSync, mkdirSync, openSync, readdirSync, readFileSync, readSync, renameSync, statSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { PreconditionFailed, StoredText, SweepStore, WriteOptions } from './types';

/**
 * A store in a local directory (created on first write): `spot-sweep local`, tests. Writes are atomic
 * (a temporary file renamed into place), so a reader never sees half an object, and conditional writes
 * compare the ETag (size and mtime) the Python LocalStore gives the same file.
 */
export function fileStore(dir: string): SweepStore {
  const base = path.resolve(dir);
  const file = (key: string): string => path.join(base, key);
  const etagOf = (f: string): string | undefined => {
    try {
      const st = statSync(f, { bigint: true });
      return `${st.size}-${st.mtimeNs}`;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
  };
  const readObject = async (key: string): Promise<StoredText | undefined> => {
    const f = file(key);
    const etag = etagOf(f);
    if (etag === undefined) return undefined;
    try {
      return { text: readFileSync(f, 'utf8'), etag };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
  };
  return {
    root: pathToFileURL(base).href.replace(/\/+$/, ''),
    env: {},
    read: async (key) => (await readObject(key))?.text,
    readObject,
    async write(key: string, body: string, options: WriteOptions = {}) {
      const f = file(key);
      if (options.ifMatch !== undefined) {
        const now = etagOf(f);
        if (options.ifMatch === 'absent' ? now !== undefined : now !== options.ifMatch) throw new PreconditionFailed(key);
      }
      mkdirSync(path.dirname(f), { recursive: true });
      const tmp = path.join(path.dirname(f), `.${path.basename(f)}.${process.pid}.part`);
      writeFileSync(tmp, body);
      renameSync(tmp, f);
    },
    async size(key) {
      try {
        return statSync(file(key)).size;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
        throw err;
      }
    },
    async readFrom(key, start) {
      const fd = openSync(file(key), 'r');
      try {
        const length = Math.max(0, fstatSync(fd).size - start);
        const buffer = Buffer.alloc(length);
        readSync(fd, buffer, 0, length, start);
        return buffer;
      } finally {
        closeSync(fd);
      }
    },
    async list(prefix) {
      // Walk the deepest directory the prefix names; keys use `/` whatever the platform's separator.
      const dirPart = prefix.includes('/') ? prefix.slice(0, prefix.lastIndexOf('/') + 1) : '';
      const keys: string[] = [];
      const walk = (rel: string): void => {
        let entries;
        try {
          entries = readdirSync(file(rel), { withFileTypes: true });
        } catch (err) {
          if (['ENOENT', 'ENOTDIR'].includes((err as NodeJS.ErrnoException).code ?? '')) return;
          throw err;
        }
        for (const e of entries) {
          const key = `${rel}${e.name}`;
          if (e.isDirectory()) walk(`${key}/`);
          // A write's temporary file (.<name>.<pid>.part) is not an object yet.
          else if (e.isFile() && key.startsWith(prefix) && !(e.name.startsWith('.') && e.name.endsWith('.part'))) keys.push(key);
        }
      };
      walk(dirPart);
      return keys.sort();
    },
    describe: (key) => file(key),
  };
}
