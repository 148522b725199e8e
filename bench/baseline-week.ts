// The baselines' false-positive rate over a simulated week (issue 5: ≤ 0.1 findings per role per
// day), and the inverse check in the same run. An accelerated clock: the traffic of 50 roles over
// 7 days is generated window by window (5 minutes of span time each) and driven straight into the
// baseline engine (src/baseline/baselines.ts) with a MemoryStore, as test/baseline/engine.test.ts
// does, with a sync after each window; the engine's config is the default (learning 48 h and 200
// calls, 5-minute windows, threshold 3, persistence 3, …), storage memory.
//
// The traffic, per role (seeded; see `buildRoles`):
// - entry roles (depth 0) invoked by users, Poisson counts per window around a daily rhythm in
//   the role's own time zone (quiet nights, a morning ramp, a lunch dip, busy afternoons, an
//   evening tail; 30% of the weekday level on Saturdays and Sundays; the day's schedule shifted by
//   up to ±30 min; a day-level and an hour-level factor on top of Poisson, so counts are
//   overdispersed as real traffic is);
// - workers invoked by other roles at depth 1–3 (each invocation delegates to each of its
//   children with a probability), so their volume follows their callers';
// - each invocation: 1 + Poisson steps (3% of invocations run three times longer), each step a
//   model call (lognormal tokens) and, but the last, a tool call picked by weight among 3–7 core
//   tools; 1–2 rare-but-known tools per role used a few times a day; a rare fallback model and a
//   rare delegation target for some roles; errors on 0.5–3% of tool calls;
// - tool calls that reach HTTP endpoints with ids in their paths (/v1/orders/123, /customers/<uuid>,
//   /files/<sha1>, ?query strings): the engine must template them (/v1/orders/{id});
// - MCP calls (server + method) for some roles.
//
// Counted: every novelty the engine returns once a role is past learning (baseline_new_tool,
// baseline_new_endpoint for endpoints and MCP, baseline_new_delegation; new models are learnt, not
// reported — shown apart), and every volume finding (onVolume). Per role per day = findings ÷ the
// role-days after each role's learning ended (24 h after it was first seen and its 200th call).
//
// Injected, after learning, into three roles: (a) a tool the role never used, (b) 5× its
// invocations for 40 minutes (8 windows, ≥ 30 min), (c) 5× for a single window. Expected: (a) and
// (b) found, (c) not. What those injections cause is left out of the false-positive count.
//
//   node bench/baseline-week.ts                        about 25 s
//   BENCH_WEEK_ROLES (50)  BENCH_WEEK_DAYS (7)  BENCH_WEEK_SEED (5)
//   BENCH_WEEK_START       the first day (UTC midnight, YYYY-MM-DD; default 2026-11-04, a Wednesday)
//   BENCH_WEEK_VARIANTS=1  also (about 15 minutes more): every start day of the week, learning.period
//                          48h, a Saturday start over 14 days, a daily burst in 3 roles, prefixed
//                          ids and dates in paths
import { fileURLToPath } from 'node:url';
import { Baselines, type Call, type Novelty, type ObservationRef, type VolumeAnomaly } from '../src/baseline/baselines.ts';
import { BaselinesConfig } from '../src/baseline/config.ts';
import { endpointKey } from '../src/baseline/endpoint.ts';
import { MemoryStore } from '../src/baseline/store.ts';
import { Rng } from '../demo/agents.ts';
import { formatTable } from './report.ts';
import { envNumber } from './env.ts';
import { runMain } from './main.ts';

const MIN = 60_000;
const HOUR = 60 * MIN;
const DAY = 24 * HOUR;

// ---------------------------------------------------------------------------------- randomness

function poisson(rng: Rng, lambda: number): number {
  if (lambda <= 0) return 0;
  if (lambda < 30) {
    const l = Math.exp(-lambda);
    let k = 0;
    let p = 1;
    do {
      k++;
      p *= rng.next();
    } while (p > l);
    return k - 1;
  }
  return Math.max(0, Math.round(lambda + Math.sqrt(lambda) * gauss(rng)));
}

function gauss(rng: Rng): number {
  const u = Math.max(rng.next(), 1e-12);
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rng.next());
}

/** A multiplicative factor around 1 (lognormal, median 1). */
const lognormal = (rng: Rng, sigma: number) => Math.exp(sigma * gauss(rng));

// ---------------------------------------------------------------------------------- the roles

/** What a tool call reaches, when it reaches an HTTP endpoint. */
interface EndpointFamily {
  host: string;
  method: string;
  /** A concrete path, ids drawn fresh (`time`: the call's, ms). */
  path(rng: Rng, time: number): string;
}

