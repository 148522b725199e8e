// policy_violation (ASI02 tool misuse, over-privileged use): what a role did outside its policy
// (DESIGN §5, policy file `roles`).
//
// - A role in mode `enforce` is deny-by-default: every tool call outside allowed_tools, every
//   delegation to a role outside allowed_delegations (a list that is not set allows nothing), and,
//   when allowed_hosts is set, every host outside it is a finding. Severity medium; high for a tool
//   the policy labels a sink (egress, privileged, destructive, exec) and for a host outside the
//   internal domains.
// - A role in mode `observe` is learning (observe-to-enforce, reference/detection.md §10): no
//   policy_violation, so that a role can be written down and watched before it is enforced. Its
//   max_depth still applies (excessive_depth). With `report_observed: true`, the lists an observed
//   role sets explicitly are checked too (no deny-by-default for the lists it leaves out), at
//   severity low: what enforcing it would flag.
// - max_calls_per_minute: calls (tool, model, MCP) per role per minute of the spans' time, across
//   traces, counted by each replica for the traces it sees; one finding per role and minute.
// - A role with no policy is observed: never a finding here.
//
// Tool names and hosts match the lists as the policy file's globs do (case-insensitive, `*`);
// delegation targets by role name (globs allowed). Hosts are those the spans name as their
// destination (server.address, url.full), not hosts mentioned in tool arguments (that is
// data_exfiltration's evidence); model calls (chat, embeddings and the HTTP calls under them)
// are not the role's own destinations and are not checked, nor is the address of a SERVER or
// CONSUMER span (the role's own, where it was called). A handoff recorded as a tool is a
// delegation, not a tool call. One finding per (role, rule, value) in a trace.
//
// A call is judged once what the graph says of it is final (tool-loop.ts `finality`): every
// ancestor has arrived, or, after settle_after of the trace's time, its agent is named (its chain
// is then what is known). A call whose role is only the service-name fallback of a fragment is
// never judged by it: that would be a false violation or a missed one. So child-first arrival
// gives the same findings as parent-first. A delegation is judged once both ends are final.
import { z } from 'zod';
import { duration } from '../../config/units.ts';
import type { SpanNode, TraceGraph } from '../../tracegraph/trace.ts';
import type { DetectorDefinition, FindingDraft, Waiting } from '../detector.ts';
import { agentChain, hopsOf } from '../detector.ts';
import type { Severity } from '../finding.ts';
import type { Policy, SinkLabel } from '../policy.ts';
import { advanceClock, delegatingAgent, NodeClock, settle, structureMayHaveChanged, TraceStates, reachesHost, isCall, mayCall, toolCalled } from '../detector.ts';
import { globList } from '../policy.ts';

export const PolicyViolationConfig = z.strictObject({
  /** Also check the lists that observed roles set, at severity low (no deny-by-default). */
  report_observed: z.boolean().default(false),
  /** A call or agent whose ancestors have not all arrived is judged by what is known after this much of the trace's time (when it is named). */
  settle_after: duration.prefault('30s'),
  /** Calls remembered per trace while their role is not known yet; beyond, new ones are not judged. */
  max_pending_per_trace: z.number().int().positive().default(10_000),
});

type Rule = 'allowed_tools' | 'allowed_delegations' | 'allowed_hosts' | 'max_calls_per_minute';

interface Checked {
  mode: 'observe' | 'enforce';
  severity: Severity | undefined;
  /** undefined: the rule is not checked for this role; else the test and the list (empty: deny all). */
  tools: { allows: (v: string) => boolean; list: readonly string[] } | undefined;
  delegations: { allows: (v: string) => boolean; list: readonly string[] } | undefined;
  hosts: { allows: (v: string) => boolean; list: readonly string[] } | undefined;
  maxPerMinute: number | undefined;
}

interface Pending extends Waiting {
  sink: SinkLabel | undefined;
}

interface ViolationState {
  clock: number;
  nodes: NodeClock;
  pending: Pending[];
  /** Some agent node's role was not final at the last look: look again next batch. */
  unsettled: boolean;
}

