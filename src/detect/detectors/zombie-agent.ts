// zombie_agent (OWASP ASI10 rogue agents; NHI1 improper offboarding; reference/detection.md §11):
//   - an agent still acting after the invocation that started it has ended: a span of agent
//     invocation N, or of an invocation N delegated to, starts later than `grace` after the end
//     of the delegating span (the span of N's delegator that N's first span hangs under: the
//     tool call, the HTTP call, the invoke_agent call). Delegations that are asynchronous by
//     design are not invocations that must outlive their work: messaging (PRODUCER → CONSUMER),
//     span links, and delegations the tree does not show (handoffs, graph edges, transfers,
//     where control passes on rather than returns).
//   - an identity marked retired in the policy (its role or agent id) acting at all.
// Severity: acting late, medium; high when what it does late is consequential (a tool call, a
// call to a host, a credential presented). Retired, high; critical when it presents a
// credential (it is still authenticating). Confidence: medium when the late span and the
// delegating span come from different workloads (their clocks may disagree), else high.
// Shown on the span that acts (the earliest late one in view when it is found); one finding per
// late invocation (key: its node id) and per retired identity.
//
// Incremental in any order: each new span is checked against every delegation above it, and a
// span that arrives after spans below it (the usual order: children end, and are sent, first)
// has its subtree checked again, since it may be the delegating span they outlived, or may
// connect them to it.
import { z } from 'zod';
import { duration } from '../../config/units.ts';
import { SpanKind } from '../../otlp/types.ts';
import type { AgentNode, SpanNode } from '../../tracegraph/trace.ts';
import type { DetectorDefinition, FindingDraft } from '../detector.ts';
import { agentChain, hopsOf } from '../detector.ts';
import type { Confidence, Severity } from '../finding.ts';
import { TraceStates } from '../detector.ts';
import { chainTo, presents, useOf } from './credential-forwarding.ts';

export const ZombieAgentConfig = z.strictObject({
  /** How long after its invocation ended an agent may still start work (clock skew, wrap-up). */
  grace: duration.prefault('1s'),
  /** Spans checked again below a span that arrives after them, per batch (the rest are not). */
  max_walk: z.number().int().positive().default(20_000),
});

interface TraceState {
  /** Late invocations (node ids) and retired identities already reported. */
  reported: Set<string>;
}

export const zombieAgent: DetectorDefinition<typeof ZombieAgentConfig> = {
  kind: 'zombie_agent',
  config: ZombieAgentConfig,
  create(cfg, ctx) {
    const states = new TraceStates<TraceState>();
    return {
      kind: 'zombie_agent',
      onSpans(trace, added, report) {
        const graph = trace.graph;
        const policy = ctx.policy();
        const retiredAny = policy.config.retired.length > 0;
        const reported = (key: string) => states.get(graph)?.reported.has(key) ?? false;
        const emit = (draft: FindingDraft) => {
          states.of(graph, () => ({ reported: new Set() })).reported.add(draft.key);
          report(draft);
        };

        // Retired identities: a new span of one is enough.
        if (retiredAny) {
          for (const { span } of added) {
            const node = span.agentNode;
            if (!node || node.transparent || !settled(node)) continue;
            for (const [what, identity] of [['role', node.role], ['agent id', node.start.agentId], ['agent id', span.agentId]] as const) {
              if (!identity || !policy.isRetired(identity) || reported(`retired:${identity}`)) continue;
              const chain = agentChain(node);
              const credential = presents(span);
              const severity: Severity = credential ? 'critical' : 'high';
              emit({
                key: `retired:${identity}`,
                severity,
                confidence: 'high',
                summary: `${node.role} acts though its ${what} ${identity} is retired${credential ? ', and presents a credential' : ''} (${node.path})`,
                spans: [span, ...chain.map((n) => n.start)],
                chain: hopsOf(chain),
                evidence: { identity, matched: what, role: node.role, path: node.path, operation: span.operation, tool: span.tool, host: span.host, presents_credential: credential, fingerprint: span.credential || undefined },
              });
            }
          }
        }

        // Acting after the invocation ended: no delegation, nothing to outlive.
        if (graph.nodes.size < 2) return;
        let budget = cfg.max_walk;
        // Per late invocation, its earliest late span among those seen now (whatever the order they were visited in).
        const late = new Map<AgentNode, { s: SpanNode; d: SpanNode; chain: AgentNode[] }>();
        const check = (s: SpanNode) => {
          const node = s.agentNode;
          if (!node) return;
          const chain = agentChain(node);
          for (let i = chain.length - 1; i >= 1; i--) {
            const n = chain[i]!;
            if (reported(n.id)) continue;
            const d = delegatingSpan(n);
            if (!d || s.start <= d.end + cfg.grace) continue;
            // Roles inherited from ancestors that have not arrived may still change: judge later.
            if (!settled(n.delegator!) || !settled(n) || (!node.transparent && !settled(node))) continue;
            const known = late.get(n);
            if (!known || earlier(s, known.s)) late.set(n, { s, d, chain });
          }
        };
        for (const { span } of added) {
          check(span);
          if (!span.children) continue;
          // Arrived after spans below it: check them again.
          const stack = [...span.children];
          while (stack.length > 0 && budget > 0) {
            const c = stack.pop()!;
            budget--;
            check(c);
            if (c.children) for (const g of c.children) stack.push(g);
          }
        }
        for (const [n, { s, d, chain }] of late) emit(lateDraft(n, d, s, chain, cfg.grace));
      },
      forget(graph) {
        states.forget(graph);
      },
    };
  },
};