interface ToolSpec {
  name: string;
  weight: number;
  endpoint?: EndpointFamily;
  /** `server method` of an MCP call. */
  mcp?: string;
}

interface ChildSpec {
  role: RoleSpec;
  /** Probability per invocation of the parent. */
  p: number;
}

interface RoleSpec {
  name: string;
  /** The depth it is usually invoked at (0: by users). */
  tier: number;
  /** Entry roles: invocations per 5-minute window at the busiest hour of a weekday. */
  peak: number;
  /** Hours its users' day is shifted from UTC. */
  tz: number;
  /** Mean model steps per invocation. */
  steps: number;
  tools: ToolSpec[];
  /** Rare-but-known tools: probability per invocation. */
  rare: { tool: ToolSpec; p: number }[];
  model: string;
  /** A fallback model, used on a few calls (or none). */
  fallback: { model: string; p: number } | undefined;
  errorRate: number;
  children: ChildSpec[];
  /** A rarely used delegation target. */
  rareChild: ChildSpec | undefined;
  /** A burst at the same time each day (a scheduled run), in local hours: [start, minutes, factor]. */
  burst?: [number, number, number];
  /** Expected invocations per weekday (computed). */
  perDay: number;
}

const HEX = (rng: Rng, n: number) => rng.hex(n);
const uuid = (rng: Rng) => `${HEX(rng, 8)}-${HEX(rng, 4)}-4${HEX(rng, 3)}-a${HEX(rng, 3)}-${HEX(rng, 12)}`;
const WORDS = ['pricing', 'refund', 'delivery', 'warranty', 'invoice', 'login', 'outage', 'upgrade', 'contract', 'renewal'];

/** Endpoint families whose ids the engine templates: numbers, UUIDs, hashes, query strings. */
const ENDPOINTS: Record<string, EndpointFamily> = {
  get_order: { host: 'orders.corp.internal', method: 'GET', path: (r) => `/v1/orders/${r.int(1, 9_999_999)}` },
  update_order: { host: 'orders.corp.internal', method: 'PATCH', path: (r) => `/v1/orders/${r.int(1, 9_999_999)}/status` },
  list_orders: { host: 'orders.corp.internal', method: 'GET', path: (r) => `/v1/customers/${r.int(1, 999_999)}/orders?page=${r.int(1, 9)}` },
  get_customer: { host: 'crm.corp.internal', method: 'GET', path: (r) => `/api/customers/${uuid(r)}` },
  customer_notes: { host: 'crm.corp.internal', method: 'GET', path: (r) => `/api/customers/${uuid(r)}/notes/${r.int(1, 99_999)}` },
  fetch_file: { host: 'files.corp.internal', method: 'GET', path: (r) => `/files/${HEX(r, 40)}` },
  search_kb: { host: 'kb.corp.internal', method: 'GET', path: (r) => `/search?q=${r.pick(WORDS)}+${r.pick(WORDS)}` },
  create_ticket: { host: 'tickets.corp.internal', method: 'POST', path: () => '/v2/tickets' },
  get_ticket: { host: 'tickets.corp.internal', method: 'GET', path: (r) => `/v2/tickets/${r.int(100_000, 999_999)}` },
  comment_ticket: { host: 'tickets.corp.internal', method: 'POST', path: (r) => `/v2/tickets/${r.int(100_000, 999_999)}/comments` },
  get_invoice: { host: 'billing.corp.internal', method: 'GET', path: (r) => `/invoices/${r.int(10_000, 99_999)}/pdf` },
  geocode: { host: 'maps.example.com', method: 'GET', path: (r) => `/geocode/json?address=${r.int(1, 999)}+main+st` },
  weather: { host: 'api.weather.example', method: 'GET', path: (r) => `/v3/forecast/${r.int(10_000, 99_999)}` },
};

/**
 * Endpoint families with ids that are not plain numbers, UUIDs or hashes (BENCH_WEEK_VARIANTS):
 * prefixed ids (ch_…, kb-12345, INV-2026-0042) and today's date. Were they not templated, each new
 * one would be a new endpoint (a date: one a day per role).
 */
