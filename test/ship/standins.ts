// STAND-INS for Jaeger's and Tempo's query APIs (there is no Jaeger or Tempo binary here):
// each is a FakeBackend that receives what the collector exports over OTLP and keeps it, plus
// an HTTP server that answers the one query the README tells users to run, in the shape and
// with the parameters of the real API (reference/jaeger-tempo-k8s.md §1.4, §2.3):
//   Jaeger ≥ 2.19  GET /api/v3/traces?query.serviceName=&query.attributes={"k":"v"}
//                  &query.startTimeMin=&query.startTimeMax= (RFC 3339, required → 400 without)
//                  → 200 {"result":{"resourceSpans":[…]}} (OTLP/JSON, whole traces) or
//                  404 {"error":{"httpCode":404,"message":"No traces found"}}. All attributes
//                  must match within one span, on its span, resource, scope, event or link
//                  attributes, compared as strings (arrays as JSON).
//   Tempo          GET /api/search?q=<TraceQL>&start=&end= (unix seconds) for the single-condition
//                  queries `{ span.<key> = "<v>" }`, `{ resource.<key> = "<v>" }` and `… != nil`
//                  → {"traces":[{traceID, rootServiceName, spanSets:[{spans:[{spanID, attributes}]}]}]}.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { decodeTraceProtobuf } from '../../src/otlp/decode.ts';
import { encodeTraceJson, int64String } from '../../src/otlp/encode.ts';
import { toHex } from '../../src/otlp/ids.ts';
import type { AnyValue, KeyValue, ResourceSpans, Span } from '../../src/otlp/types.ts';
import { FakeBackend } from '../helpers/fake-backend.ts';

/** A span with the resource and scope it came under. */
interface Stored {
  rs: ResourceSpans;
  scopeIndex: number;
  span: Span;
}

function asString(v: AnyValue | null | undefined): string | undefined {
  if (!v) return undefined;
  if (v.stringValue != null && Object.hasOwn(v, 'stringValue')) return v.stringValue;
  if (v.boolValue != null && Object.hasOwn(v, 'boolValue')) return String(v.boolValue);
  if (v.intValue != null && Object.hasOwn(v, 'intValue')) return int64String(v.intValue);
  if (v.doubleValue != null && Object.hasOwn(v, 'doubleValue')) return String(v.doubleValue);
  if (v.arrayValue) return JSON.stringify((v.arrayValue.values ?? []).map(asString));
  return undefined;
}

const attr = (attrs: readonly KeyValue[] | null | undefined, key: string) => asString(attrs?.find((a) => a.key === key)?.value);
const nanosToMs = (n: unknown) => Number(BigInt(int64String(n as never)) / 1_000_000n);

abstract class QueryStandIn {
  readonly backend: FakeBackend;
  readonly #server: http.Server;

