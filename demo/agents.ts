// The demo's simulated multi-agent system: four agent services (orchestrator, research, analysis,
// writer), each instrumented with its own OpenTelemetry TracerProvider (its own service.name, so
// its own workload), recording spans in the OpenTelemetry GenAI semantic conventions:
//   invoke_agent <agent>   gen_ai.operation.name, gen_ai.agent.name (CLIENT on the caller's side,
//                          an HTTP SERVER span and an INTERNAL invoke_agent on the callee's)
//   chat <model>           gen_ai.provider.name, gen_ai.request.model, server.address, tokens,
//                          and the agent's own model key in http.request.header.authorization
//   execute_tool <tool>    gen_ai.tool.name, gen_ai.tool.call.arguments / .result, and where the
//                          tool calls a service: server.address, url.full, the credential it sends
// Calls between agents carry W3C trace context (traceparent), injected on the caller's CLIENT
// span and extracted by the callee, as over HTTP.
//
// A task is planned first (plain objects: every span with its start and end, in ms from the
// task's start), then emitted through the SDK with absolute times: spans are started parent
// first and ended in the order of their end times, so each service's span processor sees them
// as a live run would (children first). The same plans go to a collector over OTLP in the demo,
// and through the detection pipeline in-process in test/scenarios/benign.test.ts.
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, defaultTextMapGetter, defaultTextMapSetter, trace, type Attributes, type Context, type Span } from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { TracerProvider, type IdGenerator, type SpanProcessor } from '@opentelemetry/sdk-trace';

export const AGENTS = ['orchestrator', 'research', 'analysis', 'writer'] as const;
export type AgentName = (typeof AGENTS)[number];

export const NAMESPACE = 'agents';
/** The service (workload) each agent runs as. */
export const SERVICE: Record<AgentName, string> = {
  orchestrator: 'orchestrator-agent',
  research: 'research-agent',
  analysis: 'analysis-agent',
  writer: 'writer-agent',
};
const MODEL: Record<AgentName, string> = {
  orchestrator: 'gpt-4.1',
  research: 'gpt-4.1-mini',
  analysis: 'gpt-4.1',
  writer: 'gpt-4.1-mini',
};
/** Where each agent's HTTP endpoint is, for the agents that call it. */
export const AGENT_HOST = (a: AgentName) => `${SERVICE[a]}.${NAMESPACE}.svc.cluster.local`;

// ---------------------------------------------------------------------------------- randomness