const PREFIXED: Record<string, EndpointFamily> = {
  kb_article: { host: 'kb.corp.internal', method: 'PUT', path: (r) => `/api/articles/kb-${r.int(10_000, 99_999)}` },
  stripe_charge: { host: 'payments.corp.internal', method: 'GET', path: (r) => `/v1/charges/ch_${r.int(100, 999)}${HEX(r, 6)}` },
  daily_report: { host: 'reports.corp.internal', method: 'GET', path: (_, t) => `/daily/${new Date(t).toISOString().slice(0, 10)}` },
  invoice_no: { host: 'billing.corp.internal', method: 'GET', path: (r) => `/invoices/INV-2026-${String(r.int(1, 9999)).padStart(4, '0')}` },
};

const PLAIN_TOOLS = ['summarize', 'classify_intent', 'translate', 'extract_entities', 'draft_reply', 'calculator', 'lookup_policy', 'format_table', 'sentiment', 'dedupe', 'plan_steps', 'check_eligibility'];
const MCP_SERVERS = ['mcp.github.corp.internal', 'mcp.jira.corp.internal', 'mcp.drive.corp.internal'];
const MODELS = ['gpt-4.1', 'gpt-4.1-mini', 'claude-sonnet-4', 'gemini-2.5-flash'];

export interface TrafficTraits {
  /** A daily 15-minute burst (4×) on top of daytime traffic, for a few roles. */
  dailyBurst: boolean;
  /** Endpoint families with prefixed ids and dates in their paths. */
  prefixedIds: boolean;
}

export function buildRoles(count: number, seed: number, traits: TrafficTraits, scale = 1): RoleSpec[] {
  const rng = new Rng(seed);
  const tiers = [Math.max(3, Math.round(count * 0.24)), Math.round(count * 0.4), Math.round(count * 0.24)];
  tiers.push(Math.max(0, count - tiers[0]! - tiers[1]! - tiers[2]!));
  const roles: RoleSpec[] = [];
  const endpointTools = Object.keys(ENDPOINTS);
  const prefixed = Object.keys(PREFIXED);
  let n = 0;
  for (let tier = 0; tier < tiers.length; tier++) {
    for (let i = 0; i < tiers[tier]!; i++) {
      const name = `${['desk', 'worker', 'helper', 'tool'][tier]}-${String(++n).padStart(2, '0')}`;
      const toolCount = rng.int(3, 7);
      const names = rng.sample([...endpointTools, ...PLAIN_TOOLS], toolCount + 2);
      const mk = (t: string): ToolSpec => ({ name: t, weight: 0, ...(ENDPOINTS[t] ? { endpoint: ENDPOINTS[t] } : {}) });
      const tools = names.slice(0, toolCount).map(mk);
      // Zipf-like weights: a few tools most of the time.
      tools.forEach((t, k) => (t.weight = 1 / (k + 1)));
      if (rng.chance(0.3)) {
        const server = rng.pick(MCP_SERVERS);
        tools.push({ name: `mcp_${server.split('.')[1]}`, weight: 0.3, mcp: `${server} tools/call` });
        if (rng.chance(0.5)) tools.push({ name: `mcp_${server.split('.')[1]}_read`, weight: 0.1, mcp: `${server} resources/read` });
      }
      if (traits.prefixedIds && rng.chance(0.25)) {
        const t = rng.pick(prefixed);
        tools.push({ name: t, weight: 0.4, endpoint: PREFIXED[t] });
      }
      const rare = names.slice(toolCount, toolCount + rng.int(1, 2)).map((t) => ({ tool: mk(t), p: 0 }));
      const model = rng.pick(MODELS);
      roles.push({
        name,
        tier,
        peak: tier === 0 ? scale * Math.round(2 + 40 * rng.next() ** 2) : 0,
        tz: rng.pick([0, 0, 0, 1, -5, 8]),
        steps: 2 + 5 * rng.next(),
        tools,
        rare,
        model,
        fallback: rng.chance(0.4) ? { model: rng.pick(MODELS.filter((m) => m !== model)), p: 0.002 } : undefined,
        errorRate: 0.005 + 0.025 * rng.next(),
        children: [],
        rareChild: undefined,
        perDay: 0,
      });
    }
  }
  // Delegations: each role below the entry tier gets one to three callers one tier up (depth 1–3).
  const byTier = (t: number) => roles.filter((r) => r.tier === t);
  for (let tier = 1; tier < tiers.length; tier++) {
    const above = byTier(tier - 1);
    for (const r of byTier(tier)) {
      for (const parent of rng.sample(above, rng.int(1, Math.min(3, above.length)))) parent.children.push({ role: r, p: 0.2 + 0.6 * rng.next() });
    }
  }
  // Some roles sometimes call a role of a deeper tier they do not usually call.
  for (const r of roles) {
    const deeper = roles.filter((x) => x.tier > r.tier && !r.children.some((c) => c.role === x));
    if (deeper.length > 0 && rng.chance(0.3)) r.rareChild = { role: rng.pick(deeper), p: 0 };
  }
  if (traits.dailyBurst) {
    for (const r of rng.sample(byTier(0), Math.min(3, byTier(0).length))) r.burst = [rng.pick([9, 11, 14, 16]), 15, 4];
  }
  // Expected invocations per weekday, top-down, for the rare things' probabilities.
  const dayMass = Array.from({ length: 288 }, (_, w) => activity((w * 5) / 60)).reduce((a, b) => a + b, 0);
  for (const r of byTier(0)) r.perDay = r.peak * dayMass;
  for (let tier = 0; tier < tiers.length; tier++) for (const r of byTier(tier)) for (const c of r.children) c.role.perDay += r.perDay * c.p;
  for (const r of roles) {
    // Rare-but-known: 1 to 6 times on a weekday.
    for (const x of r.rare) x.p = Math.min(0.2, rng.int(1, 6) / Math.max(1, r.perDay));
    if (r.rareChild) r.rareChild.p = Math.min(0.2, rng.int(1, 4) / Math.max(1, r.perDay));
  }
  return roles;
}

