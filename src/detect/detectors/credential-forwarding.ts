// credential_forwarding (OWASP ASI03; reference/detection.md §4.5): a credential presented by an
// agent that is not its holder, that is no allowed relay (policy `relays`), and that no `act`
// chain names (RFC 8693: a properly exchanged token names every actor it passed through).
//
// Holder, the first that applies:
//   1. the JWT's azp / client_id, when it names an agent (a role or agent id in the trace or in
//      the policy, or the service, service account or SPIFFE id of a workload in the trace);
//   2. its sub, when that names an agent the same way;
//   3. else the first presenter in the trace (relays excepted): confidence medium.
// A presentation is a span that carries the credential and is not where it was received: SERVER
// and CONSUMER spans show the receiver (an incoming Authorization header), not a presenter.
//
// Chain: the agent path from the holder's invocation to the presenter's (up to a common ancestor
// and down again, or down directly), with the credential's use (its host) on the last hop.
// Severity: medium; high at 2 or more delegation hops; one step up for a write/admin/* scope, one
// for a destination outside the internal domains; critical for a sender-constrained token (cnf):
// the binding was bypassed, or the telemetry is wrong.
//
// Incremental and order-independent: every presentation is remembered per trace (bounded) and
// judged again after each later batch until it is settled. It fires as soon as the holder's
// invocation and the presentation are connected in the graph; a holder inferred from the trace
// alone (no claim names one found in it) waits until the presenter's tree is complete (no
// ancestor missing), so that spans arriving children first do not elect the wrong holder.
import { z } from 'zod';
import type { JwtClaims } from '../../agent/credentials.ts';
import { SpanKind } from '../../otlp/types.ts';
import { canonicalName, type AgentNode, type SpanNode, type TraceGraph } from '../../tracegraph/trace.ts';
import type { DetectorDefinition, FindingDraft } from '../detector.ts';
import { agentChain, agentsBetween, hopsOf, TraceStates, treeRoot } from '../detector.ts';
import type { ChainHop, Confidence, Severity } from '../finding.ts';
import { raise } from '../finding.ts';
import type { Policy } from '../policy.ts';

export const CredentialForwardingConfig = z.strictObject({
  /** Credentials (fingerprints) remembered per trace; later ones are not judged. */
  max_credentials_per_trace: z.number().int().positive().default(256),
  /** Spans presenting one credential remembered per trace; later ones are not judged. */
  max_presentations: z.number().int().positive().default(256),
});

// ---------------------------------------------------------------- helpers the credential and zombie detectors share

/** A presentation of a credential: not where it was received (SERVER, CONSUMER). */
export function presents(span: SpanNode): boolean {
  return span.credential !== '' && span.kind !== SpanKind.SERVER && span.kind !== SpanKind.CONSUMER;
}

/** The chain from `nodes` (root first) to `span`, the span's own use as the last hop. */
export function chainTo(nodes: readonly AgentNode[], span: SpanNode, capability: string): ChainHop[] {
  const path = nodes.length > 0 && nodes[nodes.length - 1] === span.agentNode ? nodes.slice(0, -1) : nodes;
  return hopsOf(path, { span, ...(capability ? { capability } : {}) });
}

/** What a span's use names: the host it went to, else its tool, MCP method or model. */
export function useOf(span: SpanNode): string {
  return span.host || span.tool || span.mcpMethod || span.model || span.operation;
}

const PRIVILEGED_SCOPE = /(^|[^a-z])(write|admin|delete|manage|owner|root)([^a-z]|$)|^\*$|[:./]\*$/i;

/** Scopes that grant more than reading. */
export function privilegedScopes(scope: readonly string[] | undefined): string[] {
  return (scope ?? []).filter((s) => PRIVILEGED_SCOPE.test(s));
}


/** Names an agent or workload may go by in a claim. */
function identitiesOf(span: SpanNode): string[] {
  const node = span.agentNode;
  const w = span.workload;
  return [span.agent, node?.role ?? '', node?.start.agentId ?? '', span.agentId, w.service, w.serviceAccount, w.spiffeId].filter((x) => x !== '');
}

function names(id: string, span: SpanNode): boolean {
  const c = canonicalName(id);
  return c !== '' && identitiesOf(span).some((x) => x === id || canonicalName(x) === c);
}

function namedIn(list: readonly string[] | undefined, span: SpanNode): string | undefined {
  return list?.find((a) => names(a, span));
}

// ---------------------------------------------------------------- the detector

/** What one presenter (by its role as resolved now) did with a credential in the trace. */
interface Presentation {
  /** Its earliest span carrying the credential. */
  span: SpanNode;
  hosts: Set<string>;
  count: number;
}