/** A small seeded PRNG (mulberry32): the same seed, the same traffic. */
export class Rng {
  #s: number;
  constructor(seed: number) {
    this.#s = seed >>> 0;
  }
  next(): number {
    let t = (this.#s = (this.#s + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  /** An integer in [min, max]. */
  int(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1));
  }
  pick<T>(list: readonly T[]): T {
    return list[Math.floor(this.next() * list.length)]!;
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  hex(n: number): string {
    let s = '';
    for (let i = 0; i < n; i++) s += '0123456789abcdef'[Math.floor(this.next() * 16)];
    return s;
  }
  /** k distinct items of `list` (k ≤ its length), in random order. */
  sample<T>(list: readonly T[], k: number): T[] {
    const copy = [...list];
    for (let i = copy.length - 1; i > 0; i--) {
      const j = Math.floor(this.next() * (i + 1));
      [copy[i], copy[j]] = [copy[j]!, copy[i]!];
    }
    return copy.slice(0, Math.min(k, copy.length));
  }
}

/** Trace and span ids from a seeded PRNG (tests: reproducible runs). */
export function seededIds(rng: Rng): IdGenerator {
  return { generateTraceId: () => rng.hex(32), generateSpanId: () => rng.hex(16) };
}

// ---------------------------------------------------------------------------------- credentials

const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
/** An unsigned-looking JWT (the collector reads claims without verifying: they are evidence). */
export function jwt(claims: Record<string, unknown>, rng: Rng): string {
  return `${b64({ alg: 'RS256', typ: 'JWT', kid: 'corp-idp-1' })}.${b64({ iss: 'https://idp.corp.internal', exp: 2_000_000_000, ...claims })}.${Buffer.from(rng.hex(64), 'hex').toString('base64url')}`;
}

/** What each agent service holds: its own model key and its own service tokens; nothing shared. */
export interface Credentials {
  /** Model provider key, per agent (a project key each: never one key for all). */
  model: Record<AgentName, string>;
  /** Each agent's token for calling other agents (aud agents); only the orchestrator does in normal traffic. */
  agents: Record<AgentName, string>;
  /** orchestrator → mail service. */
  orchestratorMail: string;
  /** research → search API. */
  researchSearch: string;
  /** analysis → report renderer. */
  analysisRender: string;
  /** writer → knowledge base. */
  writerKb: string;
}

export function makeCredentials(rng: Rng): Credentials {
  const model = {} as Record<AgentName, string>;
  for (const a of AGENTS) model[a] = `sk-proj-${a}-${rng.hex(40)}`;
  const token = (agent: AgentName, aud: string, scope: string) => jwt({ sub: `system:serviceaccount:${NAMESPACE}:${SERVICE[agent]}`, azp: agent, aud, scope }, rng);
  const agents = {} as Record<AgentName, string>;
  for (const a of AGENTS) agents[a] = token(a, 'agents', 'agents:invoke');
  return {
    model,
    agents,
    orchestratorMail: token('orchestrator', 'mail', 'mail:send'),
    researchSearch: `srch-live-${rng.hex(32)}`,
    analysisRender: token('analysis', 'render', 'reports:render'),
    writerKb: token('writer', 'kb', 'kb:read kb:write'),
  };
}

// ---------------------------------------------------------------------------------- the plan

export interface PlannedSpan {
  /** The agent service that records it. */
  agent: AgentName;
  name: string;
  kind: SpanKind;
  /** ms from the task's start. */
  start: number;
  end: number;
  attributes: Attributes;
  error?: string;
  children: PlannedSpan[];
}

export interface TaskPlan {
  /** What the task is, for the demo's output. */
  label: string;
  root: PlannedSpan;
  /** ms from the first start to the last end. */
  duration: number;
}

export function spanCount(plan: TaskPlan): number {
  let n = 0;
  const stack = [plan.root];
  while (stack.length > 0) {
    const s = stack.pop()!;
    n++;
    stack.push(...s.children);
  }
  return n;
}

export function finishPlan(label: string, root: PlannedSpan): TaskPlan {
  let first = Infinity, last = -Infinity;
  const stack = [root];
  while (stack.length > 0) {
    const s = stack.pop()!;
    if (s.end <= s.start) s.end = s.start + 1;
    first = Math.min(first, s.start);
    last = Math.max(last, s.end);
    stack.push(...s.children);
  }
  return { label, root, duration: last - first };
}

const json = (v: unknown) => (typeof v === 'string' ? v : JSON.stringify(v));

export interface ToolCall {
  tool: string;
  args: unknown;
  result: unknown;
  /** Duration (ms). */
  ms: number;
  /** Target attributes (server.address, url.full, db.*), and the credential it sends, if any. */
  attrs?: Attributes;
  credential?: string;
}

/**
 * One agent invocation being planned: its invoke_agent span and a cursor `t` (ms from the task's
 * start) that each model call and tool call advances.
 */
export class AgentRun {
  readonly agent: AgentName;
  readonly span: PlannedSpan;
  t: number;
  readonly #sys: AgentCast;
  #calls = 0;

  constructor(sys: AgentCast, agent: AgentName, span: PlannedSpan, t: number) {
    this.#sys = sys;
    this.agent = agent;
    this.span = span;
    this.t = t;
  }