/** Share of the peak rate at a local hour of a weekday (0–24). */
export function activity(hour: number): number {
  const h = ((hour % 24) + 24) % 24;
  if (h < 6) return 0.04;
  if (h < 9) return 0.04 + ((h - 6) / 3) * 0.96;
  if (h < 12) return 1;
  if (h < 13) return 0.75;
  if (h < 17) return 1;
  if (h < 20) return 1 - ((h - 17) / 3) * 0.8;
  return 0.2 - ((h - 20) / 4) * 0.16;
}

// ---------------------------------------------------------------------------------- the run

export interface Injection {
  kind: 'new_tool' | 'sustained_5x' | 'single_window_5x';
  role: string;
  from: number;
  to: number;
  /** (a) the tool injected. */
  tool?: string;
  /** Found: a finding the injection caused. */
  found: boolean;
  /** What was expected. */
  expected: boolean;
  detail: string;
}

export interface WeekFinding {
  role: string;
  kind: 'baseline_new_tool' | 'baseline_new_endpoint' | 'baseline_new_delegation' | 'baseline_volume' | 'new_model (not reported)';
  /** The dimension's value, or the volume feature. */
  what: string;
  time: number;
  injected: boolean;
  /** Volume: the values, the median and the threshold. */
  detail?: string;
}

export interface WeekOptions {
  roles: number;
  days: number;
  seed: number;
  /** The first day, UTC midnight (ms). */
  start: number;
  /** Config overrides (the engine's defaults otherwise). */
  config?: Record<string, unknown>;
  inject: boolean;
  traits?: Partial<TrafficTraits>;
  /** Multiplies every entry role's rate (default 1): less traffic, a faster run. */
  scale?: number;
}

export interface WeekResult {
  options: WeekOptions;
  roles: number;
  /** Role-days after each role's learning ended (the denominator). */
  roleDays: number;
  findings: WeekFinding[];
  /** Findings counted as false positives (not caused by an injection; new models left out). */
  falsePositives: WeekFinding[];
  perRolePerDay: number;
  injections: Injection[];
  observations: { invocations: number; calls: number; delegations: number; windows: number };
  /** When each role became ready, as days after the start (min, median, max). */
  readyAfterDays: [number, number, number];
  runtimeMs: number;
}

