// The runtime AI bill of materials: agents, models and providers, tools, external endpoints,
// MCP servers and credentials, all derived from traffic. Costs nothing on the ingest path:
// traces are folded in when they leave the store (with their final, fully resolved roles),
// and a query folds the live traces into a copy. Each table is bounded; overflow is counted.
import type { JwtClaims } from '../agent/credentials.ts';
import type { TraceGraph } from './trace.ts';

interface Seen {
  firstSeen: number;
  lastSeen: number;
  count: number;
}

interface AgentEntry extends Seen { role: string; instances: Set<string>; workloads: Set<string> }
interface ModelEntry extends Seen { provider: string; model: string; roles: Set<string> }
interface ToolEntry extends Seen { tool: string; roles: Set<string> }
interface EndpointEntry extends Seen { host: string; roles: Set<string> }
interface McpEntry extends Seen { server: string; methods: Set<string>; roles: Set<string> }
interface CredentialEntry extends Seen { fingerprint: string; holders: Set<string>; presenters: Set<string> }

interface Tables {
  agents: Map<string, AgentEntry>;
  models: Map<string, ModelEntry>;
  tools: Map<string, ToolEntry>;
  endpoints: Map<string, EndpointEntry>;
  mcpServers: Map<string, McpEntry>;
  credentials: Map<string, CredentialEntry>;
}

const MAX_SET = 100;

function emptyTables(): Tables {
  return { agents: new Map(), models: new Map(), tools: new Map(), endpoints: new Map(), mcpServers: new Map(), credentials: new Map() };
}

export class Inventory {
  readonly #tables = emptyTables();
  readonly #maxEntries: number;
  /** Claims of each credential seen (bounded, oldest forgotten first). */
  readonly #claims = new Map<string, JwtClaims>();
  overflow = 0;

  constructor(maxEntries = 10_000) {
    this.#maxEntries = maxEntries;
  }

