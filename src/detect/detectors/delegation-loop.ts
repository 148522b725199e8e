// delegation_loop (ASI08 cascading failures): an agent role reappearing in its own delegation
// chain, e.g. orchestrator → research → orchestrator: the callee calls back into its caller's
// role, which can delegate again, and so on (reference/detection.md §1, §11). One finding where
// the loop first closes: the key is the repeated role and the agent invocation where it
// reappears; deeper turns of the same loop count as occurrences of that finding, not as new ones.
//
// Severity: medium; high when the role is on the chain three times or more (the loop went round
// again); low when every hop of the loop hands control over (handoff, transfer: the caller is no
// longer waiting, as with a specialist handing back to triage).
//
// Roles are compared once they are final (tool-loop.ts `finality`): when every ancestor of the
// agent has arrived, or, after settle_after of the trace's time, when the agent is named (its
// chain is then what is known). A fragment still waiting for its ancestors, whose unnamed spans
// carry the service-name fallback, so never shows a loop that is not there, and child-first
// arrival gives the same finding as parent-first. The trace's agent nodes are looked at again
// whenever a batch may have changed the delegations or some node was still waiting.
import { z } from 'zod';
import { duration } from '../../config/units.ts';
import { MAX_CHAIN_STEPS, type AgentNode, type SpanNode } from '../../tracegraph/trace.ts';
import type { DetectorDefinition } from '../detector.ts';
import { agentChain, hopsOf } from '../detector.ts';
import type { Severity } from '../finding.ts';
import { advanceClock, NodeClock, structureMayHaveChanged, TraceStates, type Finality } from '../detector.ts';

export const DelegationLoopConfig = z.strictObject({
  /** An agent whose ancestors have not all arrived is judged by what is known after this much of the trace's time (when it is named). */
  settle_after: duration.prefault('30s'),
});

interface LoopState {
  clock: number;
  nodes: NodeClock;
  /** Some agent node's role was not final at the last look: look again next batch. */
  unsettled: boolean;
}

interface Loop {
  role: string;
  /** The chain from the first occurrence of the role to where it reappears. */
  nodes: AgentNode[];
  occurrences: number;
  complete: boolean;
}

const HANDS_OVER = new Set(['handoff', 'transfer']);

export const delegationLoop: DetectorDefinition<typeof DelegationLoopConfig> = {
  kind: 'delegation_loop',
  config: DelegationLoopConfig,
  create(cfg) {
    const states = new TraceStates<LoopState>();
    return {
      kind: 'delegation_loop',
      onSpans(trace, added, report) {
        const graph = trace.graph;
        const st = states.of(graph, () => ({ clock: 0, nodes: new NodeClock(), unsettled: false }));
        st.clock = advanceClock(st.clock, added);
        if (!st.unsettled && !structureMayHaveChanged(added)) return;
        st.unsettled = false;
        const loops = new Map<string, Loop>();
        for (const node of graph.nodes.values()) {
          // A chain cut at MAX_CHAIN_STEPS starts mid-way: its loop, if any, is the one found from
          // the agents above it, and would only be found again at another place.
          if (node.transparent || node.depth >= MAX_CHAIN_STEPS - 1) continue;
          const chain = agentChain(node);
          // No role twice on the chain: no loop, whatever becomes final later (the usual case,
          // decided without the finality of every ancestor).
          if (!repeatsRole(chain)) {
            st.nodes.see(node, st.clock);
            continue;
          }
          const fin: (Finality | undefined)[] = chain.map((n) => st.nodes.finality(n, st.clock, cfg.settle_after));
          const known = (k: number) => fin[k] === 'complete' || fin[k] === 'named';
          if (fin.some((f) => f === undefined)) st.unsettled = true;
          // Where the chain first closes on a role it already had (roles not final yet are unknown).
          const firstAt = new Map<string, number>();
          let closure: { from: number; at: number } | undefined;
          for (let k = 0; k < chain.length && !closure; k++) {
            if (!known(k)) continue;
            const f = firstAt.get(chain[k]!.role);
            if (f === undefined) firstAt.set(chain[k]!.role, k);
            else closure = { from: f, at: k };
          }
          if (!closure) continue;
          const at = chain[closure.at]!;
          const key = `${at.role}\u0000${at.id}`;
          let occurrences = 0;
          for (let k = 0; k < chain.length; k++) if (known(k) && chain[k]!.role === at.role) occurrences++;
          const complete = fin.every((f) => f === 'complete');
          const seen = loops.get(key);
          if (!seen) loops.set(key, { role: at.role, nodes: chain.slice(closure.from, closure.at + 1), occurrences, complete });
          else {
            seen.occurrences = Math.max(seen.occurrences, occurrences);
            seen.complete &&= complete;
          }
        }
        for (const [key, loop] of loops) {
          const at = loop.nodes.at(-1)!;
          const hops = loop.nodes.slice(1);
          const severity: Severity = loop.occurrences >= 3 ? 'high' : hops.every((n) => HANDS_OVER.has(n.via)) ? 'low' : 'medium';
          const path = loop.nodes.map((n) => n.role).join('>');
          // Shown where the role reappears; then every agent of the loop and the spans that delegated.
          const spans: SpanNode[] = [at.start, ...loop.nodes.map((n) => n.start)];
          for (const n of hops) {
            const via = graph.spans.get(n.viaSpan);
            if (via) spans.push(via);
          }
          report({
            key,
            severity,
            confidence: 'high',
            summary: `${loop.role} reappears in its own delegation chain: ${path}${loop.occurrences > 2 ? ` (${loop.occurrences} times)` : ''}`,
            spans,
            chain: hopsOf(loop.nodes),
            evidence: {
              role: loop.role,
              loop: path,
              occurrences: loop.occurrences,
              hops: hops.length,
              via: hops.map((n) => n.via),
              depth: at.depth,
              chain_path: at.path,
              ...(loop.complete ? {} : { chain_complete: false }),
            },
          });
        }
      },
      forget(graph) {
        states.forget(graph);
      },
    };
  },
};

/** Some role is on the chain twice (a long chain is assumed to repeat: judged in full). */
function repeatsRole(chain: readonly AgentNode[]): boolean {
  if (chain.length > 16) return true;
  for (let i = 1; i < chain.length; i++) for (let j = 0; j < i; j++) if (chain[i]!.role === chain[j]!.role) return true;
  return false;
}