export async function simulateWeek(opts: WeekOptions): Promise<WeekResult> {
  const started = performance.now();
  const traits: TrafficTraits = { dailyBurst: false, prefixedIds: false, ...opts.traits };
  const cfg = BaselinesConfig.parse({ storage: 'memory', ...opts.config });
  const roles = buildRoles(opts.roles, opts.seed, traits, opts.scale ?? 1);
  const rng = new Rng(opts.seed * 7919 + 1);
  const volume: VolumeAnomaly[] = [];
  const engine = new Baselines(cfg, { store: new MemoryStore(), onVolume: (a) => volume.push(a) });
  await engine.start();

  const findings: WeekFinding[] = [];
  const novelties: Novelty[] = [];
  const calls = new Map<string, number>();
  const firstSeen = new Map<string, number>();
  const readyAt = new Map<string, number>();
  const counts = { invocations: 0, calls: 0, delegations: 0, windows: 0 };
  const windowMs = cfg.window;
  const windows = Math.round((opts.days * DAY) / windowMs);
  const end = opts.start + windows * windowMs;

  // Injections, after learning (day 2 on), in daytime, into entry roles busy enough to judge.
  const entry = roles.filter((r) => r.tier === 0).sort((a, b) => b.peak - a.peak);
  const injections: Injection[] = [];
  if (opts.inject && entry.length >= 3 && opts.days >= 3) {
    const at = (day: number, hour: number, r: RoleSpec) => opts.start + day * DAY + (hour - r.tz) * HOUR;
    const [a, b, c] = [entry[2]!, entry[0]!, entry[1]!];
    // Weekdays (in the role's own time) after the first day: busy traffic to stand out from.
    const weekdays: number[] = [];
    for (let d = 1; d < opts.days; d++) if (![0, 6].includes(new Date(opts.start + d * DAY + 12 * HOUR).getUTCDay())) weekdays.push(d);
    const pickDay = (k: number) => weekdays.length > 0 ? weekdays[Math.min(k, weekdays.length - 1)]! : opts.days - 1;
    const dayA = pickDay(2), dayB = pickDay(3), dayC = pickDay(1);
    injections.push({ kind: 'new_tool', role: a.name, from: at(dayA, 14, a), to: at(dayA, 14, a) + 10 * MIN, tool: 'export_all_customers', found: false, expected: true, detail: '' });
    injections.push({ kind: 'sustained_5x', role: b.name, from: at(dayB, 14, b), to: at(dayB, 14, b) + 40 * MIN, found: false, expected: true, detail: '' });
    injections.push({ kind: 'single_window_5x', role: c.name, from: at(dayC, 10, c), to: at(dayC, 10, c) + windowMs, found: false, expected: false, detail: '' });
    // Aligned to windows.
    for (const j of injections) {
      j.from = Math.floor(j.from / windowMs) * windowMs;
      j.to = Math.ceil(j.to / windowMs) * windowMs;
    }
  }
  const multiplier = (role: string, t: number) => {
    for (const j of injections) if (j.role === role && j.kind !== 'new_tool' && t >= j.from && t < j.to) return 5;
    return 1;
  };

  const record = (time: number) => {
    for (const n of novelties) {
      const kind = n.dimension === 'tool' ? 'baseline_new_tool' : n.dimension === 'delegation' ? 'baseline_new_delegation' : n.dimension === 'model' ? 'new_model (not reported)' : 'baseline_new_endpoint';
      const injected = injections.some((j) => j.kind === 'new_tool' && j.role === n.role && j.tool === n.value);
      findings.push({ role: n.role, kind, what: `${n.dimension}: ${n.value}`, time, injected });
    }
    novelties.length = 0;
  };

  const countCall = (role: string, time: number) => {
    counts.calls++;
    const c = (calls.get(role) ?? 0) + 1;
    calls.set(role, c);
    if (!readyAt.has(role) && c >= cfg.learning.min_observations && time - firstSeen.get(role)! >= cfg.learning.period) readyAt.set(role, time);
  };

  let convs = 0;
  const invoke = (r: RoleSpec, depth: number, t: number, ref: ObservationRef, injectTool: string | undefined): number => {
    if (!firstSeen.has(r.name)) firstSeen.set(r.name, t);
    counts.invocations++;
    engine.observeInvocation(r.name, t, depth, ref);
    let steps = 1 + poisson(rng, r.steps - 1);
    if (rng.chance(0.03)) steps *= 3;
    if (injectTool) steps = Math.max(steps, 2);
    let time = t + rng.int(50, 500);
    const totalWeight = r.tools.reduce((s, x) => s + x.weight, 0);
    for (let s = 0; s < steps; s++) {
      // A model call.
      const model = r.fallback && rng.chance(r.fallback.p) ? r.fallback.model : r.model;
      const tokens = Math.round(1500 * lognormal(rng, 0.7));
      engine.observeCall(r.name, time, { model, counts: true, error: rng.chance(0.002), tokens }, ref, novelties);
      countCall(r.name, time);
      record(time);
      time += rng.int(300, 4000);
      if (s === steps - 1) break;
      // A tool call: a rare one now and then, else by weight.
      let tool: ToolSpec | undefined;
      for (const x of r.rare) if (rng.chance(x.p / Math.max(1, steps - 1))) tool = x.tool;
      if (!tool) {
        let pick = rng.next() * totalWeight;
        for (const x of r.tools) if ((pick -= x.weight) <= 0 || x === r.tools[r.tools.length - 1]) {
          tool = x;
          break;
        }
      }
      if (injectTool && s === 0) tool = { name: injectTool, weight: 0 };
      const call: Call = { tool: tool!.name, counts: true, error: rng.chance(r.errorRate), tokens: 0 };
      if (tool!.endpoint) call.endpoint = endpointKey(tool!.endpoint.host, tool!.endpoint.method, tool!.endpoint.path(rng, time));
      if (tool!.mcp) call.mcp = tool!.mcp;
      engine.observeCall(r.name, time, call, ref, novelties);
      countCall(r.name, time);
      record(time);
      time += rng.int(100, 3000);
    }
    // Delegations: to each child with its probability; to the rare child now and then.
    const children = r.children.filter((c) => rng.chance(c.p));
    if (r.rareChild && rng.chance(r.rareChild.p)) children.push(r.rareChild);
    for (const c of children) {
      const ct = t + rng.int(500, 20_000);
      counts.delegations++;
      engine.observeDelegation(r.name, c.role.name, ct, ref, novelties);
      record(ct);
      invoke(c.role, depth + 1, ct, ref, undefined);
    }
    return time;
  };

  // Day-level and hour-level factors per role (overdispersion), the day's schedule shift.
  const dayFactor = new Map<string, number>();
  const hourFactor = new Map<string, number>();
  const shift = new Map<string, number>();
  for (let w = 0; w < windows; w++) {
    const ws = opts.start + w * windowMs;
    if ((ws - opts.start) % DAY === 0) for (const r of roles) {
      dayFactor.set(r.name, lognormal(rng, 0.1));
      shift.set(r.name, (rng.next() - 0.5) * 1);
    }
    if ((ws - opts.start) % HOUR === 0) for (const r of roles) hourFactor.set(r.name, lognormal(rng, 0.15));
    for (const r of entry) {
      const localMs = ws + (r.tz + shift.get(r.name)!) * HOUR;
      const hour = (localMs % DAY) / HOUR;
      const weekday = new Date(localMs).getUTCDay();
      let rate = r.peak * activity(hour) * (weekday === 0 || weekday === 6 ? 0.3 : 1) * dayFactor.get(r.name)! * hourFactor.get(r.name)!;
      if (r.burst && weekday !== 0 && weekday !== 6) {
        const [h0, minutes, factor] = r.burst;
        const localHour = ((ws + r.tz * HOUR) % DAY) / HOUR;
        if (localHour >= h0 && localHour < h0 + minutes / 60) rate *= factor;
      }
      rate *= multiplier(r.name, ws);
      const inj = injections.find((j) => j.kind === 'new_tool' && j.role === r.name && ws >= j.from && ws < j.to);
      // The injected tool is called in the first two invocations of its windows (there are some).
      const k = Math.max(poisson(rng, rate), inj ? 2 : 0);
      for (let i = 0; i < k; i++) {
        const t = ws + Math.floor(rng.next() * windowMs);
        const conv = `conv-${++convs}`;
        invoke(r, 0, t, { traceId: conv, spanId: r.name, conversation: conv }, inj && i < 2 ? inj.tool : undefined);
      }
    }
    counts.windows++;
    await engine.sync();
  }
  // Volume findings, attributed: the injected role's, and those of the roles it delegates to
  // (their volume follows their callers'), over the injection and the windows persistence needs.
  const below = (name: string): Set<string> => {
    const out = new Set<string>([name]);
    const walk = (r: RoleSpec) => {
      for (const c of [...r.children, ...(r.rareChild ? [r.rareChild] : [])]) if (!out.has(c.role.name)) (out.add(c.role.name), walk(c.role));
    };
    walk(roles.find((r) => r.name === name)!);
    return out;
  };
  const affected = new Map(injections.map((j) => [j, below(j.role)]));
  for (const v of volume) {
    const j = injections.find((x) => x.kind !== 'new_tool' && affected.get(x)!.has(v.role) && v.from < x.to + cfg.volume.persistence * windowMs && v.to > x.from);
    findings.push({ role: v.role, kind: 'baseline_volume', what: v.feature, time: v.from, injected: j !== undefined, detail: `${v.values.join('/')} > ${v.threshold} (median ${v.median}, ${v.historyWindows} windows)` });
  }
  for (const j of injections) {
    if (j.kind === 'new_tool') {
      const f = findings.filter((x) => x.injected && x.role === j.role && x.kind === 'baseline_new_tool');
      j.found = f.length > 0;
      j.detail = `${f.length} baseline_new_tool for ${j.tool}${f.length ? `, ${Math.round((f[0]!.time - j.from) / 1000)} s after the first call window opened` : ''}`;
    } else {
      const f = volume.filter((v) => v.role === j.role && v.from < j.to + cfg.volume.persistence * windowMs && v.to > j.from);
      j.found = f.length > 0;
      j.detail = f.length
        ? f.map((v) => `${v.feature} ${v.values.join('/')} > ${v.threshold} (median ${v.median}), reported ${Math.round((v.to - j.from) / MIN)} min after it began`).join('; ')
        : 'no volume finding';
    }
  }
  const falsePositives = findings.filter((f) => !f.injected && f.kind !== 'new_model (not reported)');
  let roleDays = 0;
  const readyDays: number[] = [];
  for (const r of roles) {
    const at = readyAt.get(r.name);
    if (at === undefined) continue;
    roleDays += (end - at) / DAY;
    readyDays.push((at - opts.start) / DAY);
  }
  readyDays.sort((a, b) => a - b);
  await engine.close();
  return {
    options: opts,
    roles: roles.length,
    roleDays,
    findings,
    falsePositives,
    perRolePerDay: roleDays > 0 ? falsePositives.length / roleDays : NaN,
    injections,
    observations: counts,
    readyAfterDays: [readyDays[0] ?? NaN, readyDays[readyDays.length >> 1] ?? NaN, readyDays[readyDays.length - 1] ?? NaN],
    runtimeMs: performance.now() - started,
  };
}

