// One trace's delegation graph, built incrementally from compact span summaries as spans
// arrive in any order. A child that comes before its parent waits in `pending` and is
// stitched in when the parent arrives; identity inherited down the tree is then resolved
// again for that subtree. Agent nodes (one per agent invocation) start where the resolved
// agent changes; delegation edges come from the tree (parent/child, remote invoke_agent)
// and from explicit records (handoffs, graph.node.parent_id, gen_ai.transfer.*, span links).
// Depth, root and path are derived lazily, once per change of the trace.
import { SpanView, type Workload } from '../agent/view.ts';
import type { Finding } from '../detect/finding.ts';
import { StringPool } from '../agent/values.ts';

export type DelegationVia = 'parent_child' | 'handoff' | 'graph_parent' | 'transfer' | 'remote' | 'link';

export interface LinkRef {
  traceId: string;
  spanId: string;
}

const ACTIVE_OPERATIONS = new Set(['chat', 'execute_tool', 'embeddings', 'retrieval', 'handoff']);

/**
 * The parts of a span summary that most spans do not have (delegation records, MCP, database,
 * targets named in tool arguments, links): one shared empty instance unless a span has some, so
 * that the common span pays one field for all of them.
 */
class SpanExtra {
  readonly transferTo: string;
  readonly handoffFrom: string;
  readonly graphNodeId: string;
  readonly graphNodeParentId: string;
  readonly remoteAgent: string;
  readonly mcp: string;
  readonly mcpMethod: string;
  readonly db: string;
  readonly argTargets: readonly string[] | undefined;
  readonly links: readonly LinkRef[] | undefined;

  constructor(view: SpanView, links: LinkRef[] | undefined) {
    this.transferTo = view.transferTo;
    this.handoffFrom = view.handoffFrom;
    this.graphNodeId = view.graphNodeId;
    this.graphNodeParentId = view.graphNodeParentId;
    this.remoteAgent = view.remoteAgent;
    this.mcp = view.mcpMethod || view.mcpResource ? `${view.mcpMethod} ${view.mcpResource}`.trim() : '';
    this.mcpMethod = view.mcpMethod;
    this.db = view.db;
    this.argTargets = view.argTargets;
    this.links = links;
  }

  static of(view: SpanView, links: LinkRef[] | undefined): SpanExtra {
    const none = !links && !view.argTargets && view.transferTo === '' && view.handoffFrom === '' && view.graphNodeId === '' &&
      view.graphNodeParentId === '' && view.remoteAgent === '' && view.mcpMethod === '' && view.mcpResource === '' && view.db === '';
    return none ? NO_EXTRA : new SpanExtra(view, links);
  }
}

/** What a span with none of them shares: the parts of an empty view. */
const NO_EXTRA = new SpanExtra(new SpanView(), undefined);

const JUDGED = 1;
const NAMED = 2;
const ACTIVE = 4;

/**
 * What the graph keeps of a span: a few interned strings and numbers, never the span. Held for
 * every span of every live trace, so it is kept small: rare parts in a shared SpanExtra, flags in
 * one small integer (bench/agent-pipeline.ts measures the bytes per span).
 */
export class SpanNode {
  readonly id: string;
  readonly parentId: string;
  readonly trace: TraceGraph;
  parent: SpanNode | undefined = undefined;
  children: SpanNode[] | undefined = undefined;
  readonly kind: number;
  readonly operation: string;
  readonly ownAgent: string;
  readonly agentId: string;
  readonly tool: string;
  readonly host: string;
  readonly credential: string;
  readonly model: string;
  readonly provider: string;
  readonly method: string;
  readonly path: string;
  readonly workload: Workload;
  readonly extra: SpanExtra;
  /** Milliseconds since the epoch. */
  readonly start: number;
  readonly end: number;
  /** Findings this span shows (set by detect, written onto the span by enrich). */
  findings: Finding[] | undefined = undefined;
  #flags: number;
  /** Resolved: own agent, else inherited, else the service name. */
  agent = '';
  agentNode: AgentNode | undefined = undefined;

