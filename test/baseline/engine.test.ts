// The baseline engine on its own, fed observations directly (the detector that feeds it from
// trace graphs is exercised over real sockets in collector.test.ts): novelty after learning,
// and volume judged with robust statistics, a minimum count and persistence.
import { describe, expect, it } from 'vitest';
import { Baselines, type Novelty, type VolumeAnomaly } from '../../src/baseline/baselines.ts';
import { BaselinesConfig } from '../../src/baseline/config.ts';
import { MemoryStore } from '../../src/baseline/store.ts';

const MIN = 60_000;
const T0 = Date.UTC(2026, 10, 3); // a Tuesday: the volume tests stay on weekdays

function engine(over: Record<string, unknown> = {}) {
  const cfg = BaselinesConfig.parse({ storage: 'memory', learning: { period: '1h', min_observations: 50 }, window: '5m', lateness: '1m', ...over });
  const volume: VolumeAnomaly[] = [];
  const e = new Baselines(cfg, { store: new MemoryStore(), onVolume: (a) => volume.push(a) });
  return { e, cfg, volume };
}

const ref = (i: number) => ({ traceId: `t${i}`, spanId: `s${i}`, conversation: `c${i % 7}` });

/** `perWindow` invocations of `role` in each 5-minute window from `from` for `windows` windows, each with `calls` tool calls; sync after each window. */
async function feed(e: Baselines, role: string, from: number, windows: number, perWindow: (w: number) => number, calls = 3, tool = (_: number) => 'search') {
  const novelties: Novelty[] = [];
  let n = 0;
  for (let w = 0; w < windows; w++) {
    const start = from + w * 5 * MIN;
    const k = perWindow(w);
    for (let i = 0; i < k; i++) {
      const t = start + Math.floor((i * 5 * MIN) / Math.max(1, k));
      const r = ref(n++);
      e.observeInvocation(role, t, 1, r);
      for (let c = 0; c < calls; c++) e.observeCall(role, t + c, { tool: tool(n), counts: true, error: false, tokens: 100 }, r, novelties);
    }
    await e.sync();
  }
  return novelties;
}

describe('baseline engine', () => {
  it('learns first: no novelty during the learning period, one finding per new tool after it', async () => {
    const { e } = engine();
    // Learning: 30 minutes of traffic with three tools, rotating.
    const tools = ['search', 'fetch', 'summarize'];
    const during = await feed(e, 'researcher', T0, 6, () => 10, 3, (n) => tools[n % 3]!);
    expect(during).toEqual([]);
    expect(e.summary('researcher')!.state).toBe('learning');
    // Past the hour and the 50 calls.
    await feed(e, 'researcher', T0 + 60 * MIN, 2, () => 10, 3, (n) => tools[n % 3]!);
    expect(e.summary('researcher')!.state).toBe('ready');
    const novel: Novelty[] = [];
    const r = ref(999);
    e.observeCall('researcher', T0 + 75 * MIN, { tool: 'delete_repo', counts: true, error: false, tokens: 0 }, r, novel);
    e.observeCall('researcher', T0 + 75 * MIN + 1, { tool: 'delete_repo', counts: true, error: false, tokens: 0 }, r, novel);
    e.observeCall('researcher', T0 + 75 * MIN + 2, { tool: 'search', counts: true, error: false, tokens: 0 }, r, novel);
    expect(novel).toEqual([{ role: 'researcher', dimension: 'tool', value: 'delete_repo', known: 3 }]);
    // Another role is learning on its own clock.
    e.observeCall('writer', T0 + 76 * MIN, { tool: 'delete_repo', counts: true, error: false, tokens: 0 }, r, novel);
    expect(novel).toHaveLength(1);
    expect(e.summary('writer')!.state).toBe('learning');
  });

  it('keeps endpoints bounded: children of a collapsed position are recorded as the position, and are not new', async () => {
    const { e } = engine({ endpoints: { collapse_after: 10, protected_prefixes: ['/admin'] } });
    await feed(e, 'crm', T0, 14, () => 10); // learnt (ready) with the search tool
    const novel: Novelty[] = [];
    for (let i = 0; i < 500; i++) e.observeCall('crm', T0 + 80 * MIN + i, { endpoint: `crm.corp GET /accounts/acct-${String.fromCharCode(97 + (i % 26))}${String.fromCharCode(97 + Math.floor(i / 26))}`, counts: false, error: false, tokens: 0 }, ref(i), novel);
    // The first 11 distinct children were new (reported); then the position collapsed.
    expect(novel).toHaveLength(11);
    expect(e.countOf('crm', 'endpoint')).toBe(12);
    expect(e.item('crm', 'endpoint', 'crm.corp GET /accounts/{*}')!.count).toBe(489);
    // A protected prefix never collapses.
    for (let i = 0; i < 20; i++) e.observeCall('crm', T0 + 90 * MIN + i, { endpoint: `crm.corp GET /admin/x${String.fromCharCode(97 + i)}`, counts: false, error: false, tokens: 0 }, ref(i), novel);
    expect(novel).toHaveLength(31);
  });

  it('a sustained 5x volume gives one finding; a single-window spike gives none', async () => {
    const { e, volume } = engine();
    // A day of steady traffic: 8–12 invocations per window.
    await feed(e, 'triage', T0, 288, (w) => 8 + (w * 7) % 5);
    expect(volume).toEqual([]);
    // One window at 5x, then normal: below persistence.
    await feed(e, 'triage', T0 + 288 * 5 * MIN, 1, () => 50);
    await feed(e, 'triage', T0 + 289 * 5 * MIN, 4, () => 10);
    expect(volume).toEqual([]);
    // Five windows at 5x: one finding (persistence 3), not one per window.
    await feed(e, 'triage', T0 + 293 * 5 * MIN, 5, () => 50);
    await feed(e, 'triage', T0 + 298 * 5 * MIN, 2, () => 10);
    expect(volume.map((v) => [v.role, v.feature])).toEqual([['triage', 'calls_per_minute']]);
    const v = volume[0]!;
    expect(v.values).toHaveLength(3);
    expect(v.values[0]!).toBeGreaterThan(v.threshold);
    expect(v.median).toBeGreaterThan(4);
    expect(v.median).toBeLessThan(8);
    expect(v.exemplar?.traceId).toMatch(/^t\d+$/);
  });

  it('follows the daily rhythm: a quiet night and a busy day over a week fire nothing', async () => {
    const { e, volume } = engine();
    const perDay = 288;
    // 3 days: 2 invocations per window at night, 20 by day, with noise.
    const rhythm = (w: number) => {
      const hour = ((w % perDay) * 5) / 60;
      const base = hour >= 8 && hour < 20 ? 20 : 2;
      return Math.max(0, base + ((w * 13) % 7) - 3);
    };
    await feed(e, 'ops', T0, 3 * perDay, rhythm, 3);
    expect(volume).toEqual([]);
  });
});
