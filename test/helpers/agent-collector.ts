// A collector with the agent-semantics pipeline (normalize → tracegraph → enrich by default; the
// processors are a parameter, e.g. with detect) in-process, exporting to a FakeBackend, for
// scenario and baseline tests with real instrumentation: its trace graphs (graphOf) and exported
// spans (exportedOf), waited for.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FakeBackend } from './fake-backend.ts';
import { adminGet, startCollector, type TestCollector } from './collector.ts';
import type { PlainSpan } from './plain-spans.ts';
import { eventually } from './wait.ts';

/** GET /api/traces/{traceId}/graph */
export interface TraceGraphJson {
  traceId: string;
  spanCount: number;
  nodes: {
    /** The id of the span where this agent invocation starts. */
    id: string;
    role: string;
    instance: string;
    workloads: string[];
    depth: number;
    root: string;
    path: string;
    spanCount: number;
    tools: string[];
    targets: string[];
    credentials: string[];
  }[];
  edges: {
    from: string;
    to: string;
    fromRole: string;
    toRole: string;
    via: 'parent_child' | 'handoff' | 'graph_parent' | 'transfer' | 'remote' | 'link';
    /** The span that shows the delegation. */
    spanId: string;
  }[];
}

export interface AgentCollector {
  collector: TestCollector;
  backend: FakeBackend;
  /** OTLP/HTTP base URL, e.g. http://127.0.0.1:43123 (exporters append /v1/traces). */
  httpUrl: string;
  grpcAddress: string;
  graph(traceId: string): Promise<TraceGraphJson>;
  /** Waits until the backend has at least n spans, then returns every exported span. */
  exported(n: number, timeoutMs?: number): Promise<PlainSpan[]>;
  /** The graph of a trace, once the collector has counted `spans` spans of it. */
  graphOf(traceId: string, spans: number, timeoutMs?: number): Promise<TraceGraphJson>;
  /** The exported spans of one trace, once `count` of them have left the collector. */
  exportedOf(traceId: string, count: number, timeoutMs?: number): Promise<PlainSpan[]>;
  stop(): Promise<void>;
}

export interface AgentCollectorOptions {
  /** service.data_dir (where the HMAC key is kept); a fresh temp dir by default. */
  dataDir?: string;
  /** enrich's hold (100ms by default): longer where parents come from another process, later. */
  hold?: string;
  /** More processor definitions, YAML lines under `processors:`. */
  extraProcessors?: string;
  /** The pipeline's processor list (default: normalize, tracegraph, enrich). */
  processors?: string[];
}

export async function startAgentCollector(opts: AgentCollectorOptions = {}): Promise<AgentCollector> {
  const backend = await FakeBackend.start();
  const dataDir = opts.dataDir ?? mkdtempSync(join(tmpdir(), 'agentsec-data-'));
  const collector = await startCollector(`
receivers:
  otlp:
    protocols:
      grpc: { endpoint: "127.0.0.1:0" }
      http: { endpoint: "127.0.0.1:0" }
processors:
  normalize: {}
  tracegraph: {}
  enrich: { hold: ${opts.hold ?? '100ms'} }
  ${opts.extraProcessors ?? ''}
exporters:
  otlp: { endpoint: "${backend.httpUrl}", protocol: http/protobuf, compression: none }
extensions:
  admin: { endpoint: "127.0.0.1:0" }
service:
  extensions: [admin]
  data_dir: "${dataDir}"
  telemetry: { logs: { level: info } }
  pipelines:
    traces: { receivers: [otlp], processors: [${(opts.processors ?? ['normalize', 'tracegraph', 'enrich']).join(', ')}], exporters: [otlp] }
`);
  const graph = (traceId: string) => adminGet<TraceGraphJson>(collector.adminUrl, `/api/traces/${traceId}/graph`);
  async function exported(n: number, timeoutMs = 15_000): Promise<PlainSpan[]> {
    await backend.waitForDelivered(n, timeoutMs);
    return backend.plainSpans('delivered');
  }
  return {
    collector,
    backend,
    httpUrl: collector.httpUrl,
    grpcAddress: collector.grpcAddress,
    graph,
    exported,
    graphOf: (traceId, spans, timeoutMs = 10_000) =>
      eventually(`graph of ${traceId} with ${spans} spans`, () => graph(traceId).catch((err: Error) => err), (g) => !(g instanceof Error) && g.spanCount >= spans, timeoutMs) as Promise<TraceGraphJson>,
    exportedOf: async (traceId, count, timeoutMs = 15_000) => {
      await backend.waitForDelivered(1, timeoutMs);
      return eventually(`${count} exported spans of ${traceId}`, async () => (await exported(0)).filter((s) => s.traceId === traceId), (l) => l.length >= count, timeoutMs);
    },
    async stop() {
      await collector.stop();
      await backend.close();
    },
  };
}
