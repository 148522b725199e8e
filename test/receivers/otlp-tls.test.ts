// TLS and mutual TLS on both transports, with a throwaway CA made by openssl at test time.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as grpc from '@grpc/grpc-js';
import { ConfigError } from '../../src/errors.ts';
import { otlpReceiverFactory } from '../../src/receivers/otlp/index.ts';
import { TracesSink } from '../helpers/sink.ts';
import { testSettings } from '../helpers/settings.ts';
import { grpcClient, grpcExport, httpRequest, protobufRequest, span, startReceiver, type Running } from './otlp-helpers.ts';

let dir: string;
const file = (name: string): string => join(dir, name);
const pem = (name: string): Buffer => readFileSync(file(name));

function openssl(...args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
}

/** A CA, and a key plus a certificate it signed with the given extensions. */
function issue(ca: string, name: string, subject: string, extensions: string): void {
  openssl('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', subject);
  writeFileSync(file(`${name}.ext`), extensions);
  openssl('x509', '-req', '-in', `${name}.csr`, '-CA', `${ca}.crt`, '-CAkey', `${ca}.key`, '-CAcreateserial', '-out', `${name}.crt`, '-days', '1', '-extfile', `${name}.ext`);
}

function makeCa(name: string): void {
  openssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.crt`, '-days', '1',
    '-subj', `/CN=${name}`, '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign');
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'agentsec-tls-'));
  makeCa('ca');
  makeCa('other-ca');
  issue('ca', 'server', '/CN=localhost', 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n');
  issue('ca', 'client', '/CN=agent', 'extendedKeyUsage=clientAuth\n');
  issue('other-ca', 'stranger', '/CN=stranger', 'extendedKeyUsage=clientAuth\n');
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function tlsConfig(mutual: boolean): Record<string, unknown> {
  const tls = { cert_file: file('server.crt'), key_file: file('server.key'), ...(mutual ? { client_ca_file: file('ca.crt') } : {}) };
  return { grpc: { endpoint: '127.0.0.1:0', tls }, http: { endpoint: '127.0.0.1:0', tls } };
}

function postTls(r: Running, client?: string): Promise<number> {
  const identity = client === undefined ? {} : { cert: pem(`${client}.crt`), key: pem(`${client}.key`) };
  return httpRequest(r.http, protobufRequest([span()]), {
    headers: { 'content-type': 'application/x-protobuf' },
    tls: { ca: pem('ca.crt'), servername: 'localhost', ...identity },
  }).then((res) => res.status);
}

async function exportTls(r: Running, client?: string): Promise<number> {
  const credentials =
    client === undefined ? grpc.credentials.createSsl(pem('ca.crt')) : grpc.credentials.createSsl(pem('ca.crt'), pem(`${client}.key`), pem(`${client}.crt`));
  // By name: the certificate is for localhost (and node frowns on an IP as TLS server name).
  const c = grpcClient(r.grpc.replace('127.0.0.1', 'localhost'), { credentials });
  try {
    return (await grpcExport(c, protobufRequest([span()]))).code;
  } finally {
    c.close();
  }
}

describe('TLS', () => {
  let r: Running;
  beforeAll(async () => {
    r = await startReceiver(tlsConfig(false));
  });
  afterAll(() => r.stop());

  it('HTTPS client trusting the CA succeeds', async () => {
    expect(await postTls(r)).toBe(200);
    expect(r.sink.contexts.at(-1)).toEqual({ receiver: 'otlp', transport: 'http' });
  });

  it('gRPC client trusting the CA succeeds', async () => {
    expect(await exportTls(r)).toBe(grpc.status.OK);
    expect(r.sink.contexts.at(-1)).toEqual({ receiver: 'otlp', transport: 'grpc' });
  });

  it('plaintext clients are refused on both ports', async () => {
    r.sink.reset();
    await expect(httpRequest(r.http, protobufRequest([span()]), { headers: { 'content-type': 'application/x-protobuf' } })).rejects.toThrow();
    const c = grpcClient(r.grpc);
    expect((await grpcExport(c, protobufRequest([span()]))).code).toBe(grpc.status.UNAVAILABLE);
    c.close();
    expect(r.sink.batches).toHaveLength(0);
  });
});

describe('mutual TLS', () => {
  let r: Running;
  beforeAll(async () => {
    r = await startReceiver(tlsConfig(true));
  });
  afterAll(() => r.stop());

  it('HTTPS without a client certificate is refused', async () => {
    await expect(postTls(r)).rejects.toThrow(/alert certificate required/);
  });

  it('HTTPS with a certificate from another CA is refused', async () => {
    // The server's alert (unknown ca) or its reset, whichever the client reads first.
    await expect(postTls(r, 'stranger')).rejects.toThrow(/alert unknown ca|socket hang up|ECONNRESET/);
  });

  it('HTTPS with a client certificate the CA signed succeeds', async () => {
    expect(await postTls(r, 'client')).toBe(200);
  });

  it('gRPC without a client certificate is refused', async () => {
    expect(await exportTls(r)).toBe(grpc.status.UNAVAILABLE);
  });

  it('gRPC with a certificate from another CA is refused', async () => {
    expect(await exportTls(r, 'stranger')).toBe(grpc.status.UNAVAILABLE);
  });

  it('gRPC with a client certificate the CA signed succeeds', async () => {
    r.sink.reset();
    expect(await exportTls(r, 'client')).toBe(grpc.status.OK);
    expect(r.sink.spanCount()).toBe(1);
  });
});

describe('TLS configuration errors name the key', () => {
  const create = (protocols: Record<string, unknown>): unknown =>
    otlpReceiverFactory.create(testSettings('otlp'), otlpReceiverFactory.config.parse({ protocols }), new TracesSink());

  it('a missing cert_file', () => {
    const missing = file('nope.crt');
    expect(() => create({ http: { tls: { cert_file: missing, key_file: file('server.key') } } })).toThrow(
      new ConfigError([`receivers::otlp::protocols::http::tls::cert_file: cannot read ${missing}: no such file`]),
    );
  });

  it('a missing client_ca_file', () => {
    const missing = file('nope-ca.crt');
    expect(() => create({ grpc: { tls: { cert_file: file('server.crt'), key_file: file('server.key'), client_ca_file: missing } } })).toThrow(
      `receivers::otlp::protocols::grpc::tls::client_ca_file: cannot read ${missing}: no such file`,
    );
  });

  it('a key that does not match the certificate', () => {
    expect(() => create({ grpc: { tls: { cert_file: file('server.crt'), key_file: file('client.key') } } })).toThrow(
      /^receivers::otlp::protocols::grpc::tls: cannot use cert_file and key_file: .*key values mismatch/,
    );
  });
});