  /** The credentials of the system (each agent uses its own). */
  get credentials(): Credentials {
    return this.#sys.credentials;
  }

  #child(name: string, kind: SpanKind, start: number, end: number, attributes: Attributes, parent: PlannedSpan = this.span): PlannedSpan {
    const s: PlannedSpan = { agent: this.agent, name, kind, start, end, attributes, children: [] };
    parent.children.push(s);
    return s;
  }

  /** A model call (chat), `ms` long, with this agent's own model key. */
  chat(rng: Rng, opts: { ms?: number; finish?: 'tool_calls' | 'stop'; key?: string } = {}): PlannedSpan {
    const model = MODEL[this.agent];
    const ms = opts.ms ?? rng.int(180, 900);
    const s = this.#child(`chat ${model}`, SpanKind.CLIENT, this.t, this.t + ms, {
      'gen_ai.operation.name': 'chat',
      'gen_ai.provider.name': 'openai',
      'gen_ai.request.model': model,
      'gen_ai.response.model': `${model}-2025-04-14`,
      'gen_ai.usage.input_tokens': rng.int(400, 6000),
      'gen_ai.usage.output_tokens': rng.int(20, 900),
      'gen_ai.response.finish_reasons': [opts.finish ?? 'tool_calls'],
      'server.address': 'api.openai.com',
      'server.port': 443,
      'http.request.header.authorization': [`Bearer ${opts.key ?? this.#sys.credentials.model[this.agent]}`],
    });
    this.t += ms + rng.int(2, 15);
    return s;
  }

  /** Tool calls issued together by one model step (run in parallel); the cursor moves past the slowest. */
  tools(rng: Rng, calls: readonly ToolCall[]): PlannedSpan[] {
    const start = this.t;
    let end = start;
    const spans = calls.map((c, i) => {
      const s0 = start + i * rng.int(0, 3);
      const s = this.#child(`execute_tool ${c.tool}`, SpanKind.INTERNAL, s0, s0 + c.ms, this.#toolAttrs(c));
      end = Math.max(end, s.end);
      return s;
    });
    this.t = end + rng.int(2, 12);
    return spans;
  }

  tool(rng: Rng, call: ToolCall): PlannedSpan {
    return this.tools(rng, [call])[0]!;
  }

  #toolAttrs(c: ToolCall): Attributes {
    return {
      'gen_ai.operation.name': 'execute_tool',
      'gen_ai.tool.name': c.tool,
      'gen_ai.tool.type': 'function',
      'gen_ai.tool.call.id': `call_${this.agent.slice(0, 3)}${++this.#calls}_${this.span.start}`,
      'gen_ai.tool.call.arguments': json(c.args),
      'gen_ai.tool.call.result': json(c.result),
      ...(c.attrs ?? {}),
      ...(c.credential ? { 'http.request.header.authorization': [`Bearer ${c.credential}`] } : {}),
    };
  }

  /**
   * Delegates to another agent through a tool (`delegate_<agent>` by default): the tool span,
   * under it the remote invoke_agent CLIENT call (with this agent's token for the agents API),
   * and in the callee's service the HTTP SERVER span and its invoke_agent span, where `body`
   * plans the callee's work and returns its answer. `fireAndForget`: the call returns 202 at
   * once and the callee keeps working on its own (the zombie pattern).
   */
  delegate(
    rng: Rng,
    to: AgentName,
    args: Record<string, unknown>,
    body: (run: AgentRun) => string,
    opts: { tool?: string; credential?: string; fireAndForget?: boolean } = {},
  ): { answer: string; tool: PlannedSpan; run: AgentRun } {
    const toolName = opts.tool ?? `delegate_${to}`;
    const t0 = this.t;
    const tool = this.#child(`execute_tool ${toolName}`, SpanKind.INTERNAL, t0, t0, {});
    const host = AGENT_HOST(to);
    const path = `/v1/agents/${to}/invoke`;
    const client = this.#child(`invoke_agent ${to}`, SpanKind.CLIENT, t0 + 1, t0 + 1, {
      'gen_ai.operation.name': 'invoke_agent',
      'gen_ai.agent.name': to,
      'gen_ai.provider.name': 'corp.agents',
      'server.address': host,
      'server.port': 8080,
      'url.full': `http://${host}:8080${path}`,
      'http.request.method': 'POST',
      'http.request.header.authorization': [`Bearer ${opts.credential ?? this.#sys.credentials.agents[this.agent]}`],
    }, tool);
    const server: PlannedSpan = {
      agent: to,
      name: `POST ${path}`,
      kind: SpanKind.SERVER,
      start: t0 + 3,
      end: t0 + 3,
      attributes: { 'http.request.method': 'POST', 'url.path': path, 'url.scheme': 'http', 'http.route': '/v1/agents/:agent/invoke', 'server.address': host, 'server.port': 8080 },
      children: [],
    };
    client.children.push(server);
    const invoke: PlannedSpan = {
      agent: to,
      name: `invoke_agent ${to}`,
      kind: SpanKind.INTERNAL,
      start: t0 + 4,
      end: t0 + 4,
      attributes: { 'gen_ai.operation.name': 'invoke_agent', 'gen_ai.agent.name': to, 'gen_ai.agent.id': `${to}-${this.#sys.instance(to)}` },
      children: [],
    };
    server.children.push(invoke);
    const run = new AgentRun(this.#sys, to, invoke, t0 + 6);
    const answer = body(run);
    invoke.end = run.t + 2;
    server.end = invoke.end + 1;
    server.attributes['http.response.status_code'] = opts.fireAndForget ? 202 : 200;
    if (opts.fireAndForget) {
      // The caller got 202 Accepted at once; the callee's own spans go on after its call ended.
      client.end = t0 + 1 + rng.int(25, 60);
    } else {
      client.end = server.end + 1;
    }
    client.attributes['http.response.status_code'] = opts.fireAndForget ? 202 : 200;
    tool.end = client.end + 1;
    tool.attributes = {
      'gen_ai.operation.name': 'execute_tool',
      'gen_ai.tool.name': toolName,
      'gen_ai.tool.type': 'function',
      'gen_ai.tool.call.id': `call_${this.agent.slice(0, 3)}${++this.#calls}_${this.span.start}`,
      'gen_ai.tool.call.arguments': json(args),
      'gen_ai.tool.call.result': opts.fireAndForget ? json({ status: 'accepted' }) : json({ answer }),
    };
    this.t = tool.end + rng.int(2, 12);
    return { answer, tool, run };
  }
}

