// capability_escalation (OWASP ASI01; mcp-scan TF002; CaMeL/FIDES: low-integrity data reaching a
// high-privilege sink): content from an untrusted source (policy `source: untrusted`: web pages,
// search results, inbound e-mail, external MCP resources) flows to a privileged, destructive or
// exec sink, through one or more agents, each of which may well have stayed within its own
// permissions: no policy violation is needed, the composition is the finding.
//
// Flow, content overlap and confidence as in flow.ts. Severity: confirmed by content high
// (critical for a destructive or exec sink), unconfirmed medium; one step up when the flow
// crosses from one agent to another. Shown on the sink span; one finding per (source, sink).
import { z } from 'zod';
import type { DetectorDefinition } from '../detector.ts';
import { raise } from '../finding.ts';
import type { SinkLabel } from '../policy.ts';
import { baseSeverity, contentNote, FLOW_SETTINGS, flowChain, flowEvidence, flowPath, flowSpans, FlowTracker, capSeverity, flowKey } from './flow.ts';

export const CapabilityEscalationConfig = z.strictObject({ ...FLOW_SETTINGS });

const ESCALATION_SINKS: ReadonlySet<SinkLabel> = new Set(['privileged', 'destructive', 'exec']);

export const capabilityEscalation: DetectorDefinition<typeof CapabilityEscalationConfig> = {
  kind: 'capability_escalation',
  config: CapabilityEscalationConfig,
  create(cfg) {
    const flows = new FlowTracker(cfg, {
      isSource: (l) => l.labels.untrusted,
      isSink: (l) => l.labels.sink !== undefined && ESCALATION_SINKS.has(l.labels.sink),
    });
    return {
      kind: 'capability_escalation',
      onSpans(trace, added, report) {
        flows.track(trace, added, (flow) => {
          const { source, sink } = flow;
          let severity = baseSeverity(flow);
          if (flow.confidence !== 'low' && (sink.labels.sink === 'destructive' || sink.labels.sink === 'exec')) severity = raise(severity);
          if (flow.crossesAgents) severity = raise(severity);
          severity = capSeverity(flow, severity);
          report({
            key: flowKey(flow),
            severity,
            confidence: flow.confidence,
            summary:
              `Untrusted content from ${source.span.tool || source.span.id} (${source.span.agent}) reached the ${sink.labels.sink} sink ` +
              `${sink.span.tool || sink.span.id} (${sink.span.agent}) via ${flowPath(flow)}; ${contentNote(flow)}`,
            spans: flowSpans(flow),
            chain: flowChain(flow),
            evidence: flowEvidence(flow, cfg),
          });
        });
      },
    };
  },
};
