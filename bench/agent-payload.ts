// Agent-shaped traces for the agent-pipeline bench (bench/agent-pipeline.ts): an orchestrator
// that calls a model and delegates to sub-agents, sub-agents that call models and tools and
// now and then delegate further. GenAI attributes like bench/payload.ts (~12 per span):
// gen_ai.agent.name on agent spans only, tool spans carry gen_ai.tool.name and no agent
// attribute (their identity is inherited in the graph), model and some tool spans name a
// server.address or url.full, and ~1% of spans carry an authorization header (half opaque
// bearer keys, half JWTs) that normalize fingerprints.
//
// Spans are laid out in the order an OTel SDK's BatchSpanProcessor exports them, i.e. by end
// time: children before their parents, the root last. A trace larger than a request is thus
// spread over consecutive requests, its parents arriving after their children.
import { randomFillSync } from 'node:crypto';
import { ExportTraceServiceRequest, Long } from '../src/otlp/proto.ts';
import { SpanKind, StatusCode, type KeyValue, type ResourceSpans, type Span } from '../src/otlp/types.ts';
import { SPANS_PER_REQUEST } from './payload.ts';

const SUB_AGENTS = ['researcher', 'coder', 'reviewer', 'planner'];
const NESTED_AGENTS = ['fact_checker', 'summarizer'];
const MODELS = [
  { provider: 'openai', model: 'gpt-4o', server: 'api.openai.com', path: '/v1/chat/completions' },
  { provider: 'anthropic', model: 'claude-sonnet-4', server: 'api.anthropic.com', path: '/v1/messages' },
  { provider: 'gcp.gemini', model: 'gemini-2.5-pro', server: 'generativelanguage.googleapis.com', path: '/v1beta/models:generateContent' },
];
/** Tools and where they go: a server.address, a url.full, or nowhere (local). */
const TOOLS: { name: string; server?: string; url?: string }[] = [
  { name: 'web_search', server: 'api.search.example.com' },
  { name: 'http_fetch', url: 'https://docs.example.org/guide/page' },
  { name: 'read_file' },
  { name: 'sql_query', server: 'postgres.data.svc.cluster.local' },
  { name: 'send_email', server: 'smtp.mail.example.net' },
  { name: 'run_python' },
];
/** A sub-agent's work: model calls and tools; every NEST_EVERY-th one also delegates once more. */
const SUB_AGENT_BODY = ['chat', 'tool', 'tool', 'chat', 'tool', 'chat'] as const;
const NESTED_BODY = ['chat', 'tool', 'chat'] as const;
const NEST_EVERY = 3;
/** Tool spans are ~36% of all spans: every 36th tool span with a credential is ~1% of spans. */
const CREDENTIAL_EVERY_TOOL = 36;
const EVENT_EVERY = 10;
// {"alg":"HS256","typ":"JWT"} . {"sub":"user-42","azp":"orchestrator","scope":"crm:read","act":{"sub":"researcher"}}
const JWT =
  'eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.' +
  Buffer.from(JSON.stringify({ sub: 'user-42', azp: 'orchestrator', scope: 'crm:read tickets:write', aud: 'tools', exp: 1_900_000_000, act: { sub: 'researcher' } })).toString('base64url') +
  '.c2lnbmF0dXJlLW5vdC1jaGVja2Vk';

const str = (key: string, stringValue: string): KeyValue => ({ key, value: { stringValue } });
const int = (key: string, intValue: number): KeyValue => ({ key, value: { intValue } });

function randomId(bytes: number): Uint8Array {
  return randomFillSync(new Uint8Array(bytes));
}

export const RESOURCE_ATTRIBUTES: KeyValue[] = [
  str('service.name', 'support-agents'),
  str('service.version', '2.14.0'),
  str('deployment.environment.name', 'production'),
  str('k8s.namespace.name', 'agents'),
  str('k8s.deployment.name', 'support-agents'),
  str('k8s.pod.name', 'support-agents-7d9f8b6c5d-x2k4q'),
  str('k8s.serviceaccount.name', 'support-agents'),
  str('telemetry.sdk.name', 'opentelemetry'),
  str('telemetry.sdk.language', 'python'),
  str('telemetry.sdk.version', '1.38.0'),
];

interface Node {
  op: 'invoke_agent' | 'chat' | 'execute_tool';
  agent: string;
  /** The agent whose work this is (for names), even when the span does not say it. */
  owner: string;
  parent: Node | undefined;
  children: Node[];
  spanId: Uint8Array;
  start: number;
  end: number;
}

/** Counts spans across calls, so attributes vary (credentials, events, tools) over the stream. */
export class AgentTraceGenerator {
  #n = 0;
  #tools = 0;
  #credentials = 0;
  #baseNanos = Long.fromNumber(Date.now(), true).multiply(1_000_000);

