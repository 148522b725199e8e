// OTLP/HTTP transport: POST to the traces URL on the shared HTTP client (http-client.ts),
// protobuf or JSON, gzip when configured, partial success read from a 2xx answer.
import { promisify } from 'node:util';
import { gzip } from 'node:zlib';
import { batchJson, batchProtobuf } from '../otlp/encoded-batch.ts';
import type { OtlpExporterSettings } from './otlp.ts';
import { httpFailure, httpPoster, rpcStatusDetail } from './http-client.ts';
import { partialSuccessFromJson, partialSuccessFromProtobuf, type OtlpTarget, type OtlpTransport, type TlsMaterial } from './otlp-transport.ts';

/** OTLP recommends servers keep responses under 4 MiB; read no more than that. */
const MAX_RESPONSE_BYTES = 4 * 1024 * 1024;

const gzipAsync = promisify(gzip);
/** zlib's own default, which grpc-js uses too. */
const DEFAULT_GZIP_LEVEL = 6;

export function httpTransport(cfg: OtlpExporterSettings, target: OtlpTarget, tls: TlsMaterial): OtlpTransport {
  const json = cfg.protocol === 'http/json';
  const poster = httpPoster(new URL(target.address), {
    headers: cfg.headers,
    contentType: json ? 'application/json' : 'application/x-protobuf',
    ...(cfg.compression === 'gzip' && { contentEncoding: 'gzip' }),
    tls,
    maxAnswerBytes: MAX_RESPONSE_BYTES,
  });
  return {
    encode(batch) {
      const encoded = json ? batchJson(batch) : batchProtobuf(batch);
      // Compressed once, off the event loop (zlib's thread pool); the queue holds the result.
      return cfg.compression === 'gzip' ? gzipAsync(encoded, { level: cfg.compression_level ?? DEFAULT_GZIP_LEVEL }) : encoded;
    },
    async send(request, signal) {
      const answer = await poster.post(request, signal);
      const failure = httpFailure(answer, rpcStatusDetail(answer));
      if (failure) throw failure;
      return json ? partialSuccessFromJson(answer.body.toString('utf8')) : partialSuccessFromProtobuf(answer.body);
    },
    close: () => poster.close(),
  };
}
