// TLS for the finding sinks: the configured PEM files, read at start, errors naming the sink's
// key. (The HTTP client itself is the exporters' one: src/exporters/http-client.ts.)
import { errorMessage } from '../../errors.ts';
import { loadTls, type TlsMaterial } from '../../exporters/otlp-transport.ts';

export interface SinkTlsSettings {
  ca_file?: string | undefined;
  cert_file?: string | undefined;
  key_file?: string | undefined;
  insecure_skip_verify: boolean;
  server_name_override?: string | undefined;
}

/** Reads the configured PEM files at start; a bad path fails the start naming the sink's key. */
export async function loadSinkTls(name: string, tls: SinkTlsSettings | undefined): Promise<TlsMaterial> {
  try {
    return await loadTls(tls);
  } catch (err) {
    // loadTls names tls::<file key>; the sink's own path goes before it.
    throw new Error(`sinks::${name.replace('/', '::')}::${errorMessage(err)}`, { cause: err });
  }
}
