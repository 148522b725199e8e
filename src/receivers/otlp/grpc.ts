// OTLP/gRPC: the unary TraceService/Export on @grpc/grpc-js. grpc-js enforces the message
// size limit (also after gzip/deflate decompression, streaming, so a compression bomb stops at
// the limit) and answers RESOURCE_EXHAUSTED itself; everything after that goes through Ingest.
import type { Http2Server, ServerHttp2Session } from 'node:http2';
import * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { TRACE_EXPORT_PATH } from '../../otlp/proto.ts';
import { encodeRpcStatusProtobuf, statusOf } from '../../otlp/status.ts';
import { splitHostPort } from '../../config/units.ts';
import { encodeExportResponseProtobuf, type Ingest } from './ingest.ts';
import { joinHostPort, ListenError, ListeningTransport, type TlsMaterial } from './listen.ts';
import { untilDoneOrAborted } from '../../component/types.ts';

export interface GrpcTransportConfig {
  endpoint: string;
  maxRecvMsgSize: number;
  tls: TlsMaterial | undefined;
}

/**
 * HTTP/2 flow-control window for each stream and each connection. The protocol default of
 * 64 KiB makes a client wait for a WINDOW_UPDATE round trip every 64 KiB of a request, and an
 * export request is typically hundreds of KiB; 8 MiB lets a whole typical request travel in one
 * go (node-performance.md: about +14% throughput on 4 connections). The cost: a client may have up
 * to 8 MiB in flight per connection before the server reads it, less than one max-size message.
 */
const FLOW_CONTROL_WINDOW = 8 * 1024 * 1024;

const identity = (bytes: Buffer): Buffer => bytes;

const TRACE_SERVICE: grpc.ServiceDefinition = {
  export: {
    path: TRACE_EXPORT_PATH,
    requestStream: false,
    responseStream: false,
    // Pass-through: the handler decodes the raw bytes itself. A deserializer would decode
    // before the handler runs and grpc-js would keep the decoded request alive until the
    // stream closes (node-performance.md). Responses arrive already encoded.
    requestDeserialize: identity,
    requestSerialize: identity,
    responseSerialize: identity,
    responseDeserialize: identity,
  },
};

export class GrpcTransport extends ListeningTransport {
  readonly protocol = 'grpc';
  readonly #config: GrpcTransportConfig;
  readonly #ingest: Ingest;
  readonly #logger: Logger;
  #server: grpc.Server | undefined;

  constructor(config: GrpcTransportConfig, ingest: Ingest, logger: Logger) {
    super(config.endpoint);
    this.#config = config;
    this.#ingest = ingest;
    this.#logger = logger;
  }

  async start(): Promise<void> {
    const server = new grpc.Server({
      'grpc.max_receive_message_length': this.#config.maxRecvMsgSize,
      // Read by grpc-js clients only as of 1.14 (servers: grpc/grpc-node#3058); applied by raiseFlowControlWindows meanwhile.
      'grpc-node.flow_control_window': FLOW_CONTROL_WINDOW,
    });
    server.addService(TRACE_SERVICE, { export: this.#export });
    const { host, port } = splitHostPort(this.#config.endpoint);
    try {
      this.boundPort = await new Promise<number>((resolve, reject) => {
        server.bindAsync(joinHostPort(host, port), this.#credentials(), (err, bound) => (err ? reject(err) : resolve(bound)));
      });
    } catch (err) {
      server.forceShutdown();
      throw new ListenError('grpc', this.#config.endpoint, err);
    }
    raiseFlowControlWindows(server, FLOW_CONTROL_WINDOW);
    this.#server = server;
    this.#logger.info({ endpoint: this.endpoint(), tls: this.#config.tls !== undefined }, 'OTLP/gRPC receiver listening');
  }

  protected async stop(signal: AbortSignal): Promise<void> {
    const server = this.#server;
    if (server === undefined) return;
    await untilDoneOrAborted(signal, () => server.forceShutdown(), () => new Promise<void>((resolve) => server.tryShutdown(() => resolve())));
  }

  #credentials(): grpc.ServerCredentials {
    const tls = this.#config.tls;
    if (tls === undefined) return grpc.ServerCredentials.createInsecure();
    // With a client CA, a client without a certificate it signed fails the handshake.
    return grpc.ServerCredentials.createSsl(tls.clientCa ?? null, [{ private_key: tls.key, cert_chain: tls.cert }], tls.clientCa !== undefined);
  }

  readonly #export = (call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>): void => {
    this.#ingest.export('grpc', 'protobuf', call.request).then(
      (result) => callback(null, encodeExportResponseProtobuf(result)),
      (err: unknown) => callback(grpcError(err)),
    );
  };
}

/** The status with google.rpc.Status in grpc-status-details-bin, so that RetryInfo reaches the client. */
function grpcError(err: unknown): Partial<grpc.StatusObject> {
  const status = statusOf(err);
  const metadata = new grpc.Metadata();
  metadata.set('grpc-status-details-bin', Buffer.from(encodeRpcStatusProtobuf(status)));
  return { code: status.grpcCode, details: status.message, metadata };
}

/**
 * Until grpc-js servers read grpc-node.flow_control_window, raises the windows of each new
 * HTTP/2 session the way grpc-js clients do: a SETTINGS frame for the per-stream window and a
 * WINDOW_UPDATE for the connection. This reaches into grpc-js internals (its map of HTTP/2
 * servers), so it checks the shape and does nothing if that changes; a test reads the windows a
 * client is offered and fails if they are back to 64 KiB.
 */
function raiseFlowControlWindows(server: grpc.Server, bytes: number): void {
  const http2Servers = (server as unknown as { http2Servers?: unknown }).http2Servers;
  if (!(http2Servers instanceof Map)) return;
  for (const http2Server of http2Servers.keys() as Iterable<Http2Server>) {
    http2Server.on('session', (session: ServerHttp2Session) => {
      session.settings({ initialWindowSize: bytes });
      session.setLocalWindowSize(bytes);
    });
  }
}