/** Its role is final: named by its own spans, or with every ancestor arrived. */
function settled(n: AgentNode): boolean {
  return n.start.named || !n.start.awaitsAncestor();
}

/**
 * The span of n's delegator that n's first span hangs under (through spans of no agent), when
 * the tree shows the delegation and it is synchronous; else undefined.
 */
function delegatingSpan(n: AgentNode): SpanNode | undefined {
  const d = n.delegator;
  if (!d || n.via === 'link' || n.start.kind === SpanKind.CONSUMER) return undefined;
  let guard = 0;
  for (let a = n.start.parent; a && guard < 10_000; a = a.parent, guard++) {
    if (a.kind === SpanKind.PRODUCER || a.kind === SpanKind.CONSUMER) return undefined;
    if (a.agentNode === d) return a;
    if (a.agentNode && !a.agentNode.transparent) return undefined;
  }
  return undefined;
}

/** It did something that matters: called a tool or a host, or presented a credential. */
function consequential(s: SpanNode): boolean {
  return s.tool !== '' || s.host !== '' || presents(s);
}

/**
 * `a` is the late span to show before `b`: it started first; at the same time (instrumentations
 * often start a tool call and the next model step in the same millisecond), the consequential
 * one, so that severity does not hang on span ids; then the lower id.
 */
function earlier(a: SpanNode, b: SpanNode): boolean {
  if (a.start !== b.start) return a.start < b.start;
  const ca = consequential(a), cb = consequential(b);
  return ca !== cb ? ca : a.id < b.id;
}

function lateDraft(n: AgentNode, d: SpanNode, s: SpanNode, chain: AgentNode[], grace: number): FindingDraft {
  const lateBy = Math.round(s.start - d.end);
  const severity: Severity = consequential(s) ? 'high' : 'medium';
  const confidence: Confidence = s.workload.key === d.workload.key ? 'high' : 'medium';
  const what = s.tool ? `calls ${s.tool}` : s.host ? `calls ${s.host}` : s.operation ? `runs ${s.operation}` : 'acts';
  const by = s.agentNode && s.agentNode !== n && !s.agentNode.transparent ? ` (through ${s.agentNode.role}, which it delegated to)` : '';
  return {
    key: n.id,
    severity,
    confidence,
    summary: `${n.role} ${what}${by} ${lateBy} ms after the invocation by ${n.delegator?.role ?? '?'} that started it ended (grace ${grace} ms)`,
    spans: [s, n.start, d],
    chain: chainTo(chain, s, useOf(s)),
    evidence: {
      role: n.role,
      invoked_by: n.delegator?.role,
      via: n.via,
      delegating_span: d.id,
      invocation_ended: new Date(d.end).toISOString(),
      acting_span: s.id,
      acting_role: s.agent,
      acted_at: new Date(s.start).toISOString(),
      late_by_ms: lateBy,
      grace_ms: grace,
      operation: s.operation,
      tool: s.tool,
      host: s.host,
      presents_credential: presents(s),
      path: n.path,
    },
  };
}