  constructor(trace: TraceGraph, id: string, parentId: string, view: SpanView, workload: Workload, start: number, end: number, links: LinkRef[] | undefined) {
    this.trace = trace;
    this.id = id;
    this.parentId = parentId;
    this.kind = view.kind;
    this.operation = view.operation;
    this.ownAgent = view.agent;
    this.agentId = view.agentId;
    this.tool = view.tool;
    this.host = view.host;
    this.credential = view.credential?.fingerprint ?? '';
    this.model = view.model;
    this.provider = view.provider;
    this.method = view.method;
    this.path = view.path;
    this.workload = workload;
    this.extra = SpanExtra.of(view, links);
    this.start = start;
    this.end = end;
    this.#flags = this.tool !== '' || this.model !== '' || ACTIVE_OPERATIONS.has(this.operation) ? ACTIVE : 0;
  }

  get transferTo(): string {
    return this.extra.transferTo;
  }
  get handoffFrom(): string {
    return this.extra.handoffFrom;
  }
  get graphNodeId(): string {
    return this.extra.graphNodeId;
  }
  get graphNodeParentId(): string {
    return this.extra.graphNodeParentId;
  }
  get remoteAgent(): string {
    return this.extra.remoteAgent;
  }
  get mcp(): string {
    return this.extra.mcp;
  }
  get mcpMethod(): string {
    return this.extra.mcpMethod;
  }
  get db(): string {
    return this.extra.db;
  }
  get argTargets(): readonly string[] | undefined {
    return this.extra.argTargets;
  }
  get links(): readonly LinkRef[] | undefined {
    return this.extra.links;
  }

