// The benchmark payload: one agent process's export request as an OTel SDK sends it
// (512 spans, the BatchSpanProcessor's default batch size), shaped like GenAI agent traffic:
// small traces of an agent invoking models, tools and a sub-agent, ~12 attributes per span,
// 10% of spans with an event, and no prompt or completion content.
// Built once, then re-encoded with fresh ids into a pool so the collector never sees two
// requests with the same trace and span ids.
import { randomFillSync } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { ExportTraceServiceRequest, Long } from '../src/otlp/proto.ts';
import { toHex } from '../src/otlp/ids.ts';
import { encodeTraceJson } from '../src/otlp/encode.ts';
import { SpanKind, StatusCode, type KeyValue, type ResourceSpans, type Span } from '../src/otlp/types.ts';

export const SPANS_PER_REQUEST = 512;

const AGENTS = ['planner', 'researcher', 'coder', 'reviewer'];
const TOOLS = ['web_search', 'read_file', 'http_fetch', 'sql_query', 'send_email'];
const PROVIDERS = [
  { provider: 'openai', model: 'gpt-4o', server: 'api.openai.com', path: '/v1/chat/completions' },
  { provider: 'anthropic', model: 'claude-sonnet-4', server: 'api.anthropic.com', path: '/v1/messages' },
  { provider: 'gcp.gemini', model: 'gemini-2.5-pro', server: 'generativelanguage.googleapis.com', path: '/v1beta/models:generateContent' },
];

/** One trace: the root agent, its model calls and tools, and a sub-agent doing the same. */
type Step = { operation: 'invoke_agent' | 'chat' | 'execute_tool'; parent: number; subAgent?: boolean };
const TRACE_SHAPE: Step[] = [
  { operation: 'invoke_agent', parent: -1 },
  { operation: 'chat', parent: 0 },
  { operation: 'execute_tool', parent: 0 },
  { operation: 'chat', parent: 0 },
  { operation: 'invoke_agent', parent: 0, subAgent: true },
  { operation: 'chat', parent: 4 },
  { operation: 'execute_tool', parent: 4 },
  { operation: 'chat', parent: 4 },
];
const EVENT_EVERY = 10;

const str = (key: string, stringValue: string): KeyValue => ({ key, value: { stringValue } });
const int = (key: string, intValue: number): KeyValue => ({ key, value: { intValue } });

function randomId(bytes: number): Uint8Array {
  return randomFillSync(new Uint8Array(bytes));
}

/** The one request every pool entry is a copy of (ids aside). */
export function buildAgentRequest(): ResourceSpans[] {
  const nowNanos = Long.fromNumber(Date.now(), true).multiply(1_000_000);
  const spans: Span[] = [];
  for (let t = 0; spans.length < SPANS_PER_REQUEST; t++) {
    const traceId = randomId(16);
    const conversationId = `conv_${toHex(randomId(12))}`;
    const ids: Uint8Array[] = [];
    for (let s = 0; s < TRACE_SHAPE.length && spans.length < SPANS_PER_REQUEST; s++) {
      const step = TRACE_SHAPE[s]!;
      const agent = AGENTS[(t + (step.parent === 4 || step.subAgent ? 1 : 0)) % AGENTS.length]!;
      const llm = PROVIDERS[(t + s) % PROVIDERS.length]!;
      const n = spans.length;
      ids.push(randomId(8));
      const start = nowNanos.add(t * 50_000_000 + s * 4_000_000);
      const span: Span = {
        traceId,
        spanId: ids[s]!,
        parentSpanId: step.parent >= 0 ? ids[step.parent]! : new Uint8Array(0),
        name: step.operation === 'chat' ? `chat ${llm.model}` : step.operation === 'execute_tool' ? `execute_tool ${TOOLS[n % TOOLS.length]}` : `invoke_agent ${agent}`,
        kind: step.operation === 'chat' ? SpanKind.CLIENT : step.operation === 'execute_tool' ? SpanKind.INTERNAL : s === 0 ? SpanKind.SERVER : SpanKind.CLIENT,
        startTimeUnixNano: start,
        endTimeUnixNano: start.add(1_500_000 + (n % 7) * 250_000),
        attributes: attributesFor(step, agent, llm, conversationId, n),
        status: { code: StatusCode.UNSET },
      };
      if (n % EVENT_EVERY === 0) {
        span.events = [{ timeUnixNano: start.add(1_000_000), name: 'exception', attributes: [str('exception.type', 'TimeoutError'), str('exception.message', `upstream ${llm.server} timed out after 30s`)] }];
        span.status = { code: StatusCode.ERROR, message: 'TimeoutError' };
      }
      spans.push(span);
    }
  }
  return [
    {
      resource: {
        attributes: [
          str('service.name', 'support-agent'),
          str('service.version', '2.14.0'),
          str('deployment.environment.name', 'production'),
          str('k8s.namespace.name', 'agents'),
          str('k8s.deployment.name', 'support-agent'),
          str('k8s.pod.name', 'support-agent-7d9f8b6c5d-x2k4q'),
          str('k8s.node.name', 'ip-10-0-12-34.ec2.internal'),
          str('telemetry.sdk.name', 'opentelemetry'),
          str('telemetry.sdk.language', 'python'),
          str('telemetry.sdk.version', '1.38.0'),
        ],
      },
      scopeSpans: [{ scope: { name: 'opentelemetry.instrumentation.openai_agents', version: '0.1.0' }, spans }],
    },
  ];
}

