// The detection bench's traffic (bench/detection.ts; baselines.ts and sidecar.ts send it too): the demo's multi-agent system
// (demo/agents.ts, demo/scenarios.ts: orchestrator → research, analysis, writer; the demo
// policy's labelled tools; each agent service with its own credentials; tool arguments and
// results captured), planned there and turned into OTLP spans here, without an SDK in the way.
//
// Benign traffic: the demo's normal tasks (~200 spans each, ~37 s of span time), started at a
// steady pace so that about TASKS_IN_FLIGHT overlap. Each agent service exports its own spans
// as an OTel SDK's BatchSpanProcessor does: in end-time order (children before parents), cut
// into SPANS_PER_REQUEST-span requests, so a trace spans several services and requests and its
// parents arrive after its children. The services' requests are interleaved in the order they
// would be sent (by the end time of their last span). A short trace of exactly the missing size
// fills each service's last request, since bench/load.ts counts SPANS_PER_REQUEST per request.
// That template is encoded once; the load process (bench/detection-load.ts) sends it again and
// again, each pass with every trace and span id XORed with masks of its own (parent links kept;
// the XOR as bench/agent-payload.ts does it), so the collector never sees a span twice while the
// pool stays one template in size (~1.1 KB per span: a pool for a whole run would be ~1 GB).
//
// Attacks: the demo's data exfiltration (analysis: sales_db_query, then format_report to an
// outside renderer), cut into the spans before one span, that span alone, and those after it.
import { randomFillSync } from 'node:crypto';
import { SpanKind as OtelKind, type AttributeValue, type Attributes } from '@opentelemetry/api';
import { AgentCast, AGENTS, makeCredentials, NAMESPACE, Rng, SERVICE, type AgentName, type PlannedSpan, type TaskPlan } from '../demo/agents.ts';
import { ATTACKS, DEMO_SIZE, normalTask } from '../demo/scenarios.ts';
import { ExportTraceServiceRequest, Long } from '../src/otlp/proto.ts';
import { toHex } from '../src/otlp/ids.ts';
import { StatusCode, type AnyValue, type KeyValue, type ResourceSpans, type Span } from '../src/otlp/types.ts';
import { SPANS_PER_REQUEST } from './payload.ts';

/** Normal tasks running at once in the benign stream (the stagger between task starts follows). */
export const TASKS_IN_FLIGHT = 64;

const NOOP_PROCESSOR = { onStart() {}, onEnd() {}, shutdown: async () => {}, forceFlush: async () => {} };

/** The demo's four agent services (plans only: their span processors do nothing). */
export function demoCast(seed: number): { cast: AgentCast; rng: Rng } {
  const rng = new Rng(seed);
  const cast = new AgentCast({ processor: () => NOOP_PROCESSOR as never, credentials: makeCredentials(rng), rng });
  return { cast, rng };
}

function anyValue(v: AttributeValue): AnyValue {
  if (typeof v === 'string') return { stringValue: v };
  if (typeof v === 'boolean') return { boolValue: v };
  if (typeof v === 'number') return Number.isInteger(v) ? { intValue: v } : { doubleValue: v };
  return { arrayValue: { values: (v as unknown[]).filter((x) => x != null).map((x) => anyValue(x as AttributeValue)) } };
}

function keyValues(attributes: Attributes): KeyValue[] {
  const out: KeyValue[] = [];
  for (const [key, value] of Object.entries(attributes)) if (value !== undefined) out.push({ key, value: anyValue(value) });
  return out;
}

/** The resource of each agent service, as demo/agents.ts's TracerProviders set it. */
function resources(cast: AgentCast): Record<AgentName, KeyValue[]> {
  const out = {} as Record<AgentName, KeyValue[]>;
  for (const a of AGENTS) {
    out[a] = keyValues({
      'service.name': SERVICE[a],
      'service.namespace': NAMESPACE,
      'service.version': '1.8.0',
      'k8s.namespace.name': NAMESPACE,
      'k8s.pod.name': `${SERVICE[a]}-${cast.instance(a)}`,
      'k8s.serviceaccount.name': SERVICE[a],
      'telemetry.sdk.language': 'nodejs',
      'telemetry.sdk.name': 'opentelemetry',
    });
  }
  return out;
}

const OTEL_TO_OTLP_KIND: Record<OtelKind, number> = { [OtelKind.INTERNAL]: 1, [OtelKind.SERVER]: 2, [OtelKind.CLIENT]: 3, [OtelKind.PRODUCER]: 4, [OtelKind.CONSUMER]: 5 };

/** One span of a planned task with what ordering needs: its service, absolute end (ms), depth. */
export interface EmittedSpan {
  agent: AgentName;
  span: Span;
  endMs: number;
  depth: number;
  planned: PlannedSpan;
}

const nanos = (ms: number) => Long.fromNumber(Math.round(ms * 1000), true).multiply(1000);
const randomId = (bytes: number) => randomFillSync(new Uint8Array(bytes));

