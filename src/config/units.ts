// Durations ("200ms", "5s", "1m30s", "7d" or a number of ms) and sizes ("20MiB", "512KiB" or a
// number of bytes) as they are written in collector configs.
import { z } from 'zod';

const DURATION_PART = /(\d+(?:\.\d+)?)(ms|s|m|h|d)/g;
const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

export function parseDuration(v: string): number | undefined {
  const s = v.trim();
  if (s === '0') return 0;
  if (!/^(\d+(?:\.\d+)?(ms|s|m|h|d))+$/.test(s)) return undefined;
  let total = 0;
  for (const m of s.matchAll(DURATION_PART)) total += Number(m[1]) * DURATION_UNITS[m[2]!]!;
  return total;
}

/** A duration in milliseconds. */
export const duration = z.union([z.number().nonnegative(), z.string()]).transform((v, ctx) => {
  if (typeof v === 'number') return v;
  const ms = parseDuration(v);
  if (ms === undefined) {
    ctx.addIssue({ code: 'custom', message: `invalid duration ${JSON.stringify(v)}: use a number of milliseconds or a string like 200ms, 5s, 1m, 24h, 7d` });
    return z.NEVER;
  }
  return ms;
});

const SIZE_UNITS: Record<string, number> = { '': 1, b: 1, kb: 1e3, mb: 1e6, gb: 1e9, kib: 1024, mib: 1024 ** 2, gib: 1024 ** 3 };

/** A size in bytes. */
export const byteSize = z.union([z.number().int().nonnegative(), z.string()]).transform((v, ctx) => {
  if (typeof v === 'number') return v;
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(v);
  const unit = m ? SIZE_UNITS[m[2]!.toLowerCase()] : undefined;
  if (!m || unit === undefined) {
    ctx.addIssue({ code: 'custom', message: `invalid size ${JSON.stringify(v)}: use a number of bytes or a string like 512KiB, 20MiB` });
    return z.NEVER;
  }
  return Math.round(Number(m[1]) * unit);
});

/** host:port, as in collector endpoints; a bare :port means all interfaces. */
export const hostPort = z.string().refine((v) => /^(\[[0-9a-fA-F:.]+\]|[^:\s]*):\d{1,5}$/.test(v), {
  message: 'must be host:port, e.g. 0.0.0.0:4317 or localhost:0',
});

export function splitHostPort(endpoint: string): { host: string; port: number } {
  const i = endpoint.lastIndexOf(':');
  let host = endpoint.slice(0, i);
  if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1);
  return { host: host === '' ? '0.0.0.0' : host, port: Number(endpoint.slice(i + 1)) };
}
