// tool_loop (ASI02 loop amplification, ASI08 retry storms): one agent role calling the same tool
// with the same arguments (a hash of them, whitespace normalised; no captured arguments hash as
// '') at least max_repeats times within `window`, by span start time (reference/detection.md §1,
// §11). Severity medium, high from 4× the threshold (the same finding, raised). One finding per
// (role, tool, argument hash) in a trace; evidence carries the count and the hash, never the
// arguments.
//
// A span's role and chain are not always known when it arrives: spans are exported child-first
// (each when it ends), and an instrumentation that names the agent only on its invoke_agent span
// (the AI SDK's execute_tool spans name none) leaves the tool spans on the service-name fallback
// until that span arrives. A call is therefore counted once what the graph says of it is final
// (`finality`: every ancestor has arrived), so that child-first arrival gives the same finding as
// parent-first. A call still waiting after `settle_after` of the trace's own time (a runaway loop
// whose agent span never ends, a root that never reaches this collector) is counted with what is
// known then: `chain_complete: false`, and `role_resolved: false` when even its role is only the
// service-name fallback.
//
// This file also holds what policy_violation and delegation_loop share (per-trace state, the
// finality rule, the structural-change test, globs); it belongs in detector.ts once the framework
// takes it.
import { z } from 'zod';
import { duration } from '../../config/units.ts';
import type { SpanNode, TraceGraph } from '../../tracegraph/trace.ts';
import type { DetectorDefinition, FindingDraft, Waiting } from '../detector.ts';
import { advanceClock, agentChain, hopsOf, settle, TraceStates, type Finality } from '../detector.ts';
import type { Severity } from '../finding.ts';

// ---------------------------------------------------------------- argument hash

/** 64 bits of FNV-1a over the normalised arguments, hex: grouping needs no cryptographic strength. */
export function argHash(args: string | undefined): string {
  const s = normalizeArgs(args ?? '');
  // Two 32-bit FNV-1a lanes with different offsets make one 64-bit value.
  let a = 0x811c9dc5;
  let b = 0xcbf29ce4;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    a = Math.imul(a ^ c, 0x01000193);
    b = Math.imul(b ^ c, 0x01000193) ^ (a >>> 13);
  }
  return (a >>> 0).toString(16).padStart(8, '0') + (b >>> 0).toString(16).padStart(8, '0');
}

/**
 * Whitespace normalised, in one pass and without parsing: JSON-like text (starting with { or [)
 * loses the whitespace outside its string literals ("x" or 'x'), so that `{"a": 1}` and
 * `{ "a":1 }` are one call, while string values stay exact; other text has its whitespace runs
 * collapsed to one space and is trimmed. Key order is not normalised: a loop repeats its call as
 * the model produced it, and instrumentations serialise it as they got it.
 */
export function normalizeArgs(args: string): string {
  const s = args.trim();
  const c0 = s.charCodeAt(0);
  if (c0 !== 123 && c0 !== 91) return s.replace(/\s+/g, ' ');
  let out = '';
  let from = 0;
  let quote = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (quote !== 0) {
      if (c === 92) i++; // backslash: skip the escaped character
      else if (c === quote) quote = 0;
    } else if (c === 34 || c === 39) quote = c;
    else if (c === 32 || c === 9 || c === 10 || c === 13) {
      out += s.slice(from, i);
      from = i + 1;
    }
  }
  return from === 0 ? s : out + s.slice(from);
}

// ---------------------------------------------------------------- the detector

export const ToolLoopConfig = z.strictObject({
  /** Calls of one (role, tool, argument hash) within `window` that make a loop. */
  max_repeats: z.number().int().min(2).default(5),
  /** The window, by span start time. */
  window: duration.prefault('10s'),
  /** A call whose ancestors have not all arrived is counted with what is known after this much of the trace's time. */
  settle_after: duration.prefault('30s'),
  /** Tool calls held for one trace (waiting, or counted within the last window + settle_after); beyond, new calls are not counted. */
  max_calls_per_trace: z.number().int().positive().default(10_000),
});
export type ToolLoopConfig = z.output<typeof ToolLoopConfig>;

interface Call extends Waiting {
  start: number;
  tool: string;
  hash: string;
}

interface Group {
  role: string;
  tool: string;
  hash: string;
  /** Starts in order, and the span ids beside them. */
  starts: number[];
  ids: string[];
  /** Some call was counted before its chain was complete / with only the fallback role. */
  partialChain: boolean;
  fallbackRole: boolean;
  /** The severity last reported (undefined: none yet). */
  reported: Severity | undefined;
}

interface LoopState {
  weight: number;
  /** The trace's clock: the latest span end seen. */
  clock: number;
  /** Calls not counted yet: what the graph says of them may still change. */
  waiting: Call[];
  groups: Map<string, Group>;
  /** The clock when groups were last pruned. */
  pruned: number;
}

/** Links on a finding: the calls of the loop's window, at most this many. */
const MAX_LINKED = 100;