// ---------------------------------------------------------------------------------- output

/** Findings by kind and by what (dimension or feature), with counts. */
export function breakdown(fs: readonly WeekFinding[]): { kind: string; what: string; n: number; roles: number }[] {
  const rows = new Map<string, { kind: string; what: string; n: number; roles: Set<string> }>();
  for (const f of fs) {
    const what = f.kind === 'baseline_volume' ? f.what : f.what.split(':')[0]!;
    const key = `${f.kind}\u0000${what}`;
    let row = rows.get(key);
    if (!row) rows.set(key, (row = { kind: f.kind, what, n: 0, roles: new Set() }));
    row.n++;
    row.roles.add(f.role);
  }
  return [...rows.values()].sort((a, b) => b.n - a.n).map((r) => ({ kind: r.kind, what: r.what, n: r.n, roles: r.roles.size }));
}

const TARGET = 0.1;

/** False positives per day of the run (day 0 the first). */
export function byDay(r: WeekResult): number[] {
  const out = new Array<number>(r.options.days).fill(0);
  for (const f of r.falsePositives) out[Math.min(r.options.days - 1, Math.floor((f.time - r.options.start) / DAY))]!++;
  return out;
}
const fixed = (n: number, d = 3) => (Number.isFinite(n) ? n.toFixed(d) : '—');
const dayName = (ms: number) => new Date(ms).toUTCString().slice(0, 3);