export const policyViolation: DetectorDefinition<typeof PolicyViolationConfig> = {
  kind: 'policy_violation',
  config: PolicyViolationConfig,
  create(cfg, ctx) {
    const states = new TraceStates<ViolationState>();
    /** Calls in the current minute, per role with max_calls_per_minute. */
    const rates = new Map<string, { minute: number; count: number }>();
    // Roles compiled once per policy (the policy reloads live: a new Policy, a new entry).
    const compiled = new WeakMap<Policy, { roles: Map<string, Checked>; any: boolean }>();

    const rolesOf = (policy: Policy) => {
      let c = compiled.get(policy);
      if (c) return c;
      const roles = new Map<string, Checked>();
      for (const [role, rp] of Object.entries(policy.config.roles)) {
        const enforce = rp.mode === 'enforce';
        if (!enforce && !cfg.report_observed) continue;
        // Enforced: a list that is not set allows nothing (hosts excepted: checked when set).
        const rule = (list: string[] | undefined, denyByDefault: boolean) => {
          if (list === undefined && !(enforce && denyByDefault)) return undefined;
          const l = list ?? [];
          return { allows: globList(l), list: l };
        };
        roles.set(role, {
          mode: rp.mode,
          severity: enforce ? undefined : 'low',
          tools: rule(rp.allowed_tools, true),
          delegations: rule(rp.allowed_delegations, true),
          hosts: rule(rp.allowed_hosts, false),
          maxPerMinute: rp.max_calls_per_minute,
        });
      }
      compiled.set(policy, (c = { roles, any: roles.size > 0 }));
      return c;
    };

    const violation = (
      policy: Policy, checked: Checked, role: string, rule: Rule, value: string, list: readonly string[],
      shows: SpanNode, chainOf: SpanNode, capability: string | undefined, severity: Severity, complete: boolean,
    ): FindingDraft => {
      const chain = chainOf.agentNode && !chainOf.agentNode.transparent ? agentChain(chainOf.agentNode) : [];
      const what = rule === 'allowed_tools' ? `called tool ${value}` : rule === 'allowed_hosts' ? `reached host ${value}` : rule === 'max_calls_per_minute' ? `made more than ${list[0]} calls in the minute from ${value}` : `delegated to ${value}`;
      return {
        key: `${role}\u0000${rule}\u0000${value}`,
        severity: checked.severity ?? severity,
        confidence: 'high',
        summary: `${role} ${what}, outside its ${rule}${checked.mode === 'enforce' ? ' (enforced, deny-by-default)' : ' (observed)'}`,
        spans: [shows, ...chain.map((n) => n.start)],
        chain: capability ? hopsOf(chain, { span: shows, capability }) : hopsOf(chain),
        evidence: { role, mode: checked.mode, rule, value, allowed: [...list], list_set: policy.role(role)?.[rule] !== undefined, ...(complete ? {} : { chain_complete: false }) },
      };
    };

    /** Judges one call whose role is final. */
    const judgeCall = (policy: Policy, roles: Map<string, Checked>, span: SpanNode, sink: SinkLabel | undefined, complete: boolean, report: (d: FindingDraft) => void) => {
      if (!span.agentNode || span.agentNode.transparent) return;
      const role = span.agent;
      const checked = roles.get(role);
      if (!checked) return;
      if (toolCalled(span) && checked.tools && !checked.tools.allows(span.tool)) {
        report(violation(policy, checked, role, 'allowed_tools', span.tool, checked.tools.list, span, span, span.tool, sink ? 'high' : 'medium', complete));
      }
      if (checked.hosts && reachesHost(span) && !checked.hosts.allows(span.host)) {
        report(violation(policy, checked, role, 'allowed_hosts', span.host, checked.hosts.list, span, span, span.host, policy.isInternal(span.host) ? 'medium' : 'high', complete));
      }
      if (checked.maxPerMinute !== undefined && isCall(span)) {
        // Calls per role per minute of the spans' time, across traces (this replica's share).
        const minute = Math.floor(span.start / 60_000);
        let r = rates.get(role);
        if (!r || r.minute !== minute) rates.set(role, (r = { minute, count: 0 }));
        if (++r.count === checked.maxPerMinute + 1) {
          const from = new Date(minute * 60_000).toISOString();
          report(violation(policy, checked, role, 'max_calls_per_minute', from, [String(checked.maxPerMinute)], span, span, span.tool || span.model, 'medium', complete));
        }
      }
    };

    /** Every agent node and the agent that delegated to it, once both are final. */
    const judgeDelegations = (policy: Policy, roles: Map<string, Checked>, graph: TraceGraph, st: ViolationState, report: (d: FindingDraft) => void) => {
      st.unsettled = false;
      for (const node of graph.nodes.values()) {
        if (node.transparent) continue;
        const from = delegatingAgent(node);
        if (!from) continue;
        const fins = [st.nodes.finality(from, st.clock, cfg.settle_after), st.nodes.finality(node, st.clock, cfg.settle_after)];
        if (fins.includes(undefined)) {
          st.unsettled = true;
          continue;
        }
        if (fins.includes('provisional')) continue;
        const checked = roles.get(from.role);
        if (!checked?.delegations || checked.delegations.allows(node.role)) continue;
        report(violation(policy, checked, from.role, 'allowed_delegations', node.role, checked.delegations.list, node.start, node.start, undefined, 'medium', fins.every((f) => f === 'complete')));
      }
    };

    return {
      kind: 'policy_violation',
      onSpans(trace, added, report) {
        const policy = ctx.policy();
        const { roles, any } = rolesOf(policy);
        const graph = trace.graph;
        if (!any) {
          // Nothing is enforced: nothing to remember either.
          states.forget(graph);
          return;
        }
        const st = states.of(graph, () => ({ clock: 0, nodes: new NodeClock(), pending: [], unsettled: false }));
        st.clock = advanceClock(st.clock, added);

        // Calls: judged when what the graph says of them is final.
        for (const { span, labels } of added) {
          if (mayCall(span) && st.pending.length < cfg.max_pending_per_trace) st.pending.push({ id: span.id, sink: labels.sink, seen: st.clock });
        }
        if (st.pending.length > 0) {
          const settled = settle(graph, st.pending, st.clock, cfg.settle_after);
          st.pending = settled.still;
          const ready = settled.ready.filter((r) => r.fin !== 'provisional');
          // In start order: calls that become judgeable together (their agent arrived) show a
          // violation on the first of them, whatever order they arrived in.
          ready.sort((a, b) => a.span.start - b.span.start);
          for (const r of ready) judgeCall(policy, roles, r.span, r.w.sink, r.fin === 'complete', report);
        }

        // Delegations: every agent node and the agent that delegated to it, when they may have changed.
        if (st.unsettled || structureMayHaveChanged(added)) judgeDelegations(policy, roles, graph, st, report);
      },
      forget(graph) {
        states.forget(graph);
      },
    };
  },
};