export const toolLoop: DetectorDefinition<typeof ToolLoopConfig> = {
  kind: 'tool_loop',
  config: ToolLoopConfig,
  create(cfg) {
    const states = new TraceStates<LoopState>();
    const high = cfg.max_repeats * 4;
    const perGroup = Math.max(64, cfg.max_repeats * 8);
    // A counted call can still meet a later one within the window; the settle time covers calls counted late.
    const keepFor = cfg.window + cfg.settle_after;

    /** Counts a call whose span is final enough; returns its group. */
    const count = (st: LoopState, call: Call, span: SpanNode, fin: Finality): Group => {
      const role = span.agent;
      const key = `${role}\u0000${call.tool}\u0000${call.hash}`;
      let g = st.groups.get(key);
      if (!g) st.groups.set(key, (g = { role, tool: call.tool, hash: call.hash, starts: [], ids: [], partialChain: false, fallbackRole: false, reported: undefined }));
      // Insert in start order (arrival order is not start order).
      let lo = 0, hi = g.starts.length;
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        if (g.starts[mid]! <= call.start) lo = mid + 1;
        else hi = mid;
      }
      g.starts.splice(lo, 0, call.start);
      g.ids.splice(lo, 0, call.id);
      st.weight++;
      if (g.starts.length > perGroup) {
        // Keep the latest calls; a window of 4× the threshold still fits.
        const drop = g.starts.length - perGroup;
        g.starts.splice(0, drop);
        g.ids.splice(0, drop);
        st.weight -= drop;
      }
      if (fin !== 'complete') g.partialChain = true;
      if (fin === 'provisional') g.fallbackRole = true;
      return g;
    };

    const judge = (graph: TraceGraph, g: Group, report: (d: FindingDraft) => void) => {
      // The densest window: most calls with start[j] - start[i] <= window.
      let best = 0, from = 0;
      for (let i = 0, j = 0; j < g.starts.length; j++) {
        while (g.starts[j]! - g.starts[i]! > cfg.window) i++;
        if (j - i + 1 > best) {
          best = j - i + 1;
          from = i;
        }
      }
      if (best < cfg.max_repeats) return;
      const severity: Severity = best >= high ? 'high' : 'medium';
      // Reported again only when the severity rises (the detect processor then raises the finding).
      if (g.reported === severity || g.reported === 'high') return;
      const ids = g.ids.slice(from, from + best);
      const calls = ids.map((id) => graph.spans.get(id)).filter((s): s is SpanNode => s !== undefined);
      // Shown on the call that crossed the threshold, then every call of the window.
      const shows = graph.spans.get(ids[cfg.max_repeats - 1]!) ?? calls[0];
      if (!shows) return;
      g.reported = severity;
      const chain = shows.agentNode && !shows.agentNode.transparent ? agentChain(shows.agentNode) : [];
      report({
        key: `${g.role}\u0000${g.tool}\u0000${g.hash}`,
        severity,
        confidence: g.hash === EMPTY_HASH || g.fallbackRole ? 'medium' : 'high',
        summary: `${g.role} called ${g.tool} ${best} times with identical arguments within ${cfg.window / 1000}s (threshold ${cfg.max_repeats})`,
        spans: [shows, ...(calls.length > MAX_LINKED ? calls.slice(0, MAX_LINKED) : calls)],
        chain: hopsOf(chain, { span: shows, capability: g.tool }),
        evidence: {
          role: g.role,
          tool: g.tool,
          arg_hash: g.hash,
          args_captured: g.hash !== EMPTY_HASH,
          count: best,
          window_ms: cfg.window,
          max_repeats: cfg.max_repeats,
          first_start: new Date(g.starts[from]!).toISOString(),
          last_start: new Date(g.starts[from + best - 1]!).toISOString(),
          ...(g.partialChain ? { chain_complete: false } : {}),
          ...(g.fallbackRole ? { role_resolved: false } : {}),
        },
      });
    };

    return {
      kind: 'tool_loop',
      onSpans(trace, added, report) {
        const graph = trace.graph;
        const st = states.of(graph, () => ({ weight: 0, clock: 0, waiting: [], groups: new Map(), pruned: 0 }));
        st.clock = advanceClock(st.clock, added);
        for (const { span, view } of added) {
          if (!span.tool || st.weight >= cfg.max_calls_per_trace) continue;
          // Without captured arguments, different calls are indistinguishable: they are not grouped.
          if (view.toolArgs === undefined) continue;
          st.waiting.push({ id: span.id, start: span.start, tool: span.tool, hash: argHash(view.toolArgs), seen: st.clock });
          st.weight++;
        }
        if (st.waiting.length > 0) {
          const { still, ready } = settle(graph, st.waiting, st.clock, cfg.settle_after);
          const touched = new Set<Group>();
          for (const r of ready) touched.add(count(st, r.w, r.span, r.fin));
          st.weight -= st.waiting.length;
          st.waiting = still;
          st.weight += still.length;
          for (const g of touched) judge(graph, g, report);
        }
        if (st.clock - st.pruned >= cfg.window) {
          // Groups whose latest call no later call can meet within the window any more.
          st.pruned = st.clock;
          for (const [key, g] of st.groups) {
            if (g.starts.at(-1)! + keepFor >= st.clock) continue;
            st.groups.delete(key);
            st.weight -= g.starts.length;
          }
        }
      },
      forget(graph) {
        states.forget(graph);
      },
    };
  },
};

const EMPTY_HASH = argHash('');