function printResult(r: WeekResult, title: string): void {
  const o = r.observations;
  console.log(`\n${title}`);
  console.log(
    `${r.roles} roles × ${r.options.days} days from ${new Date(r.options.start).toISOString().slice(0, 10)} (${dayName(r.options.start)}), seed ${r.options.seed}: ` +
      `${o.invocations.toLocaleString('en')} invocations, ${o.calls.toLocaleString('en')} calls, ${o.delegations.toLocaleString('en')} delegations, ${o.windows} windows synced; ` +
      `roles ready after ${fixed(r.readyAfterDays[0], 2)}/${fixed(r.readyAfterDays[1], 2)}/${fixed(r.readyAfterDays[2], 2)} days (min/median/max); ${fixed(r.roleDays, 1)} role-days after learning; run ${fixed(r.runtimeMs / 1000, 1)} s`,
  );
  console.log(
    `false positives: ${r.falsePositives.length} → ${fixed(r.perRolePerDay)} per role per day (target ≤ ${TARGET}: ${r.perRolePerDay <= TARGET ? 'met' : 'NOT met'})`,
  );
  console.log(`false positives by day (day 0 = the first, learning): ${byDay(r).join(', ')}`);
  const rows = breakdown(r.findings.filter((f) => !f.injected));
  if (rows.length > 0) {
    console.log(formatTable(['kind', 'dimension / feature', 'findings', 'roles', 'per role per day'], rows.map((x) => [x.kind, x.what, String(x.n), String(x.roles), x.kind.startsWith('new_model') ? '(not reported)' : fixed(x.n / r.roleDays)])));
  }
  const examples = [...r.falsePositives.filter((f) => f.kind === 'baseline_volume'), ...r.falsePositives.filter((f) => f.kind !== 'baseline_volume')].slice(0, 10);
  if (examples.length > 0) console.log(`false positives, e.g.: ${examples.map((f) => `${f.role} ${f.kind} ${f.what}${f.detail ? ` ${f.detail}` : ''} at ${new Date(f.time).toISOString().slice(5, 16)} ${dayName(f.time)}`).join('; ')}`);
  if (r.injections.length > 0) {
    console.log(
      formatTable(
        ['injection', 'role', 'when (UTC)', 'expected', 'found', 'ok', 'detail'],
        r.injections.map((j) => [
          { new_tool: '(a) a new tool', sustained_5x: '(b) 5× for 40 min', single_window_5x: '(c) 5× for one window' }[j.kind],
          j.role,
          `${new Date(j.from).toISOString().slice(5, 16)}–${new Date(j.to).toISOString().slice(11, 16)}`,
          j.expected ? 'yes' : 'no',
          j.found ? 'yes' : 'no',
          j.found === j.expected ? 'ok' : 'WRONG',
          j.detail,
        ]),
      ),
    );
  }
}

