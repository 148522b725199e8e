// What a role's baseline holds, in a shape every store merges the same way: counts add up,
// first-seen takes the minimum, last-seen the maximum, conversation sets unite (capped). So
// replicas that each saw part of the traffic merge into the profile one process would have
// learnt from all of it, whatever order their updates land in.

/** What a profile records the values of. */
export const DIMENSIONS = ['tool', 'endpoint', 'mcp', 'delegation', 'model'] as const;
export type Dimension = (typeof DIMENSIONS)[number];

/** Distinct conversations remembered per item (enough to tell "seen in ≥ m conversations"). */
export const MAX_CONVERSATIONS = 16;

export interface Item {
  count: number;
  first: number;
  last: number;
  /** Short hashes of the conversations (or traces) it was seen in, at most MAX_CONVERSATIONS. */
  convs: string[];
}

export interface RoleTotals {
  first: number;
  last: number;
  /** Calls (tool, model and MCP calls) and invocations observed. */
  calls: number;
  invocations: number;
}

/** One window of a role's activity (additive across replicas; depthMax by maximum). */
export interface WindowAgg {
  calls: number;
  invocations: number;
  errors: number;
  tokens: number;
  delegations: number;
  depthSum: number;
  depthMax: number;
}

export function emptyWindow(): WindowAgg {
  return { calls: 0, invocations: 0, errors: 0, tokens: 0, delegations: 0, depthSum: 0, depthMax: 0 };
}

export function mergeWindow(into: WindowAgg, w: WindowAgg): void {
  into.calls += w.calls;
  into.invocations += w.invocations;
  into.errors += w.errors;
  into.tokens += w.tokens;
  into.delegations += w.delegations;
  into.depthSum += w.depthSum;
  if (w.depthMax > into.depthMax) into.depthMax = w.depthMax;
}

export function mergeItem(into: Item, d: Item): void {
  into.count += d.count;
  if (d.first < into.first) into.first = d.first;
  if (d.last > into.last) into.last = d.last;
  unionConvs(into.convs, d.convs);
}

export function unionConvs(into: string[], add: readonly string[]): void {
  for (const c of add) {
    if (into.length >= MAX_CONVERSATIONS) return;
    if (!into.includes(c)) into.push(c);
  }
}

/** One more observation of an item at `time` in conversation `conv`. */
export function touchItem(it: Item, time: number, conv: string): void {
  it.count++;
  if (time > it.last) it.last = time;
  if (time < it.first) it.first = time;
  if (it.convs.length < MAX_CONVERSATIONS && !it.convs.includes(conv)) it.convs.push(conv);
}

/** One more observation of the item `key` in `data`. */
export function countItem(data: BaselineData, key: string, time: number, conv: string): void {
  const it = data.items.get(key);
  if (it) touchItem(it, time, conv);
  else data.items.set(key, { count: 1, first: time, last: time, convs: [conv] });
}

/** Calls and invocations of `role` at `time`. */
export function countTotals(data: BaselineData, role: string, time: number, calls: number, invocations: number): void {
  const t = data.roles.get(role);
  if (!t) {
    data.roles.set(role, { first: time, last: time, calls, invocations });
    return;
  }
  t.calls += calls;
  t.invocations += invocations;
  if (time > t.last) t.last = time;
  if (time < t.first) t.first = time;
}

export function mergeTotals(into: RoleTotals, d: RoleTotals): void {
  into.calls += d.calls;
  into.invocations += d.invocations;
  if (d.first < into.first) into.first = d.first;
  if (d.last > into.last) into.last = d.last;
}

/** Everything a store holds, or a delta to merge into it. */
export interface BaselineData {
  roles: Map<string, RoleTotals>;
  /** Key: role \0 dimension \0 value. */
  items: Map<string, Item>;
  /** Key: role \0 window index. */
  windows: Map<string, WindowAgg>;
}

export function emptyData(): BaselineData {
  return { roles: new Map(), items: new Map(), windows: new Map() };
}

export function itemKey(role: string, dim: Dimension, value: string): string {
  return `${role}\u0000${dim}\u0000${value}`;
}

export function splitItemKey(key: string): { role: string; dim: Dimension; value: string } {
  const a = key.indexOf('\u0000');
  const b = key.indexOf('\u0000', a + 1);
  return { role: key.slice(0, a), dim: key.slice(a + 1, b) as Dimension, value: key.slice(b + 1) };
}

export function windowKey(role: string, index: number): string {
  return `${role}\u0000${index}`;
}

export function splitWindowKey(key: string): { role: string; index: number } {
  const a = key.lastIndexOf('\u0000');
  return { role: key.slice(0, a), index: Number(key.slice(a + 1)) };
}

/** Merges `d` into `into` (both in the store's shape); `d` is left as it was. */
export function mergeData(into: BaselineData, d: BaselineData): void {
  for (const [k, t] of d.roles) {
    const known = into.roles.get(k);
    if (known) mergeTotals(known, t);
    else into.roles.set(k, { ...t });
  }
  for (const [k, it] of d.items) {
    const known = into.items.get(k);
    if (known) mergeItem(known, it);
    else into.items.set(k, { ...it, convs: [...it.convs] });
  }
  for (const [k, w] of d.windows) {
    const known = into.windows.get(k);
    if (known) mergeWindow(known, w);
    else into.windows.set(k, { ...w });
  }
}

/** FNV-1a of a conversation or trace id, 8 hex digits: what items remember of it. */
export function convHash(id: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < id.length; i++) h = Math.imul(h ^ id.charCodeAt(i), 0x01000193);
  return (h >>> 0).toString(16).padStart(8, '0');
}
