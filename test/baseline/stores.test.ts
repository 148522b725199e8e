// The stores: SQLite keeps every profile across a restart; Redis merges replicas. Two engines
// sharing one real redis-server, each fed half of the traffic (split by trace, as a trace-ID
// load balancer does), hold the same profile as one engine fed all of it.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Baselines, type Novelty } from '../../src/baseline/baselines.ts';
import { BaselinesConfig } from '../../src/baseline/config.ts';
import { MemoryStore } from '../../src/baseline/store.ts';
import { SqliteStore } from '../../src/baseline/store-sqlite.ts';
import { RedisStore } from '../../src/baseline/store-redis.ts';
import { endpointKey } from '../../src/baseline/endpoint.ts';
import { redisUnavailable, startRedis, type TestRedis } from '../helpers/redis.ts';

const MIN = 60_000;
const T0 = Date.UTC(2026, 10, 2);
const cfg = BaselinesConfig.parse({ learning: { period: '10m', min_observations: 20 } });

/** A day's worth of varied traffic, as (trace index, feed function) so it can be split by trace. */
function traffic(): ((e: Baselines) => void)[] {
  const out: ((e: Baselines) => void)[] = [];
  const roles = ['planner', 'researcher', 'writer'];
  for (let i = 0; i < 600; i++) {
    const role = roles[i % 3]!;
    const t = T0 + i * 37_000;
    const ref = { traceId: `trace-${i}`, spanId: `span-${i}`, conversation: `conv-${i % 11}` };
    out.push((e) => {
      const novel: Novelty[] = [];
      e.observeInvocation(role, t, i % 3, ref);
      e.observeCall(role, t + 1, { tool: ['search', 'fetch', 'summarize', 'rank'][i % 4], counts: true, error: i % 17 === 0, tokens: 100 + (i % 50) }, ref, novel);
      e.observeCall(role, t + 2, { endpoint: endpointKey('api.example.com', 'GET', `/orders/${1000 + i}`), counts: false, error: false, tokens: 0 }, ref, novel);
      e.observeCall(role, t + 3, { model: i % 5 === 0 ? 'gpt-4o' : 'gpt-4o-mini', counts: true, error: false, tokens: 500 }, ref, novel);
      if (role === 'planner') e.observeDelegation('planner', i % 2 ? 'researcher' : 'writer', t + 4, ref, novel);
    });
  }
  return out;
}

/** Everything an engine knows, comparably. */
function snapshot(e: Baselines) {
  return Object.fromEntries(
    e.roles().map((r) => {
      const items = e.items(r);
      const plain = Object.fromEntries(Object.entries(items).map(([d, list]) => [d, list.map(([v, it]) => [v, it.count, it.first, it.last, [...it.convs].sort()])]));
      return [r, { summary: e.summary(r), items: plain, volume: e.volume(r), rate: e.rateEvidence(r) }];
    }),
  );
}

