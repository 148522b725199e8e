// What the otlp exporter's gRPC and HTTP transports share: the contract, the resolved
// endpoint, TLS material and reading partial success.
import { readFile } from 'node:fs/promises';
import { ExportTraceServiceResponse, Long } from '../otlp/proto.ts';
import type { TraceBatch } from '../otlp/types.ts';
import type { PushResult, SendFn } from '../pipeline/exporter-helper.ts';
import type { OtlpExporterSettings } from './otlp.ts';

/**
 * One transport of the otlp exporter: encodes a batch once, when the exporter accepts it
 * (the sending queue then holds these bytes), and sends those bytes on every attempt.
 */
export interface OtlpTransport {
  encode(batch: TraceBatch): Buffer | Promise<Buffer>;
  send: SendFn<Buffer>;
  close(): void;
}

export interface TlsMaterial {
  ca?: Buffer;
  cert?: Buffer;
  key?: Buffer;
  skipVerify: boolean;
  serverName?: string;
}

/** Reads the configured PEM files (at start, so a bad path fails the start with its name). */
export async function loadTls(tls: OtlpExporterSettings['tls']): Promise<TlsMaterial> {
  const read = async (what: string, path: string | undefined) => {
    if (path === undefined) return undefined;
    try {
      return await readFile(path);
    } catch (err) {
      throw new Error(`tls::${what}: cannot read ${path}: ${(err as Error).message}`, { cause: err });
    }
  };
  const [ca, cert, key] = await Promise.all([read('ca_file', tls?.ca_file), read('cert_file', tls?.cert_file), read('key_file', tls?.key_file)]);
  return {
    ...(ca && { ca }),
    ...(cert && { cert }),
    ...(key && { key }),
    skipVerify: tls?.insecure_skip_verify ?? false,
    ...(tls?.server_name_override && { serverName: tls.server_name_override }),
  };
}

interface ExportResponseFields {
  partialSuccess?: { rejectedSpans?: Long | number | string | null; errorMessage?: string | null } | null;
}

/** A garbled answer to an accepted export is still a success: there is just no partial-success detail. */
export function partialSuccessFromProtobuf(bytes: Uint8Array): PushResult | undefined {
  try {
    return partialSuccessOf(ExportTraceServiceResponse.decode(bytes) as ExportResponseFields);
  } catch {
    return undefined;
  }
}

export function partialSuccessFromJson(text: string): PushResult | undefined {
  try {
    return text.trim() === '' ? undefined : partialSuccessOf(JSON.parse(text) as ExportResponseFields);
  } catch {
    return undefined;
  }
}

// protobufjs decodes to the same camelCase field names as OTLP/JSON uses.
function partialSuccessOf(response: ExportResponseFields | null): PushResult | undefined {
  const partial = response?.partialSuccess;
  if (!partial) return undefined;
  const rejectedSpans = partial.rejectedSpans == null ? 0 : Long.fromValue(partial.rejectedSpans).toNumber();
  if (rejectedSpans === 0 && !partial.errorMessage) return undefined;
  return { rejectedSpans, ...(partial.errorMessage && { message: partial.errorMessage }) };
}

export type { OtlpTarget } from './otlp-client.ts';