interface CredentialState {
  claims: JwtClaims | undefined;
  /** Every span presenting it (roles are resolved again at each judgement: ancestors may arrive). */
  spans: SpanNode[];
  /** Presenter roles judged for good: reported, or legitimate whatever arrives later. */
  settled: Set<string>;
  /** Every presenter is settled and no span came since: nothing to judge. */
  quiet: boolean;
}

type TraceState = Map<string, CredentialState>;

interface Holder {
  role: string;
  source: 'azp' | 'sub' | 'first_presenter';
  /** Its invocation in this trace, connected to the presenter's. */
  node: AgentNode | undefined;
  /** A span that shows the holder: its invocation's first span, or its first presentation. */
  span: SpanNode | undefined;
}

const MAX_HOSTS = 16;
const MAX_NODE_SCAN = 10_000;

export const credentialForwarding: DetectorDefinition<typeof CredentialForwardingConfig> = {
  kind: 'credential_forwarding',
  config: CredentialForwardingConfig,
  create(cfg, ctx) {
    const states = new TraceStates<TraceState>();
    return {
      kind: 'credential_forwarding',
      onSpans(trace, added, report) {
        const graph = trace.graph;
        let st = states.get(graph);
        for (const { span, view } of added) {
          if (!presents(span)) continue;
          st ??= states.of(graph, () => new Map());
          let cred = st.get(span.credential);
          if (!cred) {
            if (st.size >= cfg.max_credentials_per_trace) continue;
            st.set(span.credential, (cred = { claims: undefined, spans: [], settled: new Set(), quiet: false }));
          }
          cred.claims ??= view.credential?.claims;
          if (cred.spans.length < cfg.max_presentations) {
            cred.spans.push(span);
            cred.quiet = false;
          }
        }
        if (!st) return;
        const policy = ctx.policy();
        for (const [fingerprint, cred] of st) {
          if (cred.quiet) continue;
          const presenters = new Map<string, Presentation>();
          for (const span of cred.spans) {
            const role = roleOf(span);
            let p = presenters.get(role);
            if (!p) presenters.set(role, (p = { span, hosts: new Set(), count: 0 }));
            else if (span.start < p.span.start || (span.start === p.span.start && span.id < p.span.id)) p.span = span;
            p.count++;
            if (span.host && p.hosts.size < MAX_HOSTS) p.hosts.add(span.host);
          }
          for (const [role, p] of presenters) {
            if (cred.settled.has(role)) continue;
            // A role inherited from ancestors that have not arrived may still change: judge it later.
            if (!p.span.named && p.span.awaitsAncestor()) continue;
            const verdict = judge(graph, policy, fingerprint, cred.claims, presenters, role, p);
            if (verdict === 'wait') continue;
            if (verdict !== 'not_yet') cred.settled.add(role);
            if (typeof verdict === 'object') report(verdict);
          }
          cred.quiet = [...presenters.keys()].every((r) => cred.settled.has(r));
        }
      },
      forget(graph) {
        states.forget(graph);
      },
    };
  },
};

function roleOf(span: SpanNode): string {
  return span.agent || span.workload.key;
}

/**
 * The finding for presenter `role`; 'legitimate' for good (the holder, a relay, an actor of the
 * token); 'not_yet' when it is no forwarding as the trace stands (the first presenter so far);
 * 'wait' when it cannot be judged until more of the trace arrives.
 */
