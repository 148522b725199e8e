// The baseline engine (DESIGN §5): per role, not per instance, what it uses (tools, endpoints
// as host + path template, MCP methods and servers, delegation targets, models) and how much
// (calls per minute and per invocation, fan-out, depth, error rate, tokens), learnt from what
// the detectors report as final. Synchronous on the hot path (maps in memory); `sync` writes the
// delta to the store, reads the merged state back when replicas share it, and judges the
// windows that closed.
//
// Novelty: once a role has learnt (learning.period since it was first seen, and
// learning.min_observations calls), a value first seen is new; it is learnt at once, so it is
// reported once (per replica, at most once per sync interval when replicas share a store).
//
// Volume: each window (of the spans' own time) gives one value per feature. A window is high
// when its value is above median + threshold × max(1.4826·MAD, relative_floor·median, floor) of
// the past windows (the same time of day ±1 h on earlier days once there are enough of them,
// for the daily rhythm; else all of them), with a minimum count; `persistence` high windows in
// a row make one finding (one-sided: only more is suspicious). Replicas judge the same merged
// windows; a store claim makes one of them report it.
import type { BaselinesConfig } from './config.ts';
import type { BaselineStore } from './store.ts';
import { EndpointSet } from './endpoint.ts';
import {
  convHash, countItem, countTotals, touchItem, DIMENSIONS, emptyData, emptyWindow, itemKey, mergeData, splitItemKey, splitWindowKey, windowKey,
  type BaselineData, type Dimension, type Item, type RoleTotals, type WindowAgg,
} from './profile.ts';

export const FEATURES = ['calls_per_minute', 'calls_per_invocation', 'fan_out', 'depth', 'error_rate', 'tokens_per_invocation'] as const;
export type Feature = (typeof FEATURES)[number];

/** The smallest spread a feature's baseline is given (a flat history is not a zero-width band). */
const ABSOLUTE_FLOOR: Record<Feature, number> = {
  calls_per_minute: 1, calls_per_invocation: 1, fan_out: 1, depth: 1, error_rate: 0.05, tokens_per_invocation: 200,
};

/** Where an observation was seen: the exemplar a finding points to. */
export interface ObservationRef {
  traceId: string;
  spanId: string;
  /** gen_ai.conversation.id, else the trace id. */
  conversation: string;
}

export interface Call {
  tool?: string;
  /** endpointKey(host, method, path) */
  endpoint?: string;
  /** `server method` of an MCP call. */
  mcp?: string;
  model?: string;
  /** Counted as a call (tool, model or MCP call), not only a destination. */
  counts: boolean;
  error: boolean;
  tokens: number;
}

export interface Novelty {
  role: string;
  dimension: Dimension;
  value: string;
  /** How many values of that dimension the role had learnt. */
  known: number;
}

export interface VolumeAnomaly {
  role: string;
  feature: Feature;
  /** The high windows, in the spans' time (ms). */
  from: number;
  to: number;
  values: number[];
  median: number;
  threshold: number;
  historyWindows: number;
  exemplar: ObservationRef;
}

export type LearningState = 'learning' | 'ready';

export interface RoleSummary {
  role: string;
  state: LearningState;
  first_seen: string;
  last_seen: string;
  calls: number;
  invocations: number;
  learning: { since: string; until: string; calls: number; min_calls: number };
}

interface Streak {
  count: number;
  from: number;
  values: number[];
  reported: boolean;
}

interface RoleRuntime {
  endpoints: EndpointSet;
  /** Last window judged. */
  judged: number;
  streaks: Map<Feature, Streak>;
  exemplar: ObservationRef | undefined;
}

export interface BaselinesOptions {
  store: BaselineStore;
  /** A volume finding (claimed by this replica). */
  onVolume?: (a: VolumeAnomaly) => void;
  onSyncError?: (err: unknown) => void;
}

