// credential_shared (OWASP ASI03; NHI9 NHI reuse, the static twin of credential forwarding;
// reference/detection.md §3, §4.5): one credential (fingerprint) presented from at least
// `min_workloads` distinct workloads within `window`, across traces, with no causal link needed.
// A workload is a service in its namespace (replicas of one service share its secrets by
// design), or each pod with `distinct_by: pod`. Time is the spans' own start times, so that late
// or replayed batches are judged by when the presentations happened.
//
// State is per fingerprint, not per trace: an LRU of `max_keys` fingerprints, each with the last
// presentation time of at most `max_workloads` workloads. The finding is reported on the trace
// whose presentation crosses the threshold (key: the fingerprint), and again on a later trace
// only when a workload not reported before joins the group.
// Severity: medium; high at twice the threshold, or when the workloads span namespaces
// (environments: NHI8), or for a write/admin/* scope; critical for a sender-constrained (cnf)
// token, whose binding cannot hold across workloads.
import { z } from 'zod';
import { duration } from '../../config/units.ts';
import type { JwtClaims } from '../../agent/credentials.ts';
import type { SpanNode } from '../../tracegraph/trace.ts';
import type { DetectorDefinition } from '../detector.ts';
import { agentChain } from '../detector.ts';
import type { Severity } from '../finding.ts';
import { raise } from '../finding.ts';
import { chainTo, presents, privilegedScopes, useOf } from './credential-forwarding.ts';

export const CredentialSharedConfig = z.strictObject({
  /** Distinct workloads presenting one credential within the window that make a finding. */
  min_workloads: z.number().int().min(2).default(3),
  window: duration.prefault('10m'),
  /** What counts as one workload: a service (in its namespace), or each pod. */
  distinct_by: z.enum(['service', 'pod']).default('service'),
  /** Fingerprints remembered (least recently presented forgotten first). */
  max_keys: z.number().int().positive().default(10_000),
  /** Workloads remembered per fingerprint (least recently seen forgotten first). */
  max_workloads: z.number().int().min(2).default(32),
});

interface Seen {
  last: number;
  traceId: string;
  service: string;
  namespace: string;
  pod: string;
}

interface Share {
  workloads: Map<string, Seen>;
  /** Workloads already reported together. */
  reported: Set<string> | undefined;
  claims: JwtClaims | undefined;
}

export const credentialShared: DetectorDefinition<typeof CredentialSharedConfig> = {
  kind: 'credential_shared',
  config: CredentialSharedConfig,
  create(cfg) {
    const shares = new Map<string, Share>();
    const workloadOf = (s: SpanNode): string => {
      const w = s.workload;
      if (cfg.distinct_by === 'pod') return w.key;
      return w.service ? `${w.namespace}/${w.service}` : w.key;
    };
    return {
      kind: 'credential_shared',
      onSpans(trace, added, report) {
        for (const { span, view } of added) {
          if (!presents(span)) continue;
          const fp = span.credential;
          let share = shares.get(fp);
          if (share) {
            shares.delete(fp); // most recently used last
          } else {
            if (shares.size >= cfg.max_keys) shares.delete(shares.keys().next().value!);
            share = { workloads: new Map(), reported: undefined, claims: undefined };
          }
          shares.set(fp, share);
          share.claims ??= view.credential?.claims;

          const id = workloadOf(span);
          const t = span.start;
          const seen = share.workloads.get(id);
          if (seen) {
            if (t >= seen.last) Object.assign(seen, { last: t, traceId: trace.graph.traceId });
          } else {
            if (share.workloads.size >= cfg.max_workloads) {
              let oldest: string | undefined;
              let oldestT = Infinity;
              for (const [k, v] of share.workloads) if (v.last < oldestT) [oldest, oldestT] = [k, v.last];
              share.workloads.delete(oldest!);
            }
            const w = span.workload;
            share.workloads.set(id, { last: t, traceId: trace.graph.traceId, service: w.service, namespace: w.namespace, pod: w.pod });
          }
          if (share.workloads.size < cfg.min_workloads) continue;

          const group = widestGroup(share.workloads, id, t, cfg.window);
          if (group.length < cfg.min_workloads) continue;
          if (share.reported && group.every((g) => share.reported!.has(g))) continue;
          share.reported = new Set([...(share.reported ?? []), ...group]);

          const members = group.map((g) => ({ id: g, ...share.workloads.get(g)!, ...(g === id ? { last: t, traceId: trace.graph.traceId } : {}) }));
          const namespaces = new Set(members.map((m) => m.namespace));
          const privileged = privilegedScopes(share.claims?.scope);
          const bound = share.claims?.cnf !== undefined && Object.keys(share.claims.cnf).length > 0;
          let severity: Severity = 'medium';
          if (group.length >= 2 * cfg.min_workloads) severity = raise(severity);
          if (namespaces.size > 1) severity = raise(severity);
          if (privileged.length > 0) severity = raise(severity);
          if (bound) severity = 'critical';
          const times = members.map((m) => m.last);
          const spread = Math.max(...times) - Math.min(...times);
          const services = [...new Set(members.map((m) => m.service || m.id))].sort();
          report({
            key: fp,
            severity,
            confidence: 'high',
            summary: `one credential (${fp}) presented from ${group.length} workloads within ${Math.round(spread / 1000)} s: ${services.join(', ')}`,
            spans: [span],
            chain: chainTo(span.agentNode ? agentChain(span.agentNode) : [], span, useOf(span)),
            evidence: {
              fingerprint: fp,
              workloads: members
                .sort((a, b) => a.last - b.last)
                .map((m) => ({ workload: m.id, service: m.service, namespace: m.namespace, pod: m.pod, trace: m.traceId, last_seen: new Date(m.last).toISOString() })),
              count: group.length,
              min_workloads: cfg.min_workloads,
              window_ms: cfg.window,
              spread_ms: spread,
              distinct_by: cfg.distinct_by,
              namespaces: [...namespaces].sort(),
              scope: share.claims?.scope ?? [],
              privileged_scope: privileged,
              sender_constrained: bound ? Object.keys(share.claims!.cnf!).sort() : false,
              presenter: span.agent,
            },
          });
        }
      },
      // No per-trace state: what is kept is per fingerprint (trace ids only as evidence), bounded by max_keys.
    };
  },
};

/**
 * The workloads in the widest window of length `window` that contains `t` (the presentation just
 * seen, by workload `self`), each at its last presentation (`self` at t).
 */
function widestGroup(workloads: Map<string, Seen>, self: string, t: number, window: number): string[] {
  const points: [string, number][] = [];
  for (const [k, v] of workloads) {
    const at = k === self ? t : v.last;
    if (Math.abs(at - t) <= window) points.push([k, at]);
  }
  points.sort((a, b) => a[1] - b[1]);
  let best: string[] = [];
  for (const [, left] of points) {
    if (left > t) break;
    const inside = points.filter(([, at]) => at >= left && at <= left + window).map(([k]) => k);
    if (inside.length > best.length) best = inside;
  }
  return best;
}
