// Baselines shared by gateway replicas behind a trace-ID load balancer: each replica flushes its
// deltas through one Lua script (atomic in Redis, so concurrent flushes never lose counts) and
// reads the merged profiles back. Every key carries the prefix's {hash tag}: one Cluster slot.
//
// Layout (P = key_prefix):
//   P roles               SET of role names
//   P role:<role>         HASH first, last, calls, invocations
//   P items:<role>        HASH "<dim>\0<value>" → "count|first|last|conv,conv,…"
//   P win:<role>          HASH "<window index>" → "calls|invocations|errors|tokens|delegations|depthSum|depthMax"
//   P claim:<key>         a finding claimed by one replica (SET NX PX)
import { Redis } from 'ioredis';
import type { z } from 'zod';
import type { RedisStoreConfig } from './config.ts';
import type { BaselineStore } from './store.ts';
import { emptyData, MAX_CONVERSATIONS, type BaselineData } from './profile.ts';

const MERGE = `
local p = ARGV[1]
local d = cjson.decode(ARGV[2])
local max = tonumber(ARGV[3])
local function unite(a, b)
  if a == '' then return b end
  if b == '' then return a end
  local seen, list = {}, {}
  for x in string.gmatch(a, '[^,]+') do if not seen[x] then seen[x] = true; list[#list + 1] = x end end
  for x in string.gmatch(b, '[^,]+') do
    if #list >= max then break end
    if not seen[x] then seen[x] = true; list[#list + 1] = x end
  end
  return table.concat(list, ',')
end
for _, r in ipairs(d.r) do
  local k = p .. 'role:' .. r[1]
  redis.call('SADD', p .. 'roles', r[1])
  local f = tonumber(redis.call('HGET', k, 'first'))
  if (not f) or r[2] < f then redis.call('HSET', k, 'first', string.format('%.0f', r[2])) end
  local l = tonumber(redis.call('HGET', k, 'last'))
  if (not l) or r[3] > l then redis.call('HSET', k, 'last', string.format('%.0f', r[3])) end
  redis.call('HINCRBY', k, 'calls', r[4])
  redis.call('HINCRBY', k, 'invocations', r[5])
end
for _, it in ipairs(d.i) do
  local k = p .. 'items:' .. it[1]
  local count, first, last, convs = it[3], it[4], it[5], it[6]
  local cur = redis.call('HGET', k, it[2])
  if cur then
    local c, f, l, cv = string.match(cur, '^([^|]*)|([^|]*)|([^|]*)|(.*)$')
    count = count + tonumber(c)
    first = math.min(first, tonumber(f))
    last = math.max(last, tonumber(l))
    convs = unite(cv, convs)
  end
  redis.call('HSET', k, it[2], string.format('%.0f|%.0f|%.0f|%s', count, first, last, convs))
end
for _, w in ipairs(d.w) do
  local k = p .. 'win:' .. w[1]
  local v = {w[3], w[4], w[5], w[6], w[7], w[8], w[9]}
  local cur = redis.call('HGET', k, w[2])
  if cur then
    local i = 1
    for x in string.gmatch(cur, '[^|]+') do
      if i == 7 then v[i] = math.max(v[i], tonumber(x)) else v[i] = v[i] + tonumber(x) end
      i = i + 1
    end
  end
  redis.call('HSET', k, w[2], string.format('%.0f|%.0f|%.0f|%.0f|%.0f|%.0f|%.0f', v[1], v[2], v[3], v[4], v[5], v[6], v[7]))
end
return 1
`;

const PRUNE = `
local p = ARGV[1]
local before = tonumber(ARGV[2])
for _, role in ipairs(redis.call('SMEMBERS', p .. 'roles')) do
  local k = p .. 'win:' .. role
  for _, idx in ipairs(redis.call('HKEYS', k)) do
    if tonumber(idx) < before then redis.call('HDEL', k, idx) end
  end
end
return 1
`;

/** The URL without its password, for logs and errors. */
export function redactedUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return 'redis://(unparsable url)';
  }
}

export class RedisStore implements BaselineStore {
  readonly kind = 'redis';
  readonly shared = true;
  readonly #cfg: z.output<typeof RedisStoreConfig>;
  readonly #redis: Redis;
  readonly #p: string;
  #lastError = '';

