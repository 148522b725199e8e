// otlp_logs: findings as OTLP log events (event_name agentsec.finding) to any OTLP logs backend
// (Loki, Elastic, another collector), over OTLP/HTTP protobuf or OTLP/gRPC, batched: what is
// queued, up to max_batch findings in one ExportLogsServiceRequest under one resource
// service.name=agentsec. Each record carries the trace and span id of the span that shows the
// finding, so backends link the log line to the trace.
//
// The body is the native finding as an AnyValue kvlist, not its JSON text: backends and the
// collector's own processors can address its fields (OTTL body["kind"], Loki/Elastic flatten a
// map body into fields), and a backend that only shows strings renders a map body as JSON
// anyway. The few fields people filter on are attributes too (agentsec.finding.*).
import type { z } from 'zod';
import { grpcExporter, resolveOtlpTarget, type OtlpTarget } from '../../exporters/otlp-client.ts';
import type { TlsMaterial } from '../../exporters/otlp-transport.ts';
import { ExportLogsServiceRequest, ExportLogsServiceResponse, LOGS_EXPORT_PATH, Long } from '../../otlp/proto.ts';
import type { Finding, Severity } from '../finding.ts';
import type { OtlpLogsSinkConfig } from '../sinks.ts';
import { httpFailure, httpPoster, rpcStatusDetail, type HttpPoster } from '../../exporters/http-client.ts';
import { loadSinkTls } from './http.ts';
import { PRODUCT_VERSION, QueuedSink, type SendResult, type SinkContext, USER_AGENT, MAX_ANSWER_BYTES } from './queue.ts';

type OtlpLogsSettings = z.output<typeof OtlpLogsSinkConfig>;

/** OTLP SeverityNumber and its short name, per finding severity. */
export const LOG_SEVERITY: Record<Severity, { number: number; text: string }> = {
  low: { number: 9, text: 'INFO' },
  medium: { number: 13, text: 'WARN' },
  high: { number: 17, text: 'ERROR' },
  critical: { number: 21, text: 'FATAL' },
};

export const FINDING_EVENT_NAME = 'agentsec.finding';

/** protobufjs-ready AnyValue / KeyValue (camelCase fields, keepCase: false). */
type AnyValueFields =
  | { stringValue: string }
  | { boolValue: boolean }
  | { intValue: number }
  | { doubleValue: number }
  | { arrayValue: { values: AnyValueFields[] } }
  | { kvlistValue: { values: KeyValueFields[] } }
  | Record<string, never>;
interface KeyValueFields {
  key: string;
  value: AnyValueFields;
}

export interface LogRecordFields {
  timeUnixNano: Long;
  observedTimeUnixNano: Long;
  severityNumber: number;
  severityText: string;
  body: AnyValueFields;
  attributes: KeyValueFields[];
  traceId?: Buffer;
  spanId?: Buffer;
  eventName: string;
}

// ------------------------------------------------------------------ endpoint

export type LogsTarget = OtlpTarget;

/** Where to send and whether over TLS, or the key that is wrong and why (for the schema). */
export function resolveLogsTarget(cfg: Pick<OtlpLogsSettings, 'endpoint' | 'logs_endpoint' | 'protocol' | 'tls'>) {
  return resolveOtlpTarget(cfg, 'logs', cfg.logs_endpoint);
}

// ------------------------------------------------------------------ encoding

const NANOS_PER_MS = Long.fromNumber(1_000_000, true);

function unixNanos(ms: number): Long {
  return Long.fromNumber(Math.max(0, Math.round(ms)), true).multiply(NANOS_PER_MS);
}

/** A JSON value as an AnyValue; undefined members are left out, as JSON.stringify does. */
export function anyValueOf(v: unknown): AnyValueFields {
  if (v === null || v === undefined) return {};
  if (typeof v === 'string') return { stringValue: v };
  if (typeof v === 'boolean') return { boolValue: v };
  if (typeof v === 'number') return Number.isSafeInteger(v) ? { intValue: v } : { doubleValue: v };
  if (Array.isArray(v)) return { arrayValue: { values: v.map(anyValueOf) } };
  if (typeof v === 'object') {
    const values: KeyValueFields[] = [];
    for (const [key, member] of Object.entries(v)) if (member !== undefined) values.push({ key, value: anyValueOf(member) });
    return { kvlistValue: { values } };
  }
  return { stringValue: String(v) };
}

const HEX_ID = (len: number) => new RegExp(`^[0-9a-f]{${len}}$`);
const TRACE_ID = HEX_ID(32);
const SPAN_ID = HEX_ID(16);