/** Every span of `plan` with fresh random ids, its start at `baseMs` (ms since the epoch), in end-time order (children first on ties). */
export function planSpans(plan: TaskPlan, baseMs: number): EmittedSpan[] {
  const traceId = randomId(16);
  const out: EmittedSpan[] = [];
  const walk = (p: PlannedSpan, parentId: Uint8Array, depth: number) => {
    const spanId = randomId(8);
    const span: Span = {
      traceId,
      spanId,
      parentSpanId: parentId,
      name: p.name,
      kind: OTEL_TO_OTLP_KIND[p.kind],
      startTimeUnixNano: nanos(baseMs + p.start),
      endTimeUnixNano: nanos(baseMs + p.end),
      attributes: keyValues(p.attributes),
      status: p.error ? { code: StatusCode.ERROR, message: p.error } : { code: StatusCode.UNSET },
    };
    out.push({ agent: p.agent, span, endMs: baseMs + p.end, depth, planned: p });
    for (const c of p.children) walk(c, spanId, depth + 1);
  };
  walk(plan.root, new Uint8Array(0), 0);
  return out.sort(byExportOrder);
}

const byExportOrder = (a: EmittedSpan, b: EmittedSpan) => a.endMs - b.endMs || b.depth - a.depth;

/** `spans` as one export request: one ResourceSpans per service, in order of first appearance. */
export function requestOf(cast: AgentCast, spans: readonly EmittedSpan[], res = resources(cast)): ResourceSpans[] {
  const byAgent = new Map<AgentName, Span[]>();
  for (const s of spans) {
    let list = byAgent.get(s.agent);
    if (!list) byAgent.set(s.agent, (list = []));
    list.push(s.span);
  }
  return [...byAgent].map(([agent, list]) => ({
    resource: { attributes: res[agent] },
    scopeSpans: [{ scope: { name: 'agentsec-demo-agents', version: '1.8.0' }, spans: list }],
  }));
}