function judge(
  graph: TraceGraph,
  policy: Policy,
  fingerprint: string,
  claims: JwtClaims | undefined,
  presenters: ReadonlyMap<string, Presentation>,
  role: string,
  p: Presentation,
): FindingDraft | 'legitimate' | 'not_yet' | 'wait' {
  const s = p.span;
  if (policy.isRelay(role) || policy.isRelay(s.workload.service)) return 'legitimate';
  // An exchanged token that names this presenter in its act chain.
  if (namedIn(claims?.actors, s) !== undefined) return 'legitimate';

  let holder: Holder | undefined;
  for (const [source, id] of [['azp', claims?.clientId], ['sub', claims?.sub]] as const) {
    if (!id) continue;
    if (names(id, s)) return 'legitimate'; // the presenter is the holder
    const found = findAgent(graph, id, s);
    if (found?.connected) {
      holder = { role: found.node.role, source, node: found.node, span: found.node.start };
      break;
    }
    if (found || isPolicyRole(policy, id)) {
      // An agent of the trace not connected yet, or one the policy knows that is not in this trace.
      if (s.awaitsAncestor()) return 'wait';
      holder = { role: found?.node.role ?? id, source, node: undefined, span: found?.node.start };
      break;
    }
  }
  if (!holder) {
    // The first presenter in the trace: only once the presenter's tree is complete.
    if (s.awaitsAncestor()) return 'wait';
    const root = treeRoot(s);
    let first: [string, Presentation] | undefined;
    for (const [r, q] of presenters) {
      if (policy.isRelay(r) || policy.isRelay(q.span.workload.service)) continue;
      if (treeRoot(q.span) !== root) continue;
      if (!first || q.span.start < first[1].span.start || (q.span.start === first[1].span.start && q.span.id < first[1].span.id)) first = [r, q];
    }
    if (!first || first[0] === role) return 'not_yet';
    holder = { role: first[0], source: 'first_presenter', node: first[1].span.agentNode, span: first[1].span };
  }

  // The path from the holder's invocation to the presenter's.
  let nodes: AgentNode[];
  let hops: number | undefined;
  const presenterIsAgent = s.agentNode !== undefined && !s.agentNode.transparent;
  if (holder.node && holder.span) {
    // From the holder's invocation up to the common ancestor and down to the presenter's.
    nodes = agentsBetween(holder.span, s);
    hops = Math.max(1, nodes.length - (presenterIsAgent ? 1 : 0));
  } else {
    nodes = s.agentNode ? agentChain(s.agentNode) : [];
  }
  const host = s.host;
  const external = [...p.hosts].filter((h) => !policy.isInternal(h));
  const privileged = privilegedScopes(claims?.scope);
  const bound = claims?.cnf !== undefined && Object.keys(claims.cnf).length > 0;

  let severity: Severity = hops !== undefined && hops >= 2 ? 'high' : 'medium';
  if (privileged.length > 0) severity = raise(severity);
  if (external.length > 0) severity = raise(severity);
  if (bound) severity = 'critical';
  const confidence: Confidence = holder.source === 'first_presenter' ? 'medium' : 'high';

  const spans = [s, ...(holder.span ? [holder.span] : []), ...nodes.map((n) => n.start)];
  const where = host ? ` to ${host}` : '';
  const distance = hops !== undefined ? `${hops} delegation hop${hops === 1 ? '' : 's'} from its holder ${holder.role}` : `its holder ${holder.role} not in this trace`;
  return {
    key: `${fingerprint}:${role}`,
    severity,
    confidence,
    summary: `${role} presented a credential held by ${holder.role}${where}, ${distance}, and no act chain names it (${fingerprint})`,
    spans,
    chain: chainTo(nodes, s, useOf(s)),
    evidence: {
      fingerprint,
      holder: holder.role,
      holder_source: holder.source,
      holder_in_trace: holder.span !== undefined,
      presenter: role,
      presenter_workload: s.workload.service,
      hosts: [...p.hosts].sort(),
      external_hosts: external.sort(),
      hops: hops ?? null,
      presentations: p.count,
      scope: claims?.scope ?? [],
      privileged_scope: privileged,
      aud: claims?.aud ?? [],
      act_chain: claims?.actors ?? [],
      sender_constrained: bound ? Object.keys(claims!.cnf!).sort() : false,
      path: nodes.map((n) => n.role).join('>'),
    },
  };
}

function isPolicyRole(policy: Policy, id: string): boolean {
  if (policy.role(id)) return true;
  const c = canonicalName(id);
  return Object.keys(policy.config.roles).some((r) => canonicalName(r) === c);
}

function nodeNames(node: AgentNode, id: string): boolean {
  return names(id, node.start) || canonicalName(node.role) === canonicalName(id);
}

/** An agent invocation in the trace that `id` names: the presenter's nearest ancestor first, else the earliest connected one. */
function findAgent(graph: TraceGraph, id: string, presenter: SpanNode): { node: AgentNode; connected: boolean } | undefined {
  if (presenter.agentNode) {
    const chain = agentChain(presenter.agentNode);
    for (let i = chain.length - 1; i >= 0; i--) if (nodeNames(chain[i]!, id)) return { node: chain[i]!, connected: true };
  }
  if (graph.nodes.size > MAX_NODE_SCAN) return undefined;
  const root = treeRoot(presenter);
  let connected: AgentNode | undefined;
  let other: AgentNode | undefined;
  for (const n of graph.nodes.values()) {
    if (n.transparent || !nodeNames(n, id)) continue;
    if (treeRoot(n.start) === root) {
      if (!connected || n.start.start < connected.start.start) connected = n;
    } else other ??= n;
  }
  if (connected) return { node: connected, connected: true };
  return other ? { node: other, connected: false } : undefined;
}