// ---------------------------------------------------------------------------------- the cast

export interface AgentCastOptions {
  /** The span processor of each agent service (e.g. a BatchSpanProcessor with an OTLP exporter). */
  processor(agent: AgentName): SpanProcessor;
  credentials: Credentials;
  idGenerator?: IdGenerator;
  /** Pod name suffixes; default random-looking. */
  rng?: Rng;
}

/** The four agent services, one TracerProvider each. */
export class AgentCast {
  readonly credentials: Credentials;
  readonly providers: Record<AgentName, TracerProvider>;
  readonly #pods: Record<AgentName, string>;
  readonly #propagator = new W3CTraceContextPropagator();

  constructor(opts: AgentCastOptions) {
    this.credentials = opts.credentials;
    const rng = opts.rng ?? new Rng(Date.now());
    this.#pods = {} as Record<AgentName, string>;
    this.providers = {} as Record<AgentName, TracerProvider>;
    for (const a of AGENTS) {
      this.#pods[a] = `${SERVICE[a]}-${rng.hex(5)}-${rng.hex(5)}`;
      this.providers[a] = new TracerProvider({
        resource: resourceFromAttributes({
          'service.name': SERVICE[a],
          'service.namespace': NAMESPACE,
          'service.version': '1.8.0',
          'k8s.namespace.name': NAMESPACE,
          'k8s.pod.name': this.#pods[a],
          'k8s.serviceaccount.name': SERVICE[a],
          'telemetry.sdk.language': 'nodejs',
        }),
        spanProcessors: [opts.processor(a)],
        ...(opts.idGenerator ? { idGenerator: opts.idGenerator } : {}),
      });
    }
  }

