// What both transports need to listen: TLS material read from the configured files, the
// contract each transport implements for the receiver, and one error for a failed listen.
import { readFileSync } from 'node:fs';
import { createSecureContext } from 'node:tls';
import { ConfigError, errorMessage } from '../../errors.ts';
import { splitHostPort } from '../../config/units.ts';
import type { TransportName } from './ingest.ts';

export interface TlsServerConfig {
  cert_file: string;
  key_file: string;
  client_ca_file?: string | undefined;
}

/** PEM contents; `clientCa` set means mutual TLS: clients must present a certificate it signed. */
export interface TlsMaterial {
  cert: Buffer;
  key: Buffer;
  clientCa: Buffer | undefined;
}

/** One protocol of the receiver (grpc or http), listening on its own port. */
export interface Transport {
  readonly protocol: TransportName;
  start(): Promise<void>;
  /** Stops accepting and lets requests in flight finish; cuts them off when `signal` aborts. */
  shutdown(signal: AbortSignal): Promise<void>;
  /** host:port, with the bound port once started (the configured port may be 0). */
  endpoint(): string;
}

/**
 * Reads the files at create time, so that a wrong path fails the config check and not the
 * first handshake. `keyPath` names the config key in messages, e.g. receivers::otlp::protocols::grpc::tls.
 */
export function loadTls(cfg: TlsServerConfig, keyPath: string): TlsMaterial {
  const read = (key: keyof TlsServerConfig, file: string): Buffer => {
    try {
      return readFileSync(file);
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      const why = e.code === 'ENOENT' ? 'no such file' : e.code === 'EACCES' ? 'permission denied' : e.code === 'EISDIR' ? 'is a directory' : e.message;
      throw new ConfigError([`${keyPath}::${key}: cannot read ${file}: ${why}`]);
    }
  };
  const material: TlsMaterial = {
    cert: read('cert_file', cfg.cert_file),
    key: read('key_file', cfg.key_file),
    clientCa: cfg.client_ca_file === undefined ? undefined : read('client_ca_file', cfg.client_ca_file),
  };
  try {
    // Parses the PEMs and checks that the key matches the certificate, as a handshake would.
    createSecureContext({ cert: material.cert, key: material.key, ca: material.clientCa });
  } catch (err) {
    const keys = cfg.client_ca_file === undefined ? 'cert_file and key_file' : 'cert_file, key_file and client_ca_file';
    throw new ConfigError([`${keyPath}: cannot use ${keys}: ${errorMessage(err)}`]);
  }
  return material;
}

/** What both transports share: the endpoint with the port bound at start, and a shutdown that runs once. */
export abstract class ListeningTransport implements Transport {
  abstract readonly protocol: TransportName;
  readonly #configuredEndpoint: string;
  /** Set by start once listening (the configured port may be 0). */
  protected boundPort: number | undefined;
  #stopped: Promise<void> | undefined;

  constructor(configuredEndpoint: string) {
    this.#configuredEndpoint = configuredEndpoint;
  }

  abstract start(): Promise<void>;
  /** Stops accepting and lets requests in flight finish; cuts them off when `signal` aborts. Called once. */
  protected abstract stop(signal: AbortSignal): Promise<void>;

  endpoint(): string {
    const { host, port } = splitHostPort(this.#configuredEndpoint);
    return joinHostPort(host, this.boundPort ?? port);
  }

  shutdown(signal: AbortSignal): Promise<void> {
    this.#stopped ??= this.stop(signal);
    return this.#stopped;
  }
}

/** The inverse of splitHostPort: IPv6 literals in brackets. */
export function joinHostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

/** A transport could not bind; `code` is the errno code (EADDRINUSE, EACCES, …) when known. */
export class ListenError extends Error {
  override readonly name = 'ListenError';
  readonly code: string | undefined;
  constructor(protocol: string, endpoint: string, cause: unknown) {
    const code = errnoCode(cause);
    const why = code === 'EADDRINUSE' ? 'address already in use' : code === 'EACCES' ? 'permission denied' : errorMessage(cause);
    super(`otlp receiver: cannot listen on ${endpoint} (${protocol}): ${why}`, { cause });
    this.code = code;
  }
}

function errnoCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === 'string') return code;
  // grpc-js reports bind failures as text only: "No address added … [listen EADDRINUSE: …]".
  return /\b(EADDRINUSE|EACCES|EADDRNOTAVAIL)\b/.exec(errorMessage(err))?.[1];
}