  protected constructor(backend: FakeBackend) {
    this.backend = backend;
    this.#server = http.createServer((req, res) => {
      const url = new URL(req.url ?? '/', 'http://stand-in');
      const { status, body } = this.answer(url);
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(body);
    });
  }

  protected async listen(): Promise<void> {
    await new Promise<void>((r) => this.#server.listen(0, '127.0.0.1', r));
  }

  /** Base URL of the query API. */
  get queryUrl(): string {
    return `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}`;
  }

  /** Every span received so far (only successfully answered exports). */
  protected spans(): Stored[] {
    const out: Stored[] = [];
    for (const r of this.backend.requests) {
      if (r.answer.kind !== 'success') continue;
      for (const rs of decodeTraceProtobuf(r.body).batch.resourceSpans) {
        rs.scopeSpans.forEach((ss, scopeIndex) => {
          for (const span of ss.spans) out.push({ rs, scopeIndex, span });
        });
      }
    }
    return out;
  }

  protected abstract answer(url: URL): { status: number; body: string };

  async close(): Promise<void> {
    await new Promise((r) => this.#server.close(r));
    await this.backend.close();
  }
}

/** Stand-in for Jaeger v2's query API v3 (not Jaeger): see the file comment. */
export class JaegerStandIn extends QueryStandIn {
  static async start(): Promise<JaegerStandIn> {
    const s = new JaegerStandIn(await FakeBackend.start());
    await s.listen();
    return s;
  }

  protected answer(url: URL): { status: number; body: string } {
    if (url.pathname !== '/api/v3/traces') return { status: 404, body: JSON.stringify({ error: { httpCode: 404, message: `${url.pathname} not served by the stand-in` } }) };
    const p = url.searchParams;
    const min = Date.parse(p.get('query.startTimeMin') ?? '');
    const max = Date.parse(p.get('query.startTimeMax') ?? '');
    if (!Number.isFinite(min) || !Number.isFinite(max)) {
      return { status: 400, body: JSON.stringify({ error: { httpCode: 400, message: 'query.start_time_min and query.start_time_max are required' } }) };
    }
    const service = p.get('query.serviceName');
    const wanted = Object.entries(JSON.parse(p.get('query.attributes') ?? '{}') as Record<string, string>);
    const depth = Number(p.get('query.searchDepth') ?? 100);
    const spans = this.spans();
    const matches = (s: Stored) => {
      const t = nanosToMs(s.span.startTimeUnixNano);
      if (t < min || t > max) return false;
      if (service && attr(s.rs.resource?.attributes, 'service.name') !== service) return false;
      const where = [s.span.attributes, s.rs.resource?.attributes, s.rs.scopeSpans[s.scopeIndex]!.scope?.attributes, ...(s.span.events ?? []).map((e) => e.attributes), ...(s.span.links ?? []).map((l) => l.attributes)];
      return wanted.every(([k, v]) => where.some((attrs) => attr(attrs, k) === String(v)));
    };
    const traces = [...new Set(spans.filter(matches).map((s) => toHex(s.span.traceId)))].slice(0, depth);
    if (traces.length === 0) return { status: 404, body: JSON.stringify({ error: { httpCode: 404, message: 'No traces found' } }) };
    // Whole traces, each span under its own resource and scope.
    const resourceSpans: ResourceSpans[] = spans
      .filter((s) => traces.includes(toHex(s.span.traceId)))
      .map((s) => ({ resource: s.rs.resource, schemaUrl: s.rs.schemaUrl, scopeSpans: [{ ...s.rs.scopeSpans[s.scopeIndex]!, spans: [s.span] }] }));
    return { status: 200, body: `{"result":${encodeTraceJson(resourceSpans)}}` };
  }
}

/** Stand-in for Tempo's TraceQL search (not Tempo): see the file comment. */
export class TempoStandIn extends QueryStandIn {
  static async start(): Promise<TempoStandIn> {
    const s = new TempoStandIn(await FakeBackend.start());
    await s.listen();
    return s;
  }

  protected answer(url: URL): { status: number; body: string } {
    if (url.pathname !== '/api/search') return { status: 404, body: '{}' };
    const q = url.searchParams.get('q') ?? '';
    const m = /^\{\s*(span|resource)\.([A-Za-z0-9_.]+)\s*(=|!=)\s*(?:"([^"]*)"|(nil))\s*\}$/.exec(q.trim());
    if (!m) return { status: 400, body: JSON.stringify({ error: `the stand-in reads only { span.<key> = "<v>" }, { resource.<key> = "<v>" } and != nil, not ${q}` }) };
    const [, scope, key, op, value, nil] = m;
    const start = Number(url.searchParams.get('start') ?? 0) * 1000;
    const end = Number(url.searchParams.get('end') ?? Infinity) * 1000;
    const spans = this.spans();
    const matched = spans.filter((s) => {
      const t = nanosToMs(s.span.startTimeUnixNano);
      if (t < start || t > end) return false;
      const v = attr(scope === 'span' ? s.span.attributes : s.rs.resource?.attributes, key!);
      return nil ? (op === '!=' ? v !== undefined : v === undefined) : op === '=' ? v === value : v !== undefined && v !== value;
    });
    const byTrace = new Map<string, Stored[]>();
    for (const s of matched) byTrace.set(toHex(s.span.traceId), [...(byTrace.get(toHex(s.span.traceId)) ?? []), s]);
    const traces = [...byTrace].map(([traceID, hits]) => {
      const root = spans.find((s) => toHex(s.span.traceId) === traceID && toHex(s.span.parentSpanId) === '');
      return {
        traceID,
        rootServiceName: root ? attr(root.rs.resource?.attributes, 'service.name') : '<root span not yet received>',
        rootTraceName: root?.span.name,
        spanSets: [{ matched: hits.length, spans: hits.map((h) => ({ spanID: toHex(h.span.spanId), attributes: [{ key: `${key}`, value: { stringValue: attr(scope === 'span' ? h.span.attributes : h.rs.resource?.attributes, key!) } }] })) }],
      };
    });
    return { status: 200, body: JSON.stringify({ traces, metrics: { inspectedSpans: String(spans.length) } }) };
  }
}