  /** One trace of exactly `size` spans (size ≥ 1), in export (end-time) order. */
  trace(size: number): Span[] {
    const traceId = randomId(16);
    const conversationId = `conv_${Buffer.from(randomId(12)).toString('hex')}`;
    const root: Node = { op: 'invoke_agent', agent: 'orchestrator', owner: 'orchestrator', parent: undefined, children: [], spanId: randomId(8), start: 0, end: 0 };
    let count = 1;
    const add = (parent: Node, op: Node['op'], agent = ''): Node | undefined => {
      if (count >= size) return undefined;
      const node: Node = { op, agent, owner: agent || parent.owner, parent, children: [], spanId: randomId(8), start: 0, end: 0 };
      parent.children.push(node);
      count++;
      return node;
    };
    const body = (agentSpan: Node, steps: readonly ('chat' | 'tool')[]) => {
      for (const step of steps) if (!add(agentSpan, step === 'chat' ? 'chat' : 'execute_tool')) return;
    };
    for (let d = 0; count < size; d++) {
      add(root, 'chat');
      const sub = add(root, 'invoke_agent', SUB_AGENTS[d % SUB_AGENTS.length]);
      if (!sub) break;
      body(sub, SUB_AGENT_BODY);
      if (d % NEST_EVERY === NEST_EVERY - 1) {
        const nested = add(sub, 'invoke_agent', NESTED_AGENTS[d % NESTED_AGENTS.length]);
        if (nested) body(nested, NESTED_BODY);
      }
    }
    // Times: children run one after another inside their parent.
    const place = (node: Node, at: number): number => {
      node.start = at;
      let t = at + 1;
      for (const c of node.children) t = place(c, t) + 1;
      node.end = t + (node.op === 'chat' ? 900 : node.op === 'execute_tool' ? 120 : 5);
      return node.end;
    };
    place(root, 0);
    const spans: Span[] = [];
    const emit = (node: Node) => {
      for (const c of node.children) emit(c);
      spans.push(this.#span(node, traceId, conversationId));
    };
    emit(root);
    this.#baseNanos = this.#baseNanos.add(Long.fromNumber(root.end + 1000).multiply(1_000_000));
    return spans;
  }

  #span(node: Node, traceId: Uint8Array, conversationId: string): Span {
    const n = this.#n++;
    const model = MODELS[n % MODELS.length]!;
    const tool = TOOLS[n % TOOLS.length]!;
    const ms = (t: number) => this.#baseNanos.add(Long.fromNumber(t).multiply(1_000_000));
    const common = [str('gen_ai.operation.name', node.op), str('gen_ai.conversation.id', conversationId)];
    let attributes: KeyValue[];
    let name: string;
    let kind: number = SpanKind.INTERNAL;
    switch (node.op) {
      case 'invoke_agent':
        name = `invoke_agent ${node.agent}`;
        kind = node.parent ? SpanKind.INTERNAL : SpanKind.SERVER;
        attributes = [
          ...common,
          str('gen_ai.agent.name', node.agent),
          str('gen_ai.agent.id', `agent_${node.agent}_01`),
          str('gen_ai.provider.name', model.provider),
          str('gen_ai.request.model', model.model),
          int('gen_ai.usage.input_tokens', 4000 + (n % 89) * 31),
          int('gen_ai.usage.output_tokens', 300 + (n % 23) * 11),
          str('gen_ai.agent.description', `The ${node.agent} agent`),
        ];
        break;
      case 'chat':
        name = `chat ${model.model}`;
        kind = SpanKind.CLIENT;
        attributes = [
          ...common,
          str('gen_ai.provider.name', model.provider),
          str('gen_ai.request.model', model.model),
          str('gen_ai.response.model', `${model.model}-2025-06-01`),
          int('gen_ai.usage.input_tokens', 800 + (n % 97) * 13),
          int('gen_ai.usage.output_tokens', 40 + (n % 31) * 7),
          str('server.address', model.server),
          int('server.port', 443),
          str('http.request.method', 'POST'),
          str('url.path', model.path),
          str('gen_ai.response.finish_reasons', 'stop'),
        ];
        break;
      case 'execute_tool':
        name = `execute_tool ${tool.name}`;
        attributes = [
          ...common,
          str('gen_ai.tool.name', tool.name),
          str('gen_ai.tool.type', 'function'),
          str('gen_ai.tool.call.id', `call_${n.toString(36).padStart(8, '0')}`),
          str('gen_ai.tool.description', `Runs ${tool.name}`),
        ];
        if (tool.server) attributes.push(str('server.address', tool.server), int('server.port', 443), str('http.request.method', 'POST'));
        if (tool.url) attributes.push(str('url.full', `${tool.url}?q=${n % 1000}`), str('http.request.method', 'GET'));
        if (this.#tools++ % CREDENTIAL_EVERY_TOOL === 0) {
          const c = this.#credentials++;
          attributes.push(str('http.request.header.authorization', c % 2 === 0 ? `Bearer sk-live-${(c % 50).toString(16).padStart(32, '0')}` : `Bearer ${JWT}`));
        }
        break;
    }
    const span: Span = {
      traceId,
      spanId: node.spanId,
      parentSpanId: node.parent ? node.parent.spanId : new Uint8Array(0),
      name,
      kind,
      startTimeUnixNano: ms(node.start),
      endTimeUnixNano: ms(node.end),
      attributes,
      status: { code: StatusCode.UNSET },
    };
    if (n % EVENT_EVERY === 0) {
      span.events = [{ timeUnixNano: ms(node.start), name: 'exception', attributes: [str('exception.type', 'TimeoutError'), str('exception.message', 'upstream timed out after 30s')] }];
      span.status = { code: StatusCode.ERROR, message: 'TimeoutError' };
    }
    return span;
  }
}