describe('sqlite store', () => {
  it('keeps every profile across a restart', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'agentsec-bl-'));
    try {
      const path = join(dir, 'baselines.db');
      const first = new Baselines(cfg, { store: new SqliteStore(path) });
      await first.start();
      const feeds = traffic();
      for (const [i, f] of feeds.entries()) {
        f(first);
        if (i % 100 === 99) await first.sync();
      }
      const before = snapshot(first);
      await first.close();

      const second = new Baselines(cfg, { store: new SqliteStore(path) });
      await second.start();
      expect(snapshot(second)).toEqual(before);
      expect(second.summary('planner')!.state).toBe('ready');
      expect(second.items('researcher').endpoint.map(([v]) => v)).toEqual(['api.example.com GET /orders/{id}']);
      // What was learnt is known after the restart: not new again.
      const novel: Novelty[] = [];
      second.observeCall('planner', T0 + 86_400_000, { tool: 'search', counts: true, error: false, tokens: 0 }, { traceId: 'x', spanId: 'y', conversation: 'z' }, novel);
      second.observeCall('planner', T0 + 86_400_000, { tool: 'wire_money', counts: true, error: false, tokens: 0 }, { traceId: 'x', spanId: 'y', conversation: 'z' }, novel);
      expect(novel.map((n) => n.value)).toEqual(['wire_money']);
      await second.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

const noRedis = redisUnavailable();

describe.skipIf(noRedis !== undefined)(`redis store${noRedis ? ` (skipped: ${noRedis})` : ''}`, () => {
  let redis: TestRedis;
  beforeAll(async () => {
    redis = await startRedis();
  });
  afterAll(async () => {
    await redis?.stop();
  });

  it('two replicas, each fed half of the traces, hold the profile of one fed all of them', async () => {
    const redisCfg = (prefix: string) => ({ ...cfg.redis, url: redis.url, key_prefix: prefix });
    const prefix = redis.prefix();
    const a = new Baselines(cfg, { store: new RedisStore(redisCfg(prefix)) });
    const b = new Baselines(cfg, { store: new RedisStore(redisCfg(prefix)) });
    const one = new Baselines(cfg, { store: new MemoryStore() });
    await Promise.all([a.start(), b.start(), one.start()]);
    const feeds = traffic();
    for (const [i, f] of feeds.entries()) {
      f(i % 2 === 0 ? a : b);
      f(one);
      // Flushes interleave, concurrently.
      if (i % 50 === 49) await Promise.all([a.sync(), b.sync()]);
    }
    await Promise.all([a.sync(), b.sync()]);
    // Each reads the other's last flush.
    await Promise.all([a.sync(), b.sync()]);
    await one.sync();
    const want = snapshot(one);
    expect(snapshot(a)).toEqual(want);
    expect(snapshot(b)).toEqual(want);
    await Promise.all([a.close(), b.close(), one.close()]);
  });

  it('concurrent flushes of the same counters lose nothing', async () => {
    const prefix = redis.prefix();
    const engines = Array.from({ length: 4 }, () => new Baselines(cfg, { store: new RedisStore({ ...cfg.redis, url: redis.url, key_prefix: prefix }) }));
    await Promise.all(engines.map((e) => e.start()));
    for (let round = 0; round < 5; round++) {
      for (const [k, e] of engines.entries()) {
        for (let i = 0; i < 100; i++) e.observeCall('r', T0 + round * 1000 + i, { tool: 'search', counts: true, error: false, tokens: 1 }, { traceId: `t${k}-${round}-${i}`, spanId: 's', conversation: `c${k}` }, []);
      }
      await Promise.all(engines.map((e) => e.sync()));
    }
    await Promise.all(engines.map((e) => e.sync()));
    for (const e of engines) {
      expect(e.item('r', 'tool', 'search')!.count).toBe(2000);
      expect(e.summary('r')!.calls).toBe(2000);
      expect(e.item('r', 'tool', 'search')!.convs).toHaveLength(4);
    }
    await Promise.all(engines.map((e) => e.close()));
  });

  it('replicas judge the same merged windows, and one of them reports a volume finding', async () => {
    const prefix = redis.prefix();
    const reported: string[] = [];
    const volCfg = BaselinesConfig.parse({ learning: { period: '10m', min_observations: 20 }, volume: { min_calls: 10 } });
    const make = (name: string) => new Baselines(volCfg, { store: new RedisStore({ ...volCfg.redis, url: redis.url, key_prefix: prefix }), onVolume: (a) => reported.push(`${name}:${a.role}:${a.feature}`) });
    const [a, b] = [make('a'), make('b')];
    await Promise.all([a.start(), b.start()]);
    // A day of 5-minute windows with ~12 calls per minute, split by trace between the replicas;
    // then five windows at 5x. Each replica alone sees half: only the merged windows are judged.
    let n = 0;
    for (let w = 0; w < 300; w++) {
      const calls = w >= 290 && w < 295 ? 300 : 60;
      for (let i = 0; i < calls; i++) {
        const t = T0 + w * 5 * MIN + Math.floor((i * 5 * MIN) / calls);
        const e = n++ % 2 === 0 ? a : b;
        e.observeCall('triage', t, { tool: 'classify', counts: true, error: false, tokens: 0 }, { traceId: `t${n}`, spanId: `s${n}`, conversation: `c${n % 9}` }, []);
      }
      await Promise.all([a.sync(), b.sync()]);
      await Promise.all([a.sync(), b.sync()]);
    }
    expect(reported).toHaveLength(1);
    expect(reported[0]).toMatch(/^[ab]:triage:calls_per_minute$/);
    await Promise.all([a.close(), b.close()]);
  });

  it('an unreachable Redis fails start with the address (no password) and why', async () => {
    const store = new RedisStore({ url: 'redis://user:s3cret@127.0.0.1:1', key_prefix: 'x:', connect_timeout: 500 });
    const e = new Baselines(cfg, { store });
    const err = await e.start().then(() => undefined, (x: unknown) => x as Error);
    expect(err?.message).toMatch(/^baseline store redis:\/\/user:\*\*\*@127\.0\.0\.1:1\/?: .*ECONNREFUSED/);
    expect(err?.message).not.toContain('s3cret');
  });
});