  /** Detect has judged it (a span sent again is judged once). */
  get judged(): boolean {
    return (this.#flags & JUDGED) !== 0;
  }
  set judged(on: boolean) {
    this.#flags = on ? this.#flags | JUDGED : this.#flags & ~JUDGED;
  }
  /** False when `agent` is only the service-name fallback. */
  get named(): boolean {
    return (this.#flags & NAMED) !== 0;
  }
  set named(on: boolean) {
    this.#flags = on ? this.#flags | NAMED : this.#flags & ~NAMED;
  }
  /** GenAI activity (a model call or a tool): what makes even a span that names no agent an agent's. */
  get active(): boolean {
    return (this.#flags & ACTIVE) !== 0;
  }

  /** True while some ancestor has not arrived: what is inherited from above is not known yet. */
  awaitsAncestor(): boolean {
    let top: SpanNode = this;
    for (let guard = 0; top.parent && guard < 10_000; guard++) top = top.parent;
    return top.parentId !== '';
  }

  /** Rough heap bytes, for the store's byte budget. */
  estimateBytes(): number {
    const extra = this.extra;
    if (extra === NO_EXTRA) return 400;
    return 504 + (extra.argTargets ? 16 * extra.argTargets.length : 0) + (extra.links ? 120 * extra.links.length : 0);
  }
}

/** One agent invocation: the spans from where an agent takes over until another does. */
export class AgentNode {
  readonly id: string;
  readonly start: SpanNode;
  role: string;
  /** True when no span named the agent: the role is only the service-name fallback. */
  anonymous = false;
  /** Some span of it shows GenAI activity (a model call, a tool). */
  active = false;

  /**
   * An anonymous node with no GenAI activity (an HTTP server, a workflow wrapper): not an agent.
   * It is no node of the graph and no delegation hop; agents delegate through it.
   */
  get transparent(): boolean {
    return this.anonymous && !this.active;
  }
  /** Who delegated to this invocation, and how (derived). */
  delegator: AgentNode | undefined = undefined;
  via: DelegationVia = 'parent_child';
  /** The span that shows the delegation (a handoff span, the span where the agent starts…). */
  viaSpan = '';
  depth = 0;
  root = '';
  path = '';

  constructor(start: SpanNode) {
    this.id = start.id;
    this.start = start;
    this.role = start.agent;
  }
}

export interface TraceGraphOptions {
  /** Finds a span in another trace, for span links across traces. */
  lookup(traceId: string, spanId: string): SpanNode | undefined;
  /** Told when bytes are charged to a trace for state kept beside it (see TraceGraph.charge). */
  charged(bytes: number): void;
}

/** Agent names compare loosely across dialects: transfer_to_billing_agent matches "Billing Agent". */
function sameAgent(a: string, b: string): boolean {
  return a === b || canonicalName(a) === canonicalName(b);
}

/** Canonical forms of the few names that recur (roles, services, agent ids), remembered. */
const canonicalNames = new Map<string, string>();
const MAX_CANONICAL_NAMES = 4096;

/** A name as agent names are compared: lower case, runs of other characters as one `_`. */
export function canonicalName(s: string): string {
  let c = canonicalNames.get(s);
  if (c === undefined) {
    c = s.toLowerCase().replace(/[^a-z0-9]+/g, '_').replace(/^_|_$/g, '');
    if (canonicalNames.size >= MAX_CANONICAL_NAMES) canonicalNames.clear();
    canonicalNames.set(s, c);
  }
  return c;
}

const delegationPaths = new StringPool(4096);

/** Roles joined by '>', a long chain's middle counted instead of named. */
function pathOf(chain: readonly AgentNode[]): string {
  const role = (c: AgentNode) => c.role;
  if (chain.length <= MAX_PATH_ROLES) return chain.map(role).join('>');
  return [...chain.slice(0, PATH_END).map(role), `…${chain.length - 2 * PATH_END} more…`, ...chain.slice(-PATH_END).map(role)].join('>');
}

/** Nodes seen on the walk agentChain is doing (reused: the walk is synchronous). */
const walked: (AgentNode | undefined)[] = [];
/** Steps after which the walk checks for a loop with a Set rather than by scanning `walked`. */
const SHORT_WALK = 32;
/**
 * Delegations a chain follows at most. Real chains are a handful deep; a trace of thousands would
 * cost time and memory in the square of its depth (every node's chain, on every change). Past
 * this, depth counts no further and the chain starts at the cut.
 */
export const MAX_CHAIN_STEPS = 256;
/** Roles a path names in full; a longer one keeps its first and last PATH_END roles. */
const MAX_PATH_ROLES = 32;
const PATH_END = 8;

/**
 * The agent invocations from the root to `node`, following delegations: up to the root agent
 * over named agents only (a transparent node acts within the chain of the agent above it); a
 * delegation loop stops the walk where it closes. Runs for every node of a trace on each change,
 * so short chains (all real ones) allocate nothing but the result.
 */
export function agentChain(node: AgentNode): AgentNode[] {
  const chain: AgentNode[] = [];
  let steps = 0;
  let seen: Set<AgentNode> | undefined;
  for (let c: AgentNode | undefined = node; c && steps < MAX_CHAIN_STEPS; c = c.delegator) {
    if (seen) {
      if (seen.has(c)) break;
      seen.add(c);
    } else {
      if (walkedBefore(c, steps)) break;
      if (steps < SHORT_WALK) walked[steps] = c;
      else seen = new Set(walked as AgentNode[]).add(c);
    }
    steps++;
    if (!c.transparent) chain.push(c);
  }
  walked.fill(undefined, 0, Math.min(steps, SHORT_WALK));
  return chain.reverse();
}

function walkedBefore(node: AgentNode, steps: number): boolean {
  for (let i = 0; i < steps; i++) if (walked[i] === node) return true;
  return false;
}

/** Serials of TraceGraphs, so that notes about one can name it without keeping it alive. */
let nextSerial = 0;

export class TraceGraph {
  readonly traceId: string;
  /** Unique in this process: a trace evicted and made again is another graph. */
  readonly serial = nextSerial++;
  readonly spans = new Map<string, SpanNode>();
  /** Children that arrived before their parent, by parent id (made when first needed: most traces of one process never need it). */
  #pending: Map<string, SpanNode[]> | undefined;
  readonly nodes = new Map<string, AgentNode>();
  /** Spans that name a delegation target explicitly (handoffs, transfers). */
  #transfers: SpanNode[] | undefined;
  /** Some span names its graph parent (graph.node.parent_id). */
  #graphParents = false;
  bytes = 0;
  lastSeen = 0;
  /**
   * Times a span arrived to adopt children that came before it: the only event after which a
   * span already in the graph may stop awaiting an ancestor (SpanNode.awaitsAncestor).
   */
  adoptions = 0;
  #version = 0;
  #derivedVersion = -1;
  readonly #opts: TraceGraphOptions;

  constructor(traceId: string, opts: TraceGraphOptions) {
    this.traceId = traceId;
    this.#opts = opts;
  }

  get pending(): ReadonlyMap<string, readonly SpanNode[]> {
    return this.#pending ?? EMPTY_PENDING;
  }

  get transfers(): readonly SpanNode[] {
    return this.#transfers ?? [];
  }

  /** Adds a span; returns false for a duplicate (OTLP clients may resend). */
  add(span: SpanNode): boolean {
    if (this.spans.has(span.id)) return false;
    this.spans.set(span.id, span);
    this.bytes += span.estimateBytes();
    if (span.parentId) {
      const parent = this.spans.get(span.parentId);
      if (parent) attach(parent, span);
      else {
        this.#pending ??= new Map();
        const waiting = this.#pending.get(span.parentId);
        if (waiting) waiting.push(span);
        else this.#pending.set(span.parentId, [span]);
      }
    }
    const orphans = this.#pending?.get(span.id);
    if (orphans) {
      this.#pending!.delete(span.id);
      for (const child of orphans) attach(span, child);
      this.adoptions++;
    }
    if (span.transferTo) (this.#transfers ??= []).push(span);
    if (span.graphNodeParentId) this.#graphParents = true;
    this.#resolve(span);
    this.#version++;
    return true;
  }

  /**
   * Re-resolves agent identity and agent nodes for the subtree under `top`. Identity is
   * inherited down the tree, but not across a workload boundary (another service's spans are
   * that service's own work), except where a remote invoke_agent CLIENT span names the agent it
   * calls.
   */
  #resolve(top: SpanNode): void {
    const stack: SpanNode[] = [top];
    while (stack.length > 0) {
      const s = stack.pop()!;
      const p = s.parent;
      const crosses = p !== undefined && p.workload.key !== s.workload.key;
      const named = s.ownAgent || (p ? p.remoteAgent || (!crosses && p.named ? p.agent : '') : '');
      const agent = named || s.workload.service;
      const startsNode = !p || crosses || agent !== p.agent || (named !== '') !== p.named;
      s.agent = agent;
      s.named = named !== '';
      if (startsNode) {
        let node = this.nodes.get(s.id);
        if (!node) this.nodes.set(s.id, (node = new AgentNode(s)));
        node.role = agent;
        node.anonymous = !s.named;
        node.active = s.active;
        s.agentNode = node;
      } else {
        this.nodes.delete(s.id);
        s.agentNode = p.agentNode;
        if (s.active && s.agentNode) s.agentNode.active = true;
      }
      if (s.children) for (const c of s.children) stack.push(c);
    }
  }

  /** Derives delegators, depth, root and path for every agent node (once per change). */
  derive(): void {
    if (this.#derivedVersion === this.#version) return;
    this.#derivedVersion = this.#version;
    // Time order matters only to match explicit records (graph.node.parent_id, transfers) to the
    // node they precede; most traces have none, and are spared the sort.
    const nodes = [...this.nodes.values()];
    if (this.#transfers || this.#graphParents) nodes.sort((a, b) => a.start.start - b.start.start);
    for (const n of nodes) {
      n.delegator = undefined;
      n.via = 'parent_child';
      n.viaSpan = n.id;
      const startParent = n.start.parent;
      // Explicit records first: they name the delegator even where the tree does not.
      const graphParent = n.start.graphNodeParentId;
      if (graphParent) {
        const from = lastBefore(nodes, n, (c) => c !== n && (c.start.graphNodeId === graphParent || sameAgent(c.role, graphParent)));
        if (from) this.#setDelegator(n, from, 'graph_parent', n.id);
      }
      if (!n.delegator) {
        const t = this.#transfers ? lastTransferTo(this.#transfers, n) : undefined;
        if (t?.agentNode && t.agentNode !== n) this.#setDelegator(n, t.agentNode, t.operation === 'handoff' ? 'handoff' : 'transfer', t.id);
      }
      if (!n.delegator && startParent?.agentNode) {
        // Through anonymous nodes (a service's own spans between two agents) to the agent above.
        let via: DelegationVia = startParent.remoteAgent ? 'remote' : startParent.workload.key !== n.start.workload.key ? 'remote' : 'parent_child';
        let d: AgentNode | undefined = startParent.agentNode;
        const seen = new Set<AgentNode>();
        while (d && d.transparent && !n.transparent && !seen.has(d)) {
          seen.add(d);
          const above: SpanNode | undefined = d.start.parent;
          if (above && (above.remoteAgent || above.workload.key !== d.start.workload.key)) via = 'remote';
          d = above?.agentNode;
        }
        if (d && d !== n) this.#setDelegator(n, d, via, n.id);
      }
      if (!n.delegator && !startParent && n.start.links) {
        for (const l of n.start.links) {
          const other = l.traceId === this.traceId ? this.spans.get(l.spanId) : this.#opts.lookup(l.traceId, l.spanId);
          if (other?.agentNode && other.agentNode !== n) {
            this.#setDelegator(n, other.agentNode, 'link', n.id);
            break;
          }
        }
      }
    }
    for (const n of nodes) {
      const chain = agentChain(n);
      n.depth = Math.max(0, chain.length - 1);
      n.root = chain[0]?.role ?? n.role;
      // Interned: the same few paths recur in every trace, and each node keeps one.
      n.path = chain.length > 1 ? delegationPaths.intern(pathOf(chain)) : (chain[0]?.role ?? n.role);
    }
  }

  #setDelegator(n: AgentNode, from: AgentNode, via: DelegationVia, span: string): void {
    n.delegator = from;
    n.via = via;
    n.viaSpan = span;
  }

  touch(now: number): void {
    this.lastSeen = now;
  }

  /**
   * Counts state kept beside this trace for as long as it lives (detectors' per-trace state)
   * in its bytes and its store's, so that the store's byte budget bounds that too.
   */
  charge(bytes: number): void {
    if (this.#gone) return; // evicted: its store no longer counts it
    this.bytes += bytes;
    this.#opts.charged(bytes);
  }

  #onEvict: (() => void)[] | undefined;

  /** Calls `fn` once when the store evicts this trace (for state kept beside the graph). */
  onEvict(fn: () => void): void {
    (this.#onEvict ??= []).push(fn);
  }

  #gone = false;

  evicted(): void {
    this.#gone = true;
    const listeners = this.#onEvict;
    this.#onEvict = undefined;
    for (const fn of listeners ?? []) fn();
  }
}

const EMPTY_PENDING: ReadonlyMap<string, readonly SpanNode[]> = new Map();

/**
 * Makes `child` a child of `parent`, unless that would close a loop (a span that names itself, or
 * spans that name each other, as parents): the tree is walked down and up everywhere, and a loop
 * would never end. The child then stays a root.
 */
function attach(parent: SpanNode, child: SpanNode): void {
  for (let p: SpanNode | undefined = parent; p; p = p.parent) if (p === child) return;
  child.parent = parent;
  (parent.children ??= []).push(child);
}

/** The latest node before `n` (by start time) that matches. */
function lastBefore(sorted: AgentNode[], n: AgentNode, match: (c: AgentNode) => boolean): AgentNode | undefined {
  let found: AgentNode | undefined;
  for (const c of sorted) {
    if (c.start.start > n.start.start) break;
    if (match(c)) found = c;
  }
  return found;
}

/** The latest transfer/handoff span naming n's role that happened before n started, outside n. */
function lastTransferTo(transfers: readonly SpanNode[], n: AgentNode): SpanNode | undefined {
  let found: SpanNode | undefined;
  for (const t of transfers) {
    if (t.start > n.start.start + 1) continue;
    if (!sameAgent(t.transferTo, n.role)) continue;
    if (t.agentNode === n) continue;
    if (!found || t.start > found.start) found = t;
  }
  return found;
}