  /** The pod suffix of an agent (its gen_ai.agent.id). */
  instance(agent: AgentName): string {
    return this.#pods[agent].slice(SERVICE[agent].length + 1);
  }

  /** Starts planning a task at the orchestrator, which a user's request reaches. */
  task(rng: Rng, label: string, body: (run: AgentRun) => void, rootAgent: AgentName = 'orchestrator'): TaskPlan {
    const root: PlannedSpan = {
      agent: rootAgent,
      name: `invoke_agent ${rootAgent}`,
      kind: SpanKind.SERVER,
      start: 0,
      end: 0,
      attributes: {
        'gen_ai.operation.name': 'invoke_agent',
        'gen_ai.agent.name': rootAgent,
        'gen_ai.agent.id': `${rootAgent}-${this.instance(rootAgent)}`,
        'gen_ai.conversation.id': `conv_${rng.hex(12)}`,
        'http.request.method': 'POST',
        'url.path': '/v1/tasks',
        'http.route': '/v1/tasks',
        'http.response.status_code': 200,
      },
      children: [],
    };
    const run = new AgentRun(this, rootAgent, root, 3);
    body(run);
    root.end = run.t + 3;
    return finishPlan(label, root);
  }

  /**
   * Records a planned task through the agents' TracerProviders, its start at `baseMs` (ms since
   * the epoch). Returns the trace id.
   */
  emit(plan: TaskPlan, baseMs: number): string {
    const created: { planned: PlannedSpan; span: Span }[] = [];
    const walk = (p: PlannedSpan, parent: { planned: PlannedSpan; span: Span } | undefined) => {
      let ctx: Context = ROOT_CONTEXT;
      if (parent) {
        ctx = trace.setSpan(ROOT_CONTEXT, parent.span);
        if (parent.planned.agent !== p.agent) {
          // Another service: the context travels as a traceparent header.
          const carrier: Record<string, string> = {};
          this.#propagator.inject(ctx, carrier, defaultTextMapSetter);
          ctx = this.#propagator.extract(ROOT_CONTEXT, carrier, defaultTextMapGetter);
        }
      }
      const tracer = this.providers[p.agent].getTracer('agentsec-demo-agents', '1.8.0');
      const span = tracer.startSpan(p.name, { kind: p.kind, startTime: baseMs + p.start, attributes: p.attributes }, ctx);
      if (p.error) span.setStatus({ code: SpanStatusCode.ERROR, message: p.error });
      const me = { planned: p, span };
      created.push(me);
      for (const c of p.children) walk(c, me);
    };
    walk(plan.root, undefined);
    // Ended in the order a live run ends them: by end time, children first on ties.
    const depth = new Map<PlannedSpan, number>();
    const mark = (p: PlannedSpan, d: number) => {
      depth.set(p, d);
      for (const c of p.children) mark(c, d + 1);
    };
    mark(plan.root, 0);
    created.sort((a, b) => a.planned.end - b.planned.end || depth.get(b.planned)! - depth.get(a.planned)!);
    for (const { planned, span } of created) span.end(baseMs + planned.end);
    return created[0]!.span.spanContext().traceId;
  }

  async forceFlush(): Promise<void> {
    // Sub-agents first: their spans end before the orchestrator's root does.
    for (const a of ['research', 'analysis', 'writer', 'orchestrator'] as const) await this.providers[a].forceFlush();
  }

  async shutdown(): Promise<void> {
    for (const a of AGENTS) await this.providers[a].shutdown();
  }
}
