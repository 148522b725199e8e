// A finding (DESIGN §4): the same content on every sink. The id is stable, derived from
// (trace, kind, key), so the same finding delivered twice, or by two replicas, is one finding.
import { createHash } from 'node:crypto';

export const FINDING_KINDS = [
  'credential_forwarding',
  'capability_escalation',
  'data_exfiltration',
  'delegation_loop',
  'tool_loop',
  'excessive_depth',
  'zombie_agent',
  'credential_shared',
  'policy_violation',
  'baseline_new_tool',
  'baseline_new_endpoint',
  'baseline_new_delegation',
  'baseline_volume',
] as const;
export type FindingKind = (typeof FINDING_KINDS)[number];

export const SEVERITIES = ['low', 'medium', 'high', 'critical'] as const;
export type Severity = (typeof SEVERITIES)[number];
export type Confidence = 'low' | 'medium' | 'high';

/** OWASP Top 10 for Agentic Applications (2026) id of each kind (reference/detection.md §1, §11). */
export const OWASP: Record<FindingKind, string> = {
  credential_forwarding: 'ASI03',
  capability_escalation: 'ASI01',
  data_exfiltration: 'ASI02',
  delegation_loop: 'ASI08',
  tool_loop: 'ASI02',
  excessive_depth: 'ASI08',
  zombie_agent: 'ASI10',
  credential_shared: 'ASI03',
  policy_violation: 'ASI02',
  baseline_new_tool: 'ASI10',
  baseline_new_endpoint: 'ASI10',
  baseline_new_delegation: 'ASI03',
  baseline_volume: 'ASI08',
};

export function severityRank(s: Severity): number {
  return SEVERITIES.indexOf(s);
}

export function raise(s: Severity, steps = 1): Severity {
  return SEVERITIES[Math.min(SEVERITIES.length - 1, severityRank(s) + steps)]!;
}

/** One hop of the chain a finding involves, in order. */
export interface ChainHop {
  role: string;
  spanId: string;
  /** What was used at this hop: a capability, tool or destination. */
  capability?: string;
}

export interface Finding {
  id: string;
  /** When it was detected (ISO 8601). */
  time: string;
  kind: FindingKind;
  severity: Severity;
  confidence: Confidence;
  traceId: string;
  /** Every span involved; the first shows the finding. */
  spanIds: string[];
  chain: ChainHop[];
  summary: string;
  /** What was seen: fingerprints, hosts, tools, counts, thresholds; never raw secrets. */
  evidence: Record<string, unknown>;
  owasp: string;
  /** The trace in Jaeger, when its UI URL is configured. */
  link?: string;
}

export function findingId(traceId: string, kind: FindingKind, key: string): string {
  return createHash('sha256').update(`${traceId}\u0000${kind}\u0000${key}`).digest('hex').slice(0, 24);
}

const OCSF_SEVERITY: Record<Severity, number> = { low: 2, medium: 3, high: 4, critical: 5 };
const OCSF_CONFIDENCE: Record<Confidence, number> = { low: 1, medium: 2, high: 3 };

/** OCSF Detection Finding (class 2004, category Findings), version 1.x. */
export function toOcsf(f: Finding, productVersion: string): Record<string, unknown> {
  return {
    class_uid: 2004,
    class_name: 'Detection Finding',
    category_uid: 2,
    category_name: 'Findings',
    activity_id: 1,
    activity_name: 'Create',
    type_uid: 200401,
    severity_id: OCSF_SEVERITY[f.severity],
    severity: f.severity[0]!.toUpperCase() + f.severity.slice(1),
    confidence_id: OCSF_CONFIDENCE[f.confidence],
    time: Date.parse(f.time),
    status_id: 1,
    message: f.summary,
    metadata: { version: '1.5.0', product: { name: 'agentsec collector', vendor_name: 'agentsec', version: productVersion }, uid: f.id },
    finding_info: {
      uid: f.id,
      title: f.kind,
      desc: f.summary,
      types: [f.kind],
      attacks: [],
      analytic: { name: f.kind, type_id: 1, type: 'Rule' },
      related_events: f.spanIds.map((s) => ({ uid: s, trace_uid: f.traceId })),
      src_url: f.link,
    },
    resources: f.chain.map((h) => ({ type: 'agent', name: h.role, uid: h.spanId, data: h.capability ? { capability: h.capability } : undefined })),
    evidences: [{ data: f.evidence }],
    unmapped: { owasp_asi: f.owasp, trace_id: f.traceId, chain: f.chain.map((h) => h.role).join('>') },
  };
}