async function main(): Promise<void> {
  const roles = envNumber('BENCH_WEEK_ROLES', 50);
  const days = envNumber('BENCH_WEEK_DAYS', 7);
  const seed = envNumber('BENCH_WEEK_SEED', 5);
  const start = Date.parse(`${process.env.BENCH_WEEK_START ?? '2026-11-04'}T00:00:00Z`);
  if (!Number.isFinite(start)) throw new Error('BENCH_WEEK_START must be YYYY-MM-DD');
  const cfg = BaselinesConfig.parse({});
  console.log(
    `\nbaselines over a simulated week: the engine (src/baseline/baselines.ts) with its default config — learning ${cfg.learning.period / HOUR} h and ${cfg.learning.min_observations} calls, ` +
      `window ${cfg.window / MIN} min, lateness ${cfg.lateness / MIN} min, threshold ${cfg.volume.threshold}, relative floor ${cfg.volume.relative_floor}, persistence ${cfg.volume.persistence}, ` +
      `min calls ${cfg.volume.min_calls}, min invocations ${cfg.volume.min_invocations}, min history ${cfg.volume.min_history}, history ${cfg.volume.history / DAY} d, collapse after ${cfg.endpoints.collapse_after} — ` +
      `storage memory, a sync after each window, node ${process.version}`,
  );
  const main = await simulateWeek({ roles, days, seed, start, inject: true });
  printResult(main, `1. the week: daily rhythm, weekend dip, Poisson-ish counts, rare-but-known tools, delegations at depth 1–3, ids in paths`);

  if (process.env.BENCH_WEEK_VARIANTS === '1') {
    const variants: { label: string; opts: Partial<WeekOptions> }[] = [];
    for (let d = 0; d < 7; d++) {
      const s = Date.UTC(2026, 10, 2 + d);
      variants.push({ label: `start ${dayName(s)}`, opts: { start: s } });
    }
    variants.push({ label: 'learning.period 48h', opts: { config: { learning: { period: '48h' } } } });
    variants.push({ label: 'learning.period 48h, start Sat', opts: { config: { learning: { period: '48h' } }, start: Date.UTC(2026, 10, 7) } });
    variants.push({ label: 'start Sat, 14 days', opts: { start: Date.UTC(2026, 10, 7), days: 14 } });
    variants.push({ label: 'a daily 15-min burst (4×) in 3 roles', opts: { traits: { dailyBurst: true } } });
    variants.push({ label: "prefixed ids and dates in paths (kb-12345, ch_…, INV-…, today's date)", opts: { traits: { prefixedIds: true } } });
    const rows: string[][] = [];
    for (const v of variants) {
      const r = await simulateWeek({ roles, days, seed, start, inject: true, ...v.opts });
      const top = breakdown(r.falsePositives).slice(0, 3).map((x) => `${x.n} ${x.kind.replace('baseline_', '')} ${x.what}`).join(', ');
      const volume = r.falsePositives.filter((f) => f.kind === 'baseline_volume').length;
      rows.push([v.label, String(r.falsePositives.length), String(volume), fixed(r.perRolePerDay), r.perRolePerDay <= TARGET ? 'met' : 'NOT met', r.injections.every((j) => j.found === j.expected) ? 'ok' : 'WRONG', byDay(r).join(','), top || '—', fixed(r.runtimeMs / 1000, 1)]);
    }
    console.log(`\n2. variants (same roles and seed)`);
    console.log(formatTable(['variant', 'false positives', 'of them volume', 'per role per day', `≤ ${TARGET}`, 'injections', 'by day', 'most frequent', 'run s'], rows));
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  runMain('baseline-week bench', main);
}