  rememberClaims(fingerprint: string, claims: JwtClaims): void {
    if (this.#claims.has(fingerprint)) return;
    if (this.#claims.size >= this.#maxEntries) this.#claims.delete(this.#claims.keys().next().value!);
    this.#claims.set(fingerprint, claims);
  }

  claimsOf(fingerprint: string): JwtClaims | undefined {
    return this.#claims.get(fingerprint);
  }

  /** Folds a trace that leaves the store. */
  fold(trace: TraceGraph): void {
    this.#foldInto(this.#tables, trace);
  }

  /** What is known now: folded traces plus the live ones. */
  snapshot(live: Iterable<TraceGraph>): InventoryJson {
    const t = cloneTables(this.#tables);
    for (const trace of live) this.#foldInto(t, trace);
    const iso = (ms: number) => new Date(ms).toISOString();
    const seen = (e: Seen) => ({ firstSeen: iso(e.firstSeen), lastSeen: iso(e.lastSeen), spans: e.count });
    const sorted = <T>(m: Map<string, T>) => [...m.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([, v]) => v);
    return {
      agents: sorted(t.agents).map((e) => ({ role: e.role, instances: [...e.instances].sort(), workloads: [...e.workloads].sort(), ...seen(e) })),
      models: sorted(t.models).map((e) => ({ provider: e.provider, model: e.model, roles: [...e.roles].sort(), ...seen(e) })),
      tools: sorted(t.tools).map((e) => ({ tool: e.tool, roles: [...e.roles].sort(), ...seen(e) })),
      endpoints: sorted(t.endpoints).map((e) => ({ host: e.host, roles: [...e.roles].sort(), ...seen(e) })),
      mcpServers: sorted(t.mcpServers).map((e) => ({ server: e.server, methods: [...e.methods].sort(), roles: [...e.roles].sort(), ...seen(e) })),
      credentials: sorted(t.credentials).map((e) => ({ fingerprint: e.fingerprint, holders: [...e.holders].sort(), presenters: [...e.presenters].sort(), ...seen(e) })),
      overflow: this.overflow,
    };
  }

  #foldInto(t: Tables, trace: TraceGraph): void {
    // Who presented each credential first in this trace: its holder when no claim names one.
    const firstPresenter = new Map<string, { role: string; at: number }>();
    for (const s of trace.spans.values()) {
      const role = s.agent;
      const at = s.start || trace.lastSeen;
      const agent = this.#entry(t.agents, role, () => ({ role, instances: new Set<string>(), workloads: new Set<string>() }), at);
      if (agent) {
        // Instances come from the spans that name their agent (the rest only inherit it).
        if (s.ownAgent) addBounded(agent.instances, s.agentId || s.ownAgent);
        if (s.workload.service) addBounded(agent.workloads, [s.workload.namespace, s.workload.service].filter(Boolean).join('/'));
      }
      if (s.model || s.provider) {
        const m = this.#entry(t.models, `${s.provider}/${s.model}`, () => ({ provider: s.provider, model: s.model, roles: new Set<string>() }), at);
        if (m) addBounded(m.roles, role);
      }
      if (s.tool) {
        const e = this.#entry(t.tools, s.tool, () => ({ tool: s.tool, roles: new Set<string>() }), at);
        if (e) addBounded(e.roles, role);
      }
      const hosts = s.host ? [s.host, ...(s.argTargets ?? [])] : s.argTargets ?? [];
      for (const host of hosts) {
        if (host.includes('@')) continue; // e-mail addresses are destinations, not endpoints
        const e = this.#entry(t.endpoints, host, () => ({ host, roles: new Set<string>() }), at);
        if (e) addBounded(e.roles, role);
      }
      if (s.mcp) {
        const server = s.host || s.workload.service || 'unknown';
        const e = this.#entry(t.mcpServers, server, () => ({ server, methods: new Set<string>(), roles: new Set<string>() }), at);
        if (e) {
          addBounded(e.methods, s.mcp);
          addBounded(e.roles, role);
        }
      }
      if (s.credential) {
        const e = this.#entry(t.credentials, s.credential, () => ({ fingerprint: s.credential, holders: new Set<string>(), presenters: new Set<string>() }), at);
        if (e) addBounded(e.presenters, role);
        const first = firstPresenter.get(s.credential);
        if (!first || at < first.at) firstPresenter.set(s.credential, { role, at });
      }
    }
    for (const [fp, first] of firstPresenter) {
      const e = t.credentials.get(fp);
      if (!e) continue;
      const claims = this.#claims.get(fp);
      addBounded(e.holders, claims?.clientId ?? claims?.sub ?? first.role);
    }
  }

  #entry<T extends Seen>(m: Map<string, T>, key: string, make: () => Omit<T, keyof Seen>, at: number): T | undefined {
    let e = m.get(key);
    if (!e) {
      if (m.size >= this.#maxEntries) {
        this.overflow++;
        return undefined;
      }
      e = { ...make(), firstSeen: at, lastSeen: at, count: 0 } as T;
      m.set(key, e);
    }
    e.count++;
    if (at < e.firstSeen) e.firstSeen = at;
    if (at > e.lastSeen) e.lastSeen = at;
    return e;
  }
}

function addBounded(set: Set<string>, v: string): void {
  if (v && set.size < MAX_SET) set.add(v);
}

function cloneTables(t: Tables): Tables {
  const copy = <T extends object>(m: Map<string, T>) =>
    new Map([...m].map(([k, v]) => [k, Object.fromEntries(Object.entries(v).map(([f, x]) => [f, x instanceof Set ? new Set(x) : x])) as T]));
  return {
    agents: copy(t.agents), models: copy(t.models), tools: copy(t.tools),
    endpoints: copy(t.endpoints), mcpServers: copy(t.mcpServers), credentials: copy(t.credentials),
  };
}

export interface InventoryJson {
  agents: { role: string; instances: string[]; workloads: string[]; firstSeen: string; lastSeen: string; spans: number }[];
  models: { provider: string; model: string; roles: string[]; firstSeen: string; lastSeen: string; spans: number }[];
  tools: { tool: string; roles: string[]; firstSeen: string; lastSeen: string; spans: number }[];
  endpoints: { host: string; roles: string[]; firstSeen: string; lastSeen: string; spans: number }[];
  mcpServers: { server: string; methods: string[]; roles: string[]; firstSeen: string; lastSeen: string; spans: number }[];
  credentials: { fingerprint: string; holders: string[]; presenters: string[]; firstSeen: string; lastSeen: string; spans: number }[];
  overflow: number;
}
