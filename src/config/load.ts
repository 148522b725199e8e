// Reads a YAML config and expands ${env:VAR} and ${env:VAR:-default} in string values.
// A value that is nothing but one ${...} takes the YAML type of what it expands to
// (so ${env:PORTS} can be a number or a list), as the collector's confmap does.
import { readFileSync } from 'node:fs';
import { parse as parseYaml, YAMLParseError } from 'yaml';
import { ConfigError } from '../errors.ts';

const REF = /\$\$|\$\{env:([A-Za-z_][A-Za-z0-9_]*)(?::-((?:[^}]|\}(?!\s*$))*?))?\}/g;
const WHOLE_REF = /^\$\{env:([A-Za-z_][A-Za-z0-9_]*)(?::-(.*))?\}$/s;

export type Env = Readonly<Record<string, string | undefined>>;

/** Where the config comes from: a file path, or `env:VAR` for the whole YAML in a variable. */
export function readConfigSource(source: string, env: Env = process.env): { text: string; name: string } {
  if (source.startsWith('env:')) {
    const name = source.slice(4);
    const text = env[name];
    if (text === undefined || text === '') throw new ConfigError([`config: environment variable ${name} is not set or empty`]);
    return { text, name: source };
  }
  try {
    return { text: readFileSync(source, 'utf8'), name: source };
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    const why = e.code === 'ENOENT' ? 'no such file' : e.code === 'EACCES' ? 'permission denied' : e.code === 'EISDIR' ? 'is a directory' : e.message;
    throw new ConfigError([`config: cannot read ${source}: ${why}`]);
  }
}

export function parseConfigText(text: string, name: string, env: Env = process.env): unknown {
  let doc: unknown;
  try {
    doc = parseYaml(text, { prettyErrors: true, uniqueKeys: true });
  } catch (err) {
    const msg = err instanceof YAMLParseError ? err.message.split('\n')[0] : String(err);
    throw new ConfigError([`config: ${name} is not valid YAML: ${msg}`]);
  }
  const issues: string[] = [];
  const expanded = expand(doc ?? {}, [], env, issues);
  if (issues.length > 0) throw new ConfigError(issues);
  return expanded;
}

function expand(node: unknown, path: string[], env: Env, issues: string[]): unknown {
  if (typeof node === 'string') return expandString(node, path, env, issues);
  if (Array.isArray(node)) return node.map((v, i) => expand(v, [...path, String(i)], env, issues));
  if (node && typeof node === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(node)) out[k] = expand(v, [...path, k], env, issues);
    return out;
  }
  return node;
}

function expandString(s: string, path: string[], env: Env, issues: string[]): unknown {
  if (!s.includes('$')) return s;
  const lookup = (name: string, fallback: string | undefined): string | undefined => {
    const v = env[name];
    if (v !== undefined && v !== '') return v;
    if (fallback !== undefined) return fallback;
    issues.push(`${path.join('::')}: environment variable ${name} is not set (write \${env:${name}:-default} to give a default)`);
    return undefined;
  };
  const whole = WHOLE_REF.exec(s);
  if (whole) {
    const v = lookup(whole[1]!, whole[2]);
    if (v === undefined) return s;
    try {
      const parsed: unknown = parseYaml(v);
      // Only scalars and flow collections take a YAML type; anything odd stays a string.
      return parsed === null || typeof parsed === 'object' && !/^\s*[[{]/.test(v) ? v : parsed;
    } catch {
      return v;
    }
  }
  return s.replace(REF, (m, name: string | undefined, fallback: string | undefined) => {
    if (m === '$$') return '$';
    return lookup(name!, fallback) ?? '';
  });
}
