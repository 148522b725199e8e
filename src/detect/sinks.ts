// Where findings go besides the spans, each a list under the detect processor's `sinks:` so that
// several of a type can run side by side:
//   ndjson        NDJSON on stdout or in a file, the native record or OCSF Detection Finding;
//   webhook       one JSON finding per POST;
//   alertmanager  alerts on the Alertmanager v2 API;
//   otlp_logs     OTLP log events (agentsec.finding) over HTTP/protobuf or gRPC.
// Each sink gets every finding the detect processor accepts, and the same id again when a finding
// is upgraded. The network sinks queue (bounded, oldest dropped first), retry and count what
// they drop (sinks/queue.ts); deliver() never waits on the network.
import { z } from 'zod';
import { toOcsf, type Finding } from './finding.ts';
import { RotatingFile } from '../exporters/file.ts';
import { duration } from '../config/units.ts';
import { RetryConfig } from '../pipeline/exporter-helper.ts';
import type { Logger } from '../telemetry/logger.ts';
import type { CounterHandle, MetricsRegistry } from '../telemetry/metrics.ts';
import { PRODUCT_VERSION } from './sinks/queue.ts';
import { webhookSink } from './sinks/webhook.ts';
import { alertmanagerSink } from './sinks/alertmanager.ts';
import { otlpLogsSink, resolveLogsTarget } from './sinks/otlp-logs.ts';

export const NdjsonSinkConfig = z.strictObject({
  /** `-` (or absent) for stdout, else a file path. */
  path: z.string().default('-'),
  format: z.enum(['native', 'ocsf']).default('native'),
});

const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const Headers = z
  .record(z.string().regex(HEADER_NAME, 'must be an HTTP header name'), z.string().regex(/^[^\r\n\0]*$/, 'must not contain CR, LF or NUL'))
  .default({});

const HttpUrl = z.string().refine(
  (v) => {
    const url = URL.parse(v);
    return url !== null && (url.protocol === 'http:' || url.protocol === 'https:') && url.hostname !== '';
  },
  { message: 'must be an http:// or https:// URL' },
);

const TLS_FIELDS = {
  /** CA bundle to verify the server with, instead of the system's. */
  ca_file: z.string().min(1).optional(),
  /** Client certificate (mTLS), with key_file. */
  cert_file: z.string().min(1).optional(),
  key_file: z.string().min(1).optional(),
  insecure_skip_verify: z.boolean().default(false),
  server_name_override: z.string().min(1).optional(),
};
/** For https:// URLs. */
const HttpsTlsConfig = z.strictObject(TLS_FIELDS);
/** As the otlp exporter's: `insecure` chooses plaintext for a gRPC host:port endpoint. */
const OtlpTlsConfig = z.strictObject({ insecure: z.boolean().optional(), ...TLS_FIELDS });

/** What every network sink has: headers, a per-attempt timeout, retries and a bounded queue. */
const DELIVERY = {
  headers: Headers,
  /** Per attempt; 0 = no limit. */
  timeout: duration.prefault('5s'),
  /** initial_interval 1s, max_interval 30s, max_elapsed_time 300s (0 = forever), multiplier 1.5, randomization_factor 0.5. */
  retry: RetryConfig,
  /** Findings waiting to be sent; when full the oldest is dropped (and counted). */
  max_queue: z.number().int().positive().default(10_000),
};
const MaxBatch = z.number().int().min(1).max(1000).default(100);

function checkTls(cfg: { tls?: { cert_file?: string | undefined; key_file?: string | undefined } | undefined }, ctx: z.RefinementCtx, httpsUrl: boolean | undefined): void {
  if (!cfg.tls) return;
  if (httpsUrl === false) ctx.addIssue({ code: 'custom', path: ['tls'], message: 'applies to https:// URLs only' });
  if ((cfg.tls.cert_file === undefined) !== (cfg.tls.key_file === undefined)) {
    const missing = cfg.tls.cert_file === undefined ? 'cert_file' : 'key_file';
    ctx.addIssue({ code: 'custom', path: ['tls', missing], message: 'a client certificate needs both tls::cert_file and tls::key_file' });
  }
}

const isHttps = (url: string) => URL.parse(url)?.protocol === 'https:';

export const WebhookSinkConfig = z
  .strictObject({
    url: HttpUrl,
    format: z.enum(['native', 'ocsf']).default('native'),
    ...DELIVERY,
    tls: HttpsTlsConfig.optional(),
  })
  .superRefine((cfg, ctx) => checkTls(cfg, ctx, isHttps(cfg.url)));