export function encodeRequest(request: ResourceSpans[]): Buffer {
  const bytes = ExportTraceServiceRequest.encode({ resourceSpans: request } as never).finish();
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** A complete trace of exactly `size` spans in `agent`'s service: its invoke_agent and model calls (the filler of a last request). */
function fillerTrace(cast: AgentCast, rng: Rng, agent: AgentName, size: number, baseMs: number): EmittedSpan[] {
  const plan = cast.task(rng, 'filler', (run) => {
    for (let i = 1; i < size; i++) run.chat(rng, { finish: i === size - 1 ? 'stop' : 'tool_calls' });
  }, agent);
  return planSpans(plan, baseMs);
}

export interface BenignTemplate {
  /** Requests of exactly SPANS_PER_REQUEST spans, in the order the services would send them. */
  requests: { bytes: Buffer; spans: Span[] }[];
  tasks: number;
  spans: number;
  /** Traces added to fill a service's last request. */
  fillerTraces: number;
  spansPerTask: number;
  taskSeconds: number;
  tasksInFlight: number;
  withCredentialPercent: number;
  bytesPerSpan: number;
}

/** The demo's normal tasks, `tasks` of them, as the services would export them (see the top of the file). */
export function buildBenignTemplate(tasks: number, seed = 4242): BenignTemplate {
  const { cast, rng } = demoCast(seed);
  const plans = Array.from({ length: tasks }, () => normalTask(cast, rng, DEMO_SIZE));
  const meanMs = plans.reduce((n, p) => n + p.duration, 0) / plans.length;
  const stagger = meanMs / TASKS_IN_FLIGHT;
  const base = Date.now() - meanMs * 2 - tasks * stagger;
  const perAgent = new Map<AgentName, EmittedSpan[]>(AGENTS.map((a) => [a, []]));
  plans.forEach((plan, i) => {
    for (const s of planSpans(plan, base + i * stagger)) perAgent.get(s.agent)!.push(s);
  });
  let fillerTraces = 0;
  const res = resources(cast);
  const batches: { lastEnd: number; spans: EmittedSpan[] }[] = [];
  for (const [agent, spans] of perAgent) {
    spans.sort(byExportOrder);
    const missing = (SPANS_PER_REQUEST - (spans.length % SPANS_PER_REQUEST)) % SPANS_PER_REQUEST;
    if (missing > 0) {
      spans.push(...fillerTrace(cast, rng, agent, missing, spans[spans.length - 1]!.endMs + 1 - missing * 1000));
      fillerTraces++;
    }
    for (let i = 0; i < spans.length; i += SPANS_PER_REQUEST) {
      const chunk = spans.slice(i, i + SPANS_PER_REQUEST);
      batches.push({ lastEnd: Math.max(...chunk.map((s) => s.endMs)), spans: chunk });
    }
  }
  batches.sort((a, b) => a.lastEnd - b.lastEnd);
  let bytes = 0;
  let spans = 0;
  let withCredential = 0;
  const requests = batches.map((b) => {
    const request = requestOf(cast, b.spans, res);
    const encoded = encodeRequest(request);
    bytes += encoded.length;
    const list = request.flatMap((rs) => rs.scopeSpans.flatMap((ss) => ss.spans));
    spans += list.length;
    withCredential += list.filter((s) => s.attributes?.some((kv) => kv.key === 'http.request.header.authorization')).length;
    return { bytes: encoded, spans: list };
  });
  return {
    requests,
    tasks,
    spans,
    fillerTraces,
    spansPerTask: plans.reduce((n, p) => n + countPlanned(p.root), 0) / tasks,
    taskSeconds: meanMs / 1000,
    tasksInFlight: TASKS_IN_FLIGHT,
    withCredentialPercent: (100 * withCredential) / spans,
    bytesPerSpan: bytes / spans,
  };
}

function countPlanned(p: PlannedSpan): number {
  return 1 + p.children.reduce((n, c) => n + countPlanned(c), 0);
}

/** Where the ids are in one encoded request: byte offsets of each trace id and span id (parent ids included). */
export interface IdOffsets {
  traceIds: number[];
  spanIds: number[];
}

/**
 * The ids' offsets in each encoded request, found span by span in order (protobuf writes
 * trace_id, span_id, then parent_span_id first in each span), as bench/agent-payload.ts does.
 */
export function idOffsets(template: readonly { bytes: Buffer; spans: Span[] }[]): IdOffsets[] {
  return template.map(({ bytes, spans }) => {
    const traceIds: number[] = [];
    const spanIds: number[] = [];
    let at = 0;
    const find = (id: Uint8Array, into: number[]) => {
      const found = bytes.indexOf(id, at);
      if (found < 0) throw new Error('an id was not found in its encoded request');
      into.push(found);
      at = found + id.length;
    };
    for (const span of spans) {
      find(span.traceId, traceIds);
      find(span.spanId, spanIds);
      if (span.parentSpanId && span.parentSpanId.length > 0) find(span.parentSpanId, spanIds);
    }
    return { traceIds, spanIds };
  });
}

/**
 * A copy of `bytes` with every trace id and span id XORed with the masks: a new trace for the
 * collector with the same parent links, as long as every request of a pass uses the same masks.
 */
export function maskedCopy(bytes: Buffer, offsets: IdOffsets, traceMask: Uint8Array, spanMask: Uint8Array): Buffer {
  const out = Buffer.from(bytes);
  for (const at of offsets.traceIds) for (let i = 0; i < 16; i++) out[at + i]! ^= traceMask[i]!;
  for (const at of offsets.spanIds) for (let i = 0; i < 8; i++) out[at + i]! ^= spanMask[i]!;
  return out;
}

/** Which span of an attack trace goes last, alone. */
export type LastSpan =
  /** The egress sink (format_report), every other span of the trace (ancestors included) before it. */
  | 'sink'
  /**
   * The SDK's export order (end time, children first): the analysis agent's invoke_agent span,
   * which names the agent of both tool spans (they name none), is the span that completes the
   * chain; the spans that end before it go first, those that end after it (its callers, the
   * root) once the finding is in.
   */
  | 'agent';

export interface AttackTrace {
  order: LastSpan;
  traceId: string;
  /** The spans before the last one, one request (one ResourceSpans per service). */
  prefix: Buffer;
  prefixSpans: number;
  /** The last span alone. */
  last: Buffer;
  lastName: string;
  /** The spans after it, if any (sent once the measurement is over, completing the trace). */
  suffix: Buffer | undefined;
}

const EXFILTRATION = ATTACKS.find((a) => a.name === 'data exfiltration');

/** The demo's data exfiltration, its start at `baseMs`, split so that the `order`'s last span arrives alone. */
export function exfiltrationTrace(cast: AgentCast, rng: Rng, order: LastSpan, baseMs: number): AttackTrace {
  if (!EXFILTRATION) throw new Error("demo/scenarios.ts has no 'data exfiltration' attack");
  const plans = EXFILTRATION.plans(cast, rng);
  if (plans.length !== 1) throw new Error(`the data exfiltration attack has ${plans.length} traces; one expected`);
  const spans = planSpans(plans[0]!, baseMs);
  const at =
    order === 'sink'
      ? spans.findIndex((s) => s.planned.name === 'execute_tool format_report')
      : spans.findIndex((s) => s.agent === 'analysis' && s.planned.name === 'invoke_agent analysis');
  if (at < 0) throw new Error(`no ${order} span in the data exfiltration trace`);
  const last = spans[at]!;
  const before = order === 'sink' ? spans.filter((_, i) => i !== at) : spans.slice(0, at);
  const after = order === 'sink' ? [] : spans.slice(at + 1);
  return {
    order,
    traceId: toHex(last.span.traceId),
    prefix: encodeRequest(requestOf(cast, before)),
    prefixSpans: before.length,
    last: encodeRequest(requestOf(cast, [last])),
    lastName: last.span.name!,
    suffix: after.length > 0 ? encodeRequest(requestOf(cast, after)) : undefined,
  };
}