export class Baselines {
  readonly cfg: BaselinesConfig;
  readonly store: BaselineStore;
  /** What is known: the store's state plus what was observed here since. */
  readonly #view: BaselineData = emptyData();
  /** Observed here since the last flush. */
  #delta: BaselineData = emptyData();
  readonly #runtime = new Map<string, RoleRuntime>();
  readonly #onVolume: ((a: VolumeAnomaly) => void) | undefined;
  readonly #onSyncError: ((err: unknown) => void) | undefined;
  /** The spans' time: the latest observed, advanced by wall time while nothing arrives. */
  #clock = 0;
  #wallAtClock = 0;
  #syncing: Promise<void> | undefined;
  /** Windows before these are gone from the view, and from the store. */
  #viewPruned = 0;
  #storePruned = 0;
  /** The state was read from the store once: later reads of a shared store take only recent windows. */
  #loaded = false;
  #readClock = 0;
  #lastConv = '';
  #lastConvHash = '';

  /** Windows in a day, in an hour, and in volume.history. */
  readonly #perDay: number;
  readonly #perHour: number;
  readonly #historyWindows: number;

  constructor(cfg: BaselinesConfig, opts: BaselinesOptions) {
    this.cfg = cfg;
    this.#perDay = Math.round(86_400_000 / cfg.window);
    this.#perHour = Math.round(3_600_000 / cfg.window);
    this.#historyWindows = Math.ceil(cfg.volume.history / cfg.window);
    this.store = opts.store;
    this.#onVolume = opts.onVolume;
    this.#onSyncError = opts.onSyncError;
  }

