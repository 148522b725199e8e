// OTLP/gRPC transport: one unary TraceService/Export call per attempt on the shared grpc-js
// client (otlp-client.ts), with the request already encoded.
import { batchProtobuf } from '../otlp/encoded-batch.ts';
import { TRACE_EXPORT_PATH } from '../otlp/proto.ts';
import type { OtlpExporterSettings } from './otlp.ts';
import { grpcExporter, type OtlpTarget } from './otlp-client.ts';
import { partialSuccessFromProtobuf, type OtlpTransport, type TlsMaterial } from './otlp-transport.ts';

/** grpc-js `CompressionAlgorithms.gzip`. */
const GZIP = 2;

export function grpcTransport(cfg: OtlpExporterSettings, target: OtlpTarget, tls: TlsMaterial): OtlpTransport {
  const exporter = grpcExporter(target, tls, cfg.headers, cfg.compression === 'gzip' ? { 'grpc.default_compression_algorithm': GZIP } : {});
  return {
    // Compression, when on, is grpc-js's: per attempt, asynchronous (zlib's thread pool).
    encode: (batch) => batchProtobuf(batch),
    send: async (request, signal) => {
      const response = await exporter.call(TRACE_EXPORT_PATH, request, cfg.timeout, signal);
      return response && partialSuccessFromProtobuf(response);
    },
    close: () => exporter.close(),
  };
}
