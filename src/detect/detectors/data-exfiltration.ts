// data_exfiltration (OWASP ASI02; mcp-scan TF001; CaMeL/FIDES: high-confidentiality data reaching
// a public sink): sensitive data (policy `data: sensitive`) flows to an egress sink (`sink:
// egress`) whose destination is outside the egress allowlist. The destinations of a sink are the
// host it calls and the hosts and e-mail addresses its arguments name; each one the policy does
// not allow (internal domains, egress.allowed_hosts, allowed_email_domains, allowed_accounts) is
// one finding.
//
// Flow, content overlap and confidence as in flow.ts. Severity: confirmed by content high,
// unconfirmed medium; one step up when an untrusted source precedes the sensitive read (the full
// TF001 triad: someone else's content may have asked for it), one up when the flow crosses from
// one agent to another; critical for a covert destination (OWASP's Rego list: tunnels,
// request catchers, out-of-band interaction hosts, .onion). Shown on the sink span.
import { z } from 'zod';
import type { DetectorDefinition, DetectorTrace, LabeledSpan } from '../detector.ts';
import { treeRoot } from '../detector.ts';
import { raise } from '../finding.ts';
import { baseSeverity, contentNote, FLOW_SETTINGS, flowChain, flowEvidence, flowPath, flowSpans, FlowTracker, capSeverity, flowKey } from './flow.ts';

/** OWASP asi10_rogue_agents.rego covert destinations (reference/detection.md §2). */
export const COVERT_DESTINATIONS = ['ngrok.io', 'ngrok.app', 'requestbin', 'webhook.site', 'pipedream.net', 'burpcollaborator', 'interact.sh', 'oastify.com', 'canarytokens.com', 'dnslog.cn', '*.onion'];

export const DataExfiltrationConfig = z.strictObject({
  ...FLOW_SETTINGS,
  /** Covert destinations: a domain (itself and its subdomains; `*.onion` for a top-level domain) or, without a dot, a label anywhere in the host (`requestbin`). */
  covert_destinations: z.array(z.string().min(1)).default(COVERT_DESTINATIONS),
  /** Destinations judged per sink span (the host, then the targets named in its arguments). */
  max_destinations: z.number().int().positive().default(16),
});

export const dataExfiltration: DetectorDefinition<typeof DataExfiltrationConfig> = {
  kind: 'data_exfiltration',
  config: DataExfiltrationConfig,
  create(cfg, ctx) {
    const flows = new FlowTracker(cfg, {
      isSource: (l) => l.labels.sensitive,
      isSink: (l) => l.labels.sink === 'egress',
    });
    const covert = covertMatcher(cfg.covert_destinations);
    return {
      kind: 'data_exfiltration',
      onSpans(trace, added, report) {
        flows.track(trace, added, (flow) => {
          const policy = ctx.policy();
          const { source, sink } = flow;
          const destinations = [...new Set([sink.span.host, ...(sink.span.argTargets ?? [])].filter((d) => d !== ''))].slice(0, cfg.max_destinations);
          const outside = destinations.filter((d) => !policy.isAllowedEgress(d));
          if (outside.length === 0) return;
          const untrusted = untrustedBefore(trace, source, cfg.slack_ms);
          for (const destination of outside) {
            const isCovert = covert(destination);
            let severity = baseSeverity(flow);
            if (untrusted) severity = raise(severity);
            if (flow.crossesAgents) severity = raise(severity);
            severity = capSeverity(flow, severity);
            // A covert destination is damning on its own, captured content or not.
            if (isCovert) severity = 'critical';
            const base = flowEvidence(flow, cfg);
            report({
              key: flowKey(flow, destination),
              severity,
              confidence: flow.confidence,
              summary:
                `Sensitive data from ${source.span.tool || source.span.id} (${source.span.agent}) reached ${sink.span.tool || sink.span.id} (${sink.span.agent}), ` +
                `which sends to ${isCovert ? 'the covert destination ' : ''}${destination} outside the egress allowlist, via ${flowPath(flow)}; ${contentNote(flow)}` +
                (untrusted ? `; untrusted content from ${untrusted.span.tool || untrusted.span.id} (${untrusted.span.agent}) came before the read` : ''),
              spans: untrusted ? [...flowSpans(flow), untrusted.span] : flowSpans(flow),
              chain: flowChain(flow),
              evidence: {
                ...base,
                destination,
                destination_class: isCovert ? 'covert' : 'external',
                destinations_outside_allowlist: outside,
                ...(untrusted ? { untrusted_source: { span: untrusted.span.id, tool: untrusted.span.tool || undefined, agent: untrusted.span.agent, capabilities: untrusted.labels.capabilities } } : {}),
              },
            });
          }
        });
      },
    };
  },
};

/**
 * The untrusted source nearest before the sensitive read that could have reached it (latest end;
 * ties by span id). Only a modifier, so judged leniently, to give the same answer whatever order
 * spans arrive in: it ended before the read started, and they share a span tree, or one of the
 * two is still a fragment waiting for a missing parent (they will most likely meet at the root).
 */
function untrustedBefore(trace: DetectorTrace, read: LabeledSpan, slackMs: number): LabeledSpan | undefined {
  const readTop = treeRoot(read.span);
  let best: LabeledSpan | undefined;
  for (const l of trace.labeled) {
    if (!l.labels.untrusted || l === read || read.span.start + slackMs < l.span.end) continue;
    const top = treeRoot(l.span);
    if (top !== readTop && top.parentId === '' && readTop.parentId === '') continue;
    if (!best || l.span.end > best.span.end || (l.span.end === best.span.end && l.span.id < best.span.id)) best = l;
  }
  return best;
}

function covertMatcher(patterns: readonly string[]): (destination: string) => boolean {
  const domains: string[] = [];
  const labels = new Set<string>();
  for (const p of patterns) {
    const q = p.toLowerCase();
    if (q.startsWith('*.')) domains.push(q.slice(2));
    else if (q.includes('.')) domains.push(q.replace(/^\./, ''));
    else labels.add(q);
  }
  return (destination) => {
    const d = destination.toLowerCase();
    const host = d.slice(d.lastIndexOf('@') + 1);
    if (domains.some((q) => host === q || host.endsWith('.' + q))) return true;
    return host.split('.').some((l) => labels.has(l));
  };
}
