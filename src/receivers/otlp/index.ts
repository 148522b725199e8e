// The otlp receiver: OTLP/gRPC and OTLP/HTTP (protobuf and JSON) for traces, configured as in
// the collector's otlpreceiver (protocols.grpc / protocols.http, each on its own port).
import { z } from 'zod';
import type { Receiver, ReceiverFactory, Settings, TracesConsumer } from '../../component/types.ts';
import { byteSize, hostPort } from '../../config/units.ts';
import { GrpcTransport } from './grpc.ts';
import { HttpTransport } from './http.ts';
import { Ingest } from './ingest.ts';
import { loadTls, type Transport } from './listen.ts';

const tlsServerConfig = z.strictObject({
  cert_file: z.string().min(1),
  key_file: z.string().min(1),
  /** When set: mutual TLS, every client must present a certificate this CA signed. */
  client_ca_file: z.string().min(1).optional(),
});

/** A request size limit; grpc-js takes it as a 32-bit int. */
const sizeLimit = byteSize.pipe(z.number().positive('must be more than 0').max(2 ** 31 - 1, 'must be less than 2GiB'));

const grpcProtocol = z.strictObject({
  endpoint: hostPort.default('localhost:4317'),
  /** Largest message accepted, measured after decompression (grpc RESOURCE_EXHAUSTED above it). */
  max_recv_msg_size: sizeLimit.prefault('20MiB'),
  tls: tlsServerConfig.optional(),
});

const httpProtocol = z.strictObject({
  endpoint: hostPort.default('localhost:4318'),
  /** Largest body accepted, on the wire and after decompression (413 above it). */
  max_request_body_size: sizeLimit.prefault('20MiB'),
  traces_url_path: z.string().regex(/^\/\S*$/, 'must be a path starting with /, e.g. /v1/traces').default('/v1/traces'),
  tls: tlsServerConfig.optional(),
});

/** `grpc:` with no value (YAML null) enables the protocol with its defaults, as in collector configs. */
function protocol<T extends z.ZodType>(schema: T) {
  return z.preprocess((v) => (v === null ? {} : v), schema).optional();
}

export const otlpReceiverConfig = z.strictObject({
  protocols: z
    .strictObject({ grpc: protocol(grpcProtocol), http: protocol(httpProtocol) })
    .refine((p) => p.grpc !== undefined || p.http !== undefined, { message: 'enable at least one protocol: grpc or http' }),
});

export type OtlpReceiverConfig = z.output<typeof otlpReceiverConfig>;

class OtlpReceiver implements Receiver {
  readonly #transports: Transport[];

  constructor(transports: Transport[]) {
    this.#transports = transports;
  }

  async start(): Promise<void> {
    const started: Transport[] = [];
    try {
      for (const t of this.#transports) {
        await t.start();
        started.push(t);
      }
    } catch (err) {
      // Do not leave one protocol listening when the other could not.
      await Promise.all(started.map((t) => t.shutdown(AbortSignal.abort())));
      throw err;
    }
  }

  async shutdown(signal: AbortSignal): Promise<void> {
    await Promise.all(this.#transports.map((t) => t.shutdown(signal)));
  }

  endpoints(): Record<string, string> {
    return Object.fromEntries(this.#transports.map((t) => [t.protocol, t.endpoint()]));
  }
}

export const otlpReceiverFactory: ReceiverFactory<typeof otlpReceiverConfig> = {
  kind: 'receiver',
  type: 'otlp',
  stability: 'beta',
  config: otlpReceiverConfig,
  create(set: Settings, cfg: OtlpReceiverConfig, next: TracesConsumer): Receiver {
    const ingest = new Ingest(set, next);
    const keyPath = `receivers::${set.id}::protocols`;
    const { grpc, http } = cfg.protocols;
    const transports: Transport[] = [];
    if (grpc !== undefined) {
      transports.push(
        new GrpcTransport(
          { endpoint: grpc.endpoint, maxRecvMsgSize: grpc.max_recv_msg_size, tls: grpc.tls && loadTls(grpc.tls, `${keyPath}::grpc::tls`) },
          ingest,
          set.logger,
        ),
      );
    }
    if (http !== undefined) {
      transports.push(
        new HttpTransport(
          {
            endpoint: http.endpoint,
            maxRequestBodySize: http.max_request_body_size,
            tracesUrlPath: http.traces_url_path,
            tls: http.tls && loadTls(http.tls, `${keyPath}::http::tls`),
          },
          ingest,
          set.logger,
        ),
      );
    }
    return new OtlpReceiver(transports);
  },
};