export const AlertmanagerSinkConfig = z
  .strictObject({
    /** Alertmanager's base URL, e.g. http://alertmanager:9093; /api/v2/alerts is appended. */
    url: HttpUrl,
    ...DELIVERY,
    /** Findings per POST (an upgraded one may add the alert it resolves). */
    max_batch: MaxBatch,
    tls: HttpsTlsConfig.optional(),
  })
  .superRefine((cfg, ctx) => checkTls(cfg, ctx, isHttps(cfg.url)));

export const OtlpLogsSinkConfig = z
  .strictObject({
    /** http/protobuf: base URL, /v1/logs is appended. grpc: host:port or http(s)://host:port. */
    endpoint: z.string().min(1),
    /** http/protobuf only: the full logs URL, used as is. */
    logs_endpoint: z.string().min(1).optional(),
    protocol: z.enum(['grpc', 'http/protobuf']).default('http/protobuf'),
    ...DELIVERY,
    /** Findings (log records) per export request. */
    max_batch: MaxBatch,
    tls: OtlpTlsConfig.optional(),
  })
  .superRefine((cfg, ctx) => {
    const target = resolveLogsTarget(cfg);
    if ('problem' in target) ctx.addIssue({ code: 'custom', path: target.path, message: target.problem });
    checkTls(cfg, ctx, undefined);
  });

export const SinksConfig = z
  .strictObject({
    ndjson: z.array(NdjsonSinkConfig).default([]),
    webhook: z.array(WebhookSinkConfig).default([]),
    alertmanager: z.array(AlertmanagerSinkConfig).default([]),
    otlp_logs: z.array(OtlpLogsSinkConfig).default([]),
  })
  .prefault({});
export type SinksConfig = z.output<typeof SinksConfig>;

export interface FindingSink {
  start(): Promise<void>;
  /** Synchronous and quick: a sink that sends over the network queues (a snapshot) and returns. */
  deliver(f: Finding): void;
  /** Flushes; network sinks drain their queue until `signal` aborts (default: a few seconds). */
  close(signal?: AbortSignal): Promise<void>;
}

export interface SinkContext {
  logger: Logger;
  metrics: MetricsRegistry;
  /** Where `ndjson` with path `-` writes; process.stdout by default. */
  stdout?: { write(s: string): unknown } | undefined;
}

export class NdjsonSink implements FindingSink {
  readonly #format: 'native' | 'ocsf';
  readonly #file: RotatingFile | undefined;
  readonly #write: (line: string) => void;
  readonly #delivered: CounterHandle | undefined;

  constructor(cfg: z.output<typeof NdjsonSinkConfig>, stdout: { write(s: string): unknown } = process.stdout, delivered?: CounterHandle) {
    this.#format = cfg.format;
    this.#file = cfg.path === '-' ? undefined : new RotatingFile(cfg.path, 100 * 1024 * 1024, 3);
    this.#write = this.#file ? (line) => void this.#file!.append(line) : (line) => void stdout.write(line);
    this.#delivered = delivered;
  }

  async start(): Promise<void> {
    await this.#file?.open();
  }

  deliver(f: Finding): void {
    this.#write(JSON.stringify(this.#format === 'ocsf' ? toOcsf(f, PRODUCT_VERSION) : f) + '\n');
    this.#delivered?.inc();
  }

  async close(): Promise<void> {
    await this.#file?.close();
  }
}

/** One sink per configured entry, labelled <type>/<index> in the metrics and logs (webhook/0). */
export function createSinks(cfg: SinksConfig, ctx: SinkContext): FindingSink[] {
  const delivered = ctx.metrics.counter('agentsec_finding_sink_delivered_total', 'Findings a sink delivered to its destination.', ['sink']);
  return [
    ...cfg.ndjson.map((c, i) => new NdjsonSink(c, ctx.stdout, delivered.labels(`ndjson/${i}`))),
    ...cfg.webhook.map((c, i) => webhookSink(`webhook/${i}`, c, ctx)),
    ...cfg.alertmanager.map((c, i) => alertmanagerSink(`alertmanager/${i}`, c, ctx)),
    ...cfg.otlp_logs.map((c, i) => otlpLogsSink(`otlp_logs/${i}`, c, ctx)),
  ];
}