/** `spans` as one export request (one resource, one scope). */
export function agentRequest(spans: Span[]): ResourceSpans[] {
  return [{ resource: { attributes: RESOURCE_ATTRIBUTES }, scopeSpans: [{ scope: { name: 'opentelemetry.instrumentation.openai_agents', version: '0.1.0' }, spans }] }];
}

export function encodeRequest(request: ResourceSpans[]): Buffer {
  const bytes = ExportTraceServiceRequest.encode({ resourceSpans: request } as never).finish();
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/**
 * Consecutive whole traces whose sizes cycle through `traceSizes`, cut into requests of
 * SPANS_PER_REQUEST spans (a trace continues in the next request), about `totalSpans` in all.
 * The stream stops at the last trace that fits; the final request is then either left short
 * (`last: 'short'`) or completed with one more trace of exactly the missing size (`'fill'`),
 * so that every request holds SPANS_PER_REQUEST spans (load.ts counts that many per request).
 */
export function* agentRequests(traceSizes: readonly number[], totalSpans: number, last: 'short' | 'fill'): Generator<Span[]> {
  const gen = new AgentTraceGenerator();
  let pending: Span[] = [];
  let emitted = 0;
  for (let t = 0; ; t++) {
    const size = traceSizes[t % traceSizes.length]!;
    if (emitted + pending.length + size > totalSpans && emitted + pending.length > 0) break;
    for (const span of gen.trace(size)) {
      pending.push(span);
      if (pending.length === SPANS_PER_REQUEST) {
        yield pending;
        emitted += pending.length;
        pending = [];
      }
    }
  }
  if (pending.length > 0 && last === 'fill') pending.push(...gen.trace(SPANS_PER_REQUEST - pending.length));
  if (pending.length > 0) yield pending;
}

export interface AgentPool {
  /** ExportTraceServiceRequest protobuf, SPANS_PER_REQUEST spans each, all ids distinct. */
  requests: Buffer[];
  /** Traces per size, in the template (copies repeat it with new ids). */
  template: { requests: number; spans: number; traces: number; credentialsPercent: number; bytesPerSpan: number };
}

/**
 * At least `count` requests for the collector (whole copies of the template, so that no trace
 * is cut): a template of `templateRequests` requests is built and encoded once, then copied
 * with every trace id and span id (parent ids included) XORed with a mask of its own per
 * copy, which keeps parent links and makes every copy new traffic.
 */
export function buildAgentPool(traceSizes: readonly number[], count: number, templateRequests = 64): AgentPool {
  const template: { bytes: Buffer; traceIds: number[]; spanIds: number[] }[] = [];
  let traces = 0;
  let credentials = 0;
  let spans = 0;
  const seenTraces = new Set<string>();
  for (const request of agentRequests(traceSizes, templateRequests * SPANS_PER_REQUEST, 'fill')) {
    const bytes = encodeRequest(agentRequest(request));
    const traceIds: number[] = [];
    const spanIds: number[] = [];
    // Ids are random, so each occurs once where the encoder put it; spans are in order.
    let at = 0;
    for (const span of request) {
      const find = (id: Uint8Array, from: number, into: number[]) => {
        const found = bytes.indexOf(id, from);
        if (found < 0) throw new Error('an id was not found in its encoded request');
        into.push(found);
        return found + id.length;
      };
      at = find(span.traceId, at, traceIds);
      at = find(span.spanId, at, spanIds);
      if (span.parentSpanId && span.parentSpanId.length > 0) at = find(span.parentSpanId, at, spanIds);
      spans++;
      if (span.attributes?.some((kv) => kv.key === 'http.request.header.authorization')) credentials++;
      const hex = Buffer.from(span.traceId).toString('hex');
      if (!seenTraces.has(hex)) {
        seenTraces.add(hex);
        traces++;
      }
    }
    template.push({ bytes, traceIds, spanIds });
  }
  const requests: Buffer[] = [];
  const traceMask = Buffer.alloc(16);
  const spanMask = Buffer.alloc(8);
  for (let copy = 0; requests.length < count; copy++) {
    if (copy > 0) {
      randomFillSync(traceMask);
      randomFillSync(spanMask);
    }
    for (const t of template) {
      const bytes = Buffer.from(t.bytes);
      for (const at of t.traceIds) for (let i = 0; i < 16; i++) bytes[at + i] ^= traceMask[i]!;
      for (const at of t.spanIds) for (let i = 0; i < 8; i++) bytes[at + i] ^= spanMask[i]!;
      requests.push(bytes);
    }
  }
  const totalBytes = template.reduce((n, t) => n + t.bytes.length, 0);
  return { requests, template: { requests: template.length, spans, traces, credentialsPercent: (100 * credentials) / spans, bytesPerSpan: totalBytes / spans } };
}