  /** Opens the store and loads what it kept. */
  async start(): Promise<void> {
    await this.store.open();
    const loaded = await this.store.load(0);
    this.#replaceView(loaded, 0);
    this.#loaded = true;
    this.#readClock = this.#clock;
    // Windows already in the store were judged by whoever wrote them, up to the last one, which
    // may still have been open (judged again; the store's claim keeps a finding from repeating).
    for (const [role, t] of this.#view.roles) {
      this.#rt(role).judged = this.windowOf(t.last) - 1;
      // The spans' time resumes where the store left it (learning states read right at once).
      if (t.last > this.#clock) this.#clock = t.last;
    }
  }

  windowOf(time: number): number {
    return Math.floor(time / this.cfg.window);
  }

  // ------------------------------------------------------------------ observations (hot path)

  observeInvocation(role: string, time: number, depth: number, ref: ObservationRef): void {
    time = Math.floor(time); // whole milliseconds: what every store keeps
    this.#advance(time);
    const key = windowKey(role, this.windowOf(time));
    countTotals(this.#view, role, time, 0, 1);
    countTotals(this.#delta, role, time, 0, 1);
    addInvocation(windowIn(this.#view, key), depth);
    addInvocation(windowIn(this.#delta, key), depth);
    this.#rt(role).exemplar = ref;
  }

  observeCall(role: string, time: number, call: Call, ref: ObservationRef, out: Novelty[]): void {
    time = Math.floor(time); // whole milliseconds: what every store keeps
    this.#advance(time);
    const ready = this.isReady(role);
    if (call.counts) {
      const key = windowKey(role, this.windowOf(time));
      countTotals(this.#view, role, time, 1, 0);
      countTotals(this.#delta, role, time, 1, 0);
      addCall(windowIn(this.#view, key), call);
      addCall(windowIn(this.#delta, key), call);
      this.#rt(role).exemplar = ref;
    }
    if (call.tool) this.#see(role, 'tool', call.tool, time, ref, ready, out);
    if (call.endpoint) this.#see(role, 'endpoint', call.endpoint, time, ref, ready, out);
    if (call.mcp) this.#see(role, 'mcp', call.mcp, time, ref, ready, out);
    if (call.model) this.#see(role, 'model', call.model, time, ref, ready, out);
  }

  observeDelegation(from: string, to: string, time: number, ref: ObservationRef, out: Novelty[]): void {
    time = Math.floor(time); // whole milliseconds: what every store keeps
    this.#advance(time);
    const ready = this.isReady(from);
    const key = windowKey(from, this.windowOf(time));
    windowIn(this.#view, key).delegations++;
    windowIn(this.#delta, key).delegations++;
    this.#see(from, 'delegation', to, time, ref, ready, out);
  }

  isReady(role: string): boolean {
    const t = this.#view.roles.get(role);
    if (!t) return false;
    return t.calls >= this.cfg.learning.min_observations && this.#clock - t.first >= this.cfg.learning.period;
  }

  #see(role: string, dim: Dimension, raw: string, time: number, ref: ObservationRef, ready: boolean, out: Novelty[]): void {
    // Under a collapsed position, an endpoint is recorded as the position (the profile stays bounded).
    const value = dim === 'endpoint' ? this.#rt(role).endpoints.canonical(raw) : raw;
    const key = itemKey(role, dim, value);
    const conv = this.#convHash(ref.conversation);
    const known = this.#view.items.get(key);
    if (known) touchItem(known, time, conv);
    else {
      if (ready && !(dim === 'endpoint' && value.endsWith('/{*}'))) out.push({ role, dimension: dim, value, known: this.countOf(role, dim) });
      this.#view.items.set(key, { count: 1, first: time, last: time, convs: [conv] });
      if (dim === 'endpoint') this.#rt(role).endpoints.add(value);
    }
    countItem(this.#delta, key, time, conv);
  }

  /** The conversation's hash; a trace's calls come together, so the last one is kept. */
  #convHash(conversation: string): string {
    if (conversation !== this.#lastConv) {
      this.#lastConv = conversation;
      this.#lastConvHash = convHash(conversation);
    }
    return this.#lastConvHash;
  }

  #rt(role: string): RoleRuntime {
    let rt = this.#runtime.get(role);
    if (!rt) {
      rt = { endpoints: new EndpointSet(this.cfg.endpoints.collapse_after, this.cfg.endpoints.protected_prefixes), judged: -1, streaks: new Map(), exemplar: undefined };
      this.#runtime.set(role, rt);
    }
    return rt;
  }

  #advance(time: number): void {
    if (time > this.#clock) {
      this.#clock = time;
      this.#wallAtClock = Date.now();
    }
  }

  // ------------------------------------------------------------------ sync and judging

  /**
   * Writes what was observed since the last sync, reads the merged state back (shared stores),
   * and judges the windows that closed. One at a time; a failed write keeps the delta for the
   * next sync (nothing learnt is lost while the store is away).
   */
  sync(): Promise<void> {
    this.#syncing ??= this.#sync().finally(() => (this.#syncing = undefined));
    return this.#syncing;
  }

  async #sync(): Promise<void> {
    // While nothing arrives, the spans' time moves on with the wall clock (so windows close).
    const wall = Date.now();
    if (this.#wallAtClock > 0 && wall > this.#wallAtClock) {
      this.#clock += wall - this.#wallAtClock;
      this.#wallAtClock = wall;
    }
    const flushing = this.#delta;
    this.#delta = emptyData();
    try {
      await this.store.flush(flushing);
      if (this.store.shared) {
        // Profiles whole; windows only those other replicas may still be adding to (older ones
        // are final and in the view already).
        // Since the clock of the last read, less what replicas may still be late with.
        const clock = this.#clock;
        const from = this.#loaded ? this.windowOf(Math.min(this.#readClock, clock) - this.cfg.lateness - 2 * this.cfg.sync_interval) - 1 : 0;
        const loaded = await this.store.load(from, this.#loaded ? this.windowOf(clock) + 1 : undefined);
        // What arrived while we waited is in the new delta: it stays counted.
        mergeData(loaded, this.#delta);
        this.#replaceView(loaded, from);
        this.#loaded = true;
        this.#readClock = clock;
      }
    } catch (err) {
      // Keep it for the next sync.
      mergeData(flushing, this.#delta);
      this.#delta = flushing;
      this.#onSyncError?.(err);
      return;
    }
    await this.#judgeClosed();
    await this.#prune();
  }

  /** Takes the store's roles and items, and its windows from `fromWindow` on (older ones stay as they are). */
  #replaceView(data: BaselineData, fromWindow: number): void {
    // `data` is a fresh load: its profiles are taken as they are, not copied.
    const had = this.#view.items;
    this.#view.roles = data.roles;
    this.#view.items = data.items;
    for (const k of this.#view.windows.keys()) if (splitWindowKey(k).index >= fromWindow) this.#view.windows.delete(k);
    for (const [k, w] of data.windows) this.#view.windows.set(k, w);
    // Endpoints already in the view were added to their role's set when they came.
    for (const key of data.items.keys()) {
      if (had.has(key)) continue;
      const { role, dim, value } = splitItemKey(key);
      if (dim === 'endpoint') this.#rt(role).endpoints.add(value);
    }
  }

  async #judgeClosed(): Promise<void> {
    if (this.#clock === 0) return; // nothing observed yet: no time to judge by
    const closed = this.windowOf(this.#clock - this.cfg.lateness) - 1;
    for (const role of this.#view.roles.keys()) {
      const rt = this.#rt(role);
      if (rt.judged < 0) rt.judged = closed; // first look at a role: judge from now on
      // A long gap (e.g. a replay far ahead) is judged window by window, at most a day of them.
      const from = Math.max(rt.judged + 1, closed - Math.ceil(86_400_000 / this.cfg.window));
      for (let w = from; w <= closed; w++) await this.#judge(role, rt, w);
      rt.judged = Math.max(rt.judged, closed);
    }
  }

  /** The value of each feature in one window (undefined: too little activity to say). */
  features(agg: WindowAgg | undefined): Partial<Record<Feature, number>> {
    const v = this.cfg.volume;
    const out: Partial<Record<Feature, number>> = {};
    if (!agg) return out;
    if (agg.calls >= v.min_calls) {
      out.calls_per_minute = agg.calls / (this.cfg.window / 60_000);
      out.error_rate = agg.errors / agg.calls;
    }
    if (agg.invocations >= v.min_invocations) {
      out.calls_per_invocation = agg.calls / agg.invocations;
      out.fan_out = agg.delegations / agg.invocations;
      out.depth = agg.depthSum / agg.invocations;
      out.tokens_per_invocation = agg.tokens / agg.invocations;
    }
    return out;
  }

  async #judge(role: string, rt: RoleRuntime, w: number): Promise<void> {
    if (!this.isReady(role)) {
      rt.streaks.clear();
      return;
    }
    const now = this.features(this.#view.windows.get(windowKey(role, w)));
    const bands = this.bands(role, w);
    const slots = this.slotBands(role, w);
    for (const f of FEATURES) {
      const x = now[f];
      const band = bands[f];
      const slot = slots[f];
      // High against the time of day, and against this very slot on earlier days (a burst that
      // recurs daily at the same time is the role's normal).
      if (x === undefined || !band || x <= band.threshold || (slot !== undefined && x <= slot.threshold)) {
        rt.streaks.delete(f);
        continue;
      }
      const s = rt.streaks.get(f) ?? { count: 0, from: w, values: [], reported: false };
      s.count++;
      if (s.values.length < 12) s.values.push(round(x));
      rt.streaks.set(f, s);
      if (s.count < this.cfg.volume.persistence || s.reported) continue;
      s.reported = true;
      // Every replica judges the same merged windows: the first that saw some of it claims and reports.
      if (!rt.exemplar) continue;
      const claimed = await this.store.claim(`volume:${role}:${f}:${s.from}`, this.cfg.volume.history).catch(() => true);
      if (!claimed) continue;
      this.#onVolume?.({
        role, feature: f, from: s.from * this.cfg.window, to: (w + 1) * this.cfg.window, values: [...s.values],
        median: round(band.median), threshold: round(band.threshold), historyWindows: band.n, exemplar: rt.exemplar,
      });
    }
  }

  /**
   * Each feature's band from the same slot (±1 window) on earlier days of the same kind, the
   * slot's highest value per day: at least two such days, or none.
   */
  slotBands(role: string, w: number): Partial<Record<Feature, { median: number; threshold: number; n: number }>> {
    const values = perFeature();
    this.#sameKindDays(w, 0, (at) => {
      const best: Partial<Record<Feature, number>> = {};
      for (let o = -1; o <= 1; o++) {
        const fs = this.features(this.#view.windows.get(windowKey(role, at + o)));
        for (const f of FEATURES) if (fs[f] !== undefined && !(fs[f]! <= (best[f] ?? -Infinity))) best[f] = fs[f];
      }
      for (const f of FEATURES) if (best[f] !== undefined) values[f].push(best[f]!);
    });
    const out: Partial<Record<Feature, { median: number; threshold: number; n: number }>> = {};
    // A few noisy values: their median with one relative floor of headroom (a spread from so few
    // would swallow a real surge); a recurring burst stays within it, a surge beyond it does not.
    for (const f of FEATURES) if (values[f].length >= 2) out[f] = bandOf(values[f], f, this.cfg, 1, false);
    return out;
  }

  /** `fn(w − d·perDay)` for each earlier day d, while d·perDay − reach is within volume.history, that is of w's kind (weekday or weekend). */
  #sameKindDays(w: number, reach: number, fn: (at: number) => void): void {
    const weekend = this.#weekend(w);
    for (let d = 1; d * this.#perDay - reach <= this.#historyWindows; d++) {
      const at = w - d * this.#perDay;
      if (this.#weekend(at) === weekend) fn(at);
    }
  }

  /** Saturday or Sunday (UTC) at the start of window `w`. */
  #weekend(w: number): boolean {
    const day = new Date(w * this.cfg.window).getUTCDay();
    return day === 0 || day === 6;
  }

  /**
   * The learnt band of every feature for window `w`: the same time of day (±1 h) on earlier days
   * of the same kind (weekdays, or weekend days: a role that learnt over a weekend does not judge
   * Monday by Sunday). A role older than a day with too little of that is not judged yet; a
   * younger one (a learning period under a day) is judged by every window it has.
   */
  bands(role: string, w: number): Partial<Record<Feature, { median: number; threshold: number; n: number }>> {
    const span = this.#perHour;
    const values = perFeature();
    const take = (i: number) => {
      const fs = this.features(this.#view.windows.get(windowKey(role, i)));
      for (const f of FEATURES) if (fs[f] !== undefined) values[f].push(fs[f]!);
    };
    this.#sameKindDays(w, span, (at) => {
      for (let o = -span; o <= span; o++) take(at + o);
    });
    const first = this.#view.roles.get(role)?.first ?? 0;
    const young = w * this.cfg.window - first < 86_400_000;
    const out: Partial<Record<Feature, { median: number; threshold: number; n: number }>> = {};
    if (young && FEATURES.every((f) => values[f].length < this.cfg.volume.min_history)) {
      for (const f of FEATURES) values[f].length = 0;
      for (let i = w - this.#historyWindows; i < w; i++) take(i);
    }
    for (const f of FEATURES) if (values[f].length >= this.cfg.volume.min_history) out[f] = bandOf(values[f], f, this.cfg);
    return out;
  }

  async #prune(): Promise<void> {
    const before = this.windowOf(this.#clock - this.cfg.volume.history) - this.#perHour - 1;
    if (before > this.#viewPruned) {
      this.#viewPruned = before;
      for (const k of this.#view.windows.keys()) if (splitWindowKey(k).index < before) this.#view.windows.delete(k);
    }
    // The store's copy, hourly (it is a scan).
    if (before - this.#storePruned > this.#perHour) {
      this.#storePruned = before;
      await this.store.prune(before).catch((err: unknown) => this.#onSyncError?.(err));
    }
  }

  /** Flushes what is left and closes the store. */
  async close(): Promise<void> {
    await this.#syncing;
    const last = this.#delta;
    this.#delta = emptyData();
    try {
      await this.store.flush(last);
    } finally {
      await this.store.close();
    }
  }

  // ------------------------------------------------------------------ reading

  countOf(role: string, dim: Dimension): number {
    let n = 0;
    const prefix = `${role}\u0000${dim}\u0000`;
    for (const k of this.#view.items.keys()) if (k.startsWith(prefix)) n++;
    return n;
  }

  roles(): string[] {
    return [...this.#view.roles.keys()].sort();
  }

  summary(role: string): RoleSummary | undefined {
    const t = this.#view.roles.get(role);
    if (!t) return undefined;
    return summaryOf(role, t, this.isReady(role), this.cfg);
  }

  /** The role's items by dimension. */
  items(role: string): Record<Dimension, [string, Item][]> {
    const out = Object.fromEntries(DIMENSIONS.map((d) => [d, [] as [string, Item][]])) as Record<Dimension, [string, Item][]>;
    const prefix = `${role}\u0000`;
    for (const [k, it] of this.#view.items) {
      if (!k.startsWith(prefix)) continue;
      const { dim, value } = splitItemKey(k);
      out[dim].push([value, it]);
    }
    for (const d of DIMENSIONS) out[d].sort((a, b) => b[1].count - a[1].count || a[0].localeCompare(b[0]));
    return out;
  }

  collapsedEndpoints(role: string): string[] {
    return this.#runtime.get(role)?.endpoints.collapsed() ?? [];
  }

  /** The role's volume baseline now: median and threshold per feature (over every kept window), and the max depth seen. */
  volume(role: string): Record<Feature, { median: number; threshold: number; windows: number } | null> & { max_depth: number; open_windows: number } {
    const w = this.windowOf(this.#clock) + 1;
    const out = {} as Record<Feature, { median: number; threshold: number; windows: number } | null>;
    const bands = this.bands(role, w);
    for (const f of FEATURES) {
      const b = bands[f];
      out[f] = b ? { median: round(b.median), threshold: round(b.threshold), windows: b.n } : null;
    }
    let maxDepth = 0;
    let windows = 0;
    const prefix = `${role}\u0000`;
    for (const [k, agg] of this.#view.windows) {
      if (!k.startsWith(prefix)) continue;
      windows++;
      if (agg.depthMax > maxDepth) maxDepth = agg.depthMax;
    }
    return Object.assign(out, { max_depth: maxDepth, open_windows: windows });
  }

  /** Calls per minute over the kept windows the role was active in: the busiest, the median, how many. */
  rateEvidence(role: string): { observed_max: number; median: number; windows: number } | undefined {
    const rates: number[] = [];
    const prefix = `${role}\u0000`;
    for (const [k, agg] of this.#view.windows) if (k.startsWith(prefix) && agg.calls > 0) rates.push(agg.calls / (this.cfg.window / 60_000));
    if (rates.length === 0) return undefined;
    return { observed_max: round(Math.max(...rates)), median: round(medianOf(rates)), windows: rates.length };
  }

  /** A copy of the item (for tests and the API). */
  item(role: string, dim: Dimension, value: string): Item | undefined {
    const it = this.#view.items.get(itemKey(role, dim, value));
    return it ? { ...it, convs: [...it.convs] } : undefined;
  }
}

export function summaryOf(role: string, t: RoleTotals, ready: boolean, cfg: BaselinesConfig): RoleSummary {
  return {
    role,
    state: ready ? 'ready' : 'learning',
    first_seen: new Date(t.first).toISOString(),
    last_seen: new Date(t.last).toISOString(),
    calls: t.calls,
    invocations: t.invocations,
    learning: {
      since: new Date(t.first).toISOString(),
      until: new Date(t.first + cfg.learning.period).toISOString(),
      calls: t.calls,
      min_calls: cfg.learning.min_observations,
    },
  };
}

/** median + k × max(1.4826·MAD, relative_floor·median, the feature's floor) of the values (k: volume.threshold). */
function bandOf(v: number[], f: Feature, cfg: BaselinesConfig, k = cfg.volume.threshold, withMad = true): { median: number; threshold: number; n: number } {
  const median = medianOf(v);
  const mad = withMad ? medianOf(v.map((x) => Math.abs(x - median))) : 0;
  const spread = Math.max(1.4826 * mad, cfg.volume.relative_floor * median, ABSOLUTE_FLOOR[f]);
  return { median, threshold: median + k * spread, n: v.length };
}

function addCall(w: WindowAgg, call: Call): void {
  w.calls++;
  if (call.error) w.errors++;
  if (call.tokens > 0) w.tokens += call.tokens;
}

function addInvocation(w: WindowAgg, depth: number): void {
  w.invocations++;
  w.depthSum += depth;
  if (depth > w.depthMax) w.depthMax = depth;
}

function windowIn(data: BaselineData, key: string): WindowAgg {
  let w = data.windows.get(key);
  if (!w) data.windows.set(key, (w = emptyWindow()));
  return w;
}

function perFeature(): Record<Feature, number[]> {
  return Object.fromEntries(FEATURES.map((f) => [f, [] as number[]])) as Record<Feature, number[]>;
}

function medianOf(values: number[]): number {
  const s = Float64Array.from(values).sort();
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

function round(x: number): number {
  return Math.round(x * 1000) / 1000;
}