  constructor(cfg: z.output<typeof RedisStoreConfig>) {
    this.#cfg = cfg;
    this.#p = cfg.key_prefix;
    this.#redis = new Redis(cfg.url, {
      lazyConnect: true,
      connectTimeout: cfg.connect_timeout,
      // Fail a command rather than queue it forever: the engine keeps the delta and retries.
      maxRetriesPerRequest: 1,
      enableOfflineQueue: true,
    });
    // ioredis reconnects by itself; errors are reported by the commands that fail (with the
    // connection's own error, which says more than "Connection is closed").
    this.#redis.on('error', (err: Error) => (this.#lastError = err.message));
  }

  get where(): string {
    return redactedUrl(this.#cfg.url);
  }

  async open(): Promise<void> {
    try {
      await this.#redis.connect();
      await this.#redis.ping();
    } catch (err) {
      this.#redis.disconnect();
      throw new Error(`baseline store ${this.where}: ${this.#lastError || (err as Error).message}`);
    }
  }

  async load(fromWindow: number, toWindow?: number): Promise<BaselineData> {
    const out = emptyData();
    const roles = await this.#redis.smembers(`${this.#p}roles`);
    if (roles.length === 0) return out;
    // A short recent range (the usual sync) is read field by field; a whole history at once.
    const range = toWindow !== undefined && toWindow - fromWindow <= 64 ? Array.from({ length: toWindow - fromWindow + 1 }, (_, i) => String(fromWindow + i)) : undefined;
    const pipe = this.#redis.pipeline();
    for (const role of roles) {
      pipe.hgetall(`${this.#p}role:${role}`).hgetall(`${this.#p}items:${role}`);
      if (range) pipe.hmget(`${this.#p}win:${role}`, ...range);
      else pipe.hgetall(`${this.#p}win:${role}`);
    }
    const res = await pipe.exec();
    if (!res) throw new Error('redis pipeline returned nothing');
    roles.forEach((role, i) => {
      const [tErr, totals] = res[3 * i]!;
      const [iErr, items] = res[3 * i + 1]!;
      const [wErr, wins] = res[3 * i + 2]!;
      const err = tErr ?? iErr ?? wErr;
      if (err) throw err;
      const t = totals as Record<string, string>;
      if (t.first !== undefined) out.roles.set(role, { first: Number(t.first), last: Number(t.last), calls: Number(t.calls ?? 0), invocations: Number(t.invocations ?? 0) });
      for (const [field, v] of Object.entries(items as Record<string, string>)) {
        const [count, first, last, convs] = v.split('|');
        out.items.set(`${role}\u0000${field}`, { count: Number(count), first: Number(first), last: Number(last), convs: convs ? convs.split(',') : [] });
      }
      const entries: [string, string | null][] = range ? range.map((idx, k) => [idx, (wins as (string | null)[])[k]!]) : Object.entries(wins as Record<string, string>);
      for (const [idx, v] of entries) {
        if (v === null || Number(idx) < fromWindow || (toWindow !== undefined && Number(idx) > toWindow)) continue;
        const [calls, invocations, errors, tokens, delegations, depthSum, depthMax] = v.split('|').map(Number);
        out.windows.set(`${role}\u0000${idx}`, { calls: calls!, invocations: invocations!, errors: errors!, tokens: tokens!, delegations: delegations!, depthSum: depthSum!, depthMax: depthMax! });
      }
    });
    return out;
  }

  async flush(delta: BaselineData): Promise<void> {
    const payload = {
      r: [...delta.roles].map(([role, t]) => [role, t.first, t.last, t.calls, t.invocations]),
      i: [...delta.items].map(([key, it]) => {
        const a = key.indexOf('\u0000');
        return [key.slice(0, a), key.slice(a + 1), it.count, it.first, it.last, it.convs.join(',')];
      }),
      w: [...delta.windows].map(([key, w]) => {
        const a = key.lastIndexOf('\u0000');
        return [key.slice(0, a), key.slice(a + 1), w.calls, w.invocations, w.errors, w.tokens, w.delegations, w.depthSum, w.depthMax];
      }),
    };
    if (payload.r.length + payload.i.length + payload.w.length === 0) return;
    await this.#redis.eval(MERGE, 0, this.#p, JSON.stringify(payload), MAX_CONVERSATIONS);
  }

  async claim(key: string, ttlMs: number): Promise<boolean> {
    const r = await this.#redis.set(`${this.#p}claim:${key}`, '1', 'PX', Math.max(1, Math.round(ttlMs)), 'NX');
    return r === 'OK';
  }

  async prune(beforeWindow: number): Promise<void> {
    await this.#redis.eval(PRUNE, 0, this.#p, beforeWindow);
  }

  async close(): Promise<void> {
    await this.#redis.quit().catch(() => this.#redis.disconnect());
  }
}