export function logRecordOf(f: Finding, observedMs = Date.now()): LogRecordFields {
  const time = Date.parse(f.time);
  const sev = LOG_SEVERITY[f.severity];
  const str = (key: string, value: string): KeyValueFields => ({ key, value: { stringValue: value } });
  const first = f.spanIds[0];
  return {
    timeUnixNano: unixNanos(Number.isNaN(time) ? observedMs : time),
    observedTimeUnixNano: unixNanos(observedMs),
    severityNumber: sev.number,
    severityText: sev.text,
    // Through JSON, so that the body is exactly the native record the other sinks send.
    body: anyValueOf(JSON.parse(JSON.stringify(f))),
    attributes: [
      str('agentsec.finding.id', f.id),
      str('agentsec.finding.kind', f.kind),
      str('agentsec.finding.severity', f.severity),
      str('agentsec.finding.owasp', f.owasp),
    ],
    ...(TRACE_ID.test(f.traceId) && { traceId: Buffer.from(f.traceId, 'hex') }),
    ...(first && SPAN_ID.test(first) && { spanId: Buffer.from(first, 'hex') }),
    eventName: FINDING_EVENT_NAME,
  };
}

export function encodeLogsRequest(records: LogRecordFields[]): Buffer {
  const request = {
    resourceLogs: [
      {
        resource: { attributes: [{ key: 'service.name', value: { stringValue: 'agentsec' } }] },
        scopeLogs: [{ scope: { name: 'agentsec.detect', version: PRODUCT_VERSION }, logRecords: records }],
      },
    ],
  };
  const bytes = ExportLogsServiceRequest.encode(request as never).finish();
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

interface LogsResponseFields {
  partialSuccess?: { rejectedLogRecords?: Long | number | string | null; errorMessage?: string | null } | null;
}

/** A garbled answer to an accepted export is still a success, without partial-success detail. */
function partialSuccess(bytes: Uint8Array): SendResult | undefined {
  try {
    const partial = (ExportLogsServiceResponse.decode(bytes) as LogsResponseFields).partialSuccess;
    if (!partial) return undefined;
    const rejected = partial.rejectedLogRecords == null ? 0 : Long.fromValue(partial.rejectedLogRecords).toNumber();
    if (rejected === 0 && !partial.errorMessage) return undefined;
    return { rejected, ...(partial.errorMessage && { message: partial.errorMessage }) };
  } catch {
    return undefined;
  }
}

// ------------------------------------------------------------------ transports

interface LogsTransport {
  send(request: Buffer, signal: AbortSignal): Promise<SendResult | void>;
  close(): void;
}

function httpLogsTransport(cfg: OtlpLogsSettings, target: LogsTarget, tls: TlsMaterial | undefined): LogsTransport {
  const poster: HttpPoster = httpPoster(new URL(target.address), { headers: cfg.headers, contentType: 'application/x-protobuf', tls, userAgent: USER_AGENT, maxAnswerBytes: MAX_ANSWER_BYTES });
  return {
    async send(request, signal) {
      const answer = await poster.post(request, signal);
      if (answer.status >= 200 && answer.status < 300) return partialSuccess(answer.body);
      // OTLP servers answer errors with a google.rpc.Status, which may carry RetryInfo.
      throw httpFailure(answer, rpcStatusDetail(answer))!;
    },
    close: () => poster.close(),
  };
}

function grpcLogsTransport(cfg: OtlpLogsSettings, target: LogsTarget, tls: TlsMaterial | undefined): LogsTransport {
  const exporter = grpcExporter(target, tls, cfg.headers);
  return {
    send: async (request, signal) => {
      const response = await exporter.call(LOGS_EXPORT_PATH, request, cfg.timeout, signal);
      return response ? partialSuccess(response) : undefined;
    },
    close: () => exporter.close(),
  };
}

// ------------------------------------------------------------------ the sink

export function otlpLogsSink(name: string, cfg: OtlpLogsSettings, ctx: SinkContext): QueuedSink<LogRecordFields, Buffer> {
  const target = resolveLogsTarget(cfg);
  if ('problem' in target) throw new Error(`sinks::${name.replace('/', '::')}::${target.path.join('::')}: ${target.problem}`);
  let transport: LogsTransport | undefined;
  return new QueuedSink<LogRecordFields, Buffer>(
    ctx,
    { name, maxQueue: cfg.max_queue, maxBatch: cfg.max_batch, retry: cfg.retry, timeout: cfg.timeout },
    {
      async start() {
        const tls = target.secure ? await loadSinkTls(name, cfg.tls) : undefined;
        transport = (cfg.protocol === 'grpc' ? grpcLogsTransport : httpLogsTransport)(cfg, target, tls);
      },
      encode: (f) => logRecordOf(f),
      request: encodeLogsRequest,
      send: (request, signal) => transport!.send(request, signal),
      close: () => transport?.close(),
    },
  );
}