function attributesFor(step: Step, agent: string, llm: (typeof PROVIDERS)[number], conversationId: string, n: number): KeyValue[] {
  const common = [str('gen_ai.operation.name', step.operation), str('gen_ai.agent.name', agent), str('gen_ai.conversation.id', conversationId)];
  switch (step.operation) {
    case 'chat':
      return [
        ...common,
        str('gen_ai.provider.name', llm.provider),
        str('gen_ai.request.model', llm.model),
        str('gen_ai.response.model', `${llm.model}-2025-06-01`),
        int('gen_ai.usage.input_tokens', 800 + (n % 97) * 13),
        int('gen_ai.usage.output_tokens', 40 + (n % 31) * 7),
        str('server.address', llm.server),
        int('server.port', 443),
        str('http.request.method', 'POST'),
        str('url.path', llm.path),
        str('gen_ai.response.finish_reasons', 'stop'),
      ];
    case 'execute_tool':
      return [
        ...common,
        str('gen_ai.tool.name', TOOLS[n % TOOLS.length]!),
        str('gen_ai.tool.type', 'function'),
        str('gen_ai.tool.call.id', `call_${n.toString(36).padStart(8, '0')}`),
        str('gen_ai.provider.name', llm.provider),
        str('server.address', 'tools.internal.svc.cluster.local'),
        int('server.port', 8080),
        str('http.request.method', 'GET'),
        str('url.path', `/tools/${TOOLS[n % TOOLS.length]}`),
      ];
    case 'invoke_agent':
      return [
        ...common,
        str('gen_ai.agent.id', `agent_${agent}_01`),
        str('gen_ai.provider.name', llm.provider),
        str('gen_ai.request.model', llm.model),
        int('gen_ai.usage.input_tokens', 4000 + (n % 89) * 31),
        int('gen_ai.usage.output_tokens', 300 + (n % 23) * 11),
        str('server.address', 'agents.internal.svc.cluster.local'),
        str('http.request.method', 'POST'),
        str('url.path', `/agents/${agent}/invoke`),
      ];
  }
}

/** Gives every trace and span a new random id, keeping the parent links (mutates `request`). */
function refreshIds(request: ResourceSpans[]): void {
  const newIds = new Map<string, Uint8Array>();
  const renamed = (id: Uint8Array) => {
    const key = toHex(id);
    let fresh = newIds.get(key);
    if (!fresh) newIds.set(key, (fresh = randomId(id.length)));
    return fresh;
  };
  for (const rs of request) {
    for (const ss of rs.scopeSpans) {
      for (const span of ss.spans) {
        span.traceId = renamed(span.traceId);
        span.spanId = renamed(span.spanId);
        if (span.parentSpanId && span.parentSpanId.length > 0) span.parentSpanId = renamed(span.parentSpanId);
      }
    }
  }
}

export interface RequestPool {
  /** ExportTraceServiceRequest protobuf, what the load process sends. */
  protobuf: Buffer[];
  /** The same requests as OTLP/JSON, for the JSON codec figures. */
  json: Buffer[];
}

/** `size` copies of the agent request, each with its own ids, protobuf- and JSON-encoded. */
export function buildRequestPool(size: number): RequestPool {
  const request = buildAgentRequest();
  const pool: RequestPool = { protobuf: [], json: [] };
  for (let i = 0; i < size; i++) {
    refreshIds(request);
    const bytes = ExportTraceServiceRequest.encode({ resourceSpans: request } as never).finish();
    pool.protobuf.push(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
    pool.json.push(Buffer.from(encodeTraceJson(request)));
  }
  return pool;
}

// The pool travels to the load process as a file of length-prefixed requests, so that
// the payload is built once and the load process spends no CPU on it.

export function writePoolFile(path: string, pool: readonly Buffer[]): void {
  const frames: Buffer[] = [];
  for (const request of pool) {
    const length = Buffer.alloc(4);
    length.writeUInt32BE(request.length);
    frames.push(length, request);
  }
  writeFileSync(path, Buffer.concat(frames));
}

export function readPoolFile(path: string): Buffer[] {
  const file = readFileSync(path);
  const pool: Buffer[] = [];
  for (let at = 0; at < file.length; ) {
    const length = file.readUInt32BE(at);
    pool.push(file.subarray(at + 4, at + 4 + length));
    at += 4 + length;
  }
  return pool;
}
