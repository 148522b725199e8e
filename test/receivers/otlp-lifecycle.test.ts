// Config schema, start and shutdown: defaults as in the collector, clear errors, ports that are
// in use, shutdown that drains or cuts, and the HTTP/2 windows the gRPC server offers.
import * as http2 from 'node:http2';
import * as net from 'node:net';
import { describe, expect, it } from 'vitest';
import * as grpc from '@grpc/grpc-js';
import { z } from 'zod';
import type { ConsumeContext } from '../../src/component/types.ts';
import { formatIssues } from '../../src/config/issues.ts';
import type { TraceBatch } from '../../src/otlp/types.ts';
import { otlpReceiverFactory } from '../../src/receivers/otlp/index.ts';
import { ListenError } from '../../src/receivers/otlp/listen.ts';
import { TracesSink } from '../helpers/sink.ts';
import { testHost, testSettings } from '../helpers/settings.ts';
import { grpcClient, grpcExport, httpRequest, postProtobuf, protobufRequest, span, startReceiver } from './otlp-helpers.ts';
import { until } from '../helpers/wait.ts';

const schema = otlpReceiverFactory.config;

function issues(input: unknown): string[] {
  const result = schema.safeParse(input);
  return result.success ? [] : formatIssues(['receivers', 'otlp'], result.error as z.ZodError);
}

describe('config', () => {
  it('is the otlp receiver factory', () => {
    expect(otlpReceiverFactory).toMatchObject({ kind: 'receiver', type: 'otlp', stability: 'beta' });
  });

  it('fills the collector defaults; a protocol written with no value is enabled', () => {
    expect(schema.parse({ protocols: { grpc: null, http: null } })).toEqual({
      protocols: {
        grpc: { endpoint: 'localhost:4317', max_recv_msg_size: 20 * 1024 * 1024 },
        http: { endpoint: 'localhost:4318', max_request_body_size: 20 * 1024 * 1024, traces_url_path: '/v1/traces' },
      },
    });
  });

  it('leaves out a protocol that is not written', () => {
    expect(schema.parse({ protocols: { http: { max_request_body_size: '4MiB' } } }).protocols).toEqual({
      http: { endpoint: 'localhost:4318', max_request_body_size: 4 * 1024 * 1024, traces_url_path: '/v1/traces' },
    });
  });

  it('needs at least one protocol', () => {
    expect(issues({ protocols: {} })).toEqual(['receivers::otlp::protocols: enable at least one protocol: grpc or http']);
  });

  it('names wrong keys and values', () => {
    expect(issues({ protocols: { grpc: { endpont: ':4317' } } })).toEqual(['receivers::otlp::protocols::grpc: unknown key "endpont"']);
    expect(issues({ protocols: { grpc: { endpoint: '4317' } } })).toEqual(['receivers::otlp::protocols::grpc::endpoint: must be host:port, e.g. 0.0.0.0:4317 or localhost:0']);
    expect(issues({ protocols: { http: { max_request_body_size: 0 } } })).toEqual(['receivers::otlp::protocols::http::max_request_body_size: must be more than 0']);
    expect(issues({ protocols: { http: { traces_url_path: 'v1/traces' } } })).toEqual([
      'receivers::otlp::protocols::http::traces_url_path: must be a path starting with /, e.g. /v1/traces',
    ]);
    expect(issues({ protocols: { http: { tls: { cert_file: 'a.crt' } } } })).toEqual(['receivers::otlp::protocols::http::tls::key_file: is required (string)']);
  });
});

/** Resolves with a port nothing listens on, or with a server holding one. */
function listen(port = 0): Promise<net.Server> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve(server));
  });
}

const portOf = (server: net.Server): number => (server.address() as net.AddressInfo).port;
const close = (server: net.Server): Promise<void> => new Promise((resolve) => server.close(() => resolve()));

describe('start and shutdown', () => {
  const create = (protocols: Record<string, unknown>, sink = new TracesSink()) => {
    const set = testSettings('otlp');
    return { receiver: otlpReceiverFactory.create(set, schema.parse({ protocols }), sink), set };
  };

  it('shutdown without start resolves, twice', async () => {
    const { receiver } = create({ grpc: { endpoint: '127.0.0.1:0' }, http: { endpoint: '127.0.0.1:0' } });
    await receiver.shutdown(AbortSignal.timeout(1000));
    await receiver.shutdown(AbortSignal.timeout(1000));
  });

  it('reports the bound ports and frees them on shutdown, which is idempotent', async () => {
    const r = await startReceiver();
    const ports = [r.grpc, r.http].map((e) => Number(e.split(':')[1]));
    expect(r.grpc).toMatch(/^127\.0\.0\.1:\d+$/);
    expect(ports.every((p) => p > 0)).toBe(true);
    await r.stop();
    await r.stop();
    for (const port of ports) await close(await listen(port));
  });

  it.each(['grpc', 'http'])('%s on a port in use: start rejects naming the endpoint', async (protocol) => {
    const busy = await listen();
    const endpoint = `127.0.0.1:${portOf(busy)}`;
    const { receiver } = create({ [protocol]: { endpoint } });
    try {
      const err = await receiver.start(testHost(testSettings('otlp'))).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(ListenError);
      expect((err as ListenError).message).toBe(`otlp receiver: cannot listen on ${endpoint} (${protocol}): address already in use`);
      expect((err as ListenError).code).toBe('EADDRINUSE');
    } finally {
      await receiver.shutdown(AbortSignal.timeout(1000));
      await close(busy);
    }
  });

  it('when http cannot listen, grpc does not stay up', async () => {
    const free = await listen();
    const grpcPort = portOf(free);
    await close(free);
    const busy = await listen();
    const { receiver } = create({ grpc: { endpoint: `127.0.0.1:${grpcPort}` }, http: { endpoint: `127.0.0.1:${portOf(busy)}` } });
    await expect(receiver.start(testHost(testSettings('otlp')))).rejects.toThrow(/address already in use/);
    await close(await listen(grpcPort)); // free again
    await close(busy);
  });

  it('serves the configured traces_url_path only', async () => {
    const r = await startReceiver({ http: { endpoint: '127.0.0.1:0', traces_url_path: '/otlp/v1/traces' } });
    try {
      const body = protobufRequest([span()]);
      expect((await httpRequest(r.http, body, { path: '/otlp/v1/traces', headers: { 'content-type': 'application/x-protobuf' } })).status).toBe(200);
      expect((await postProtobuf(r.http, body)).status).toBe(404);
    } finally {
      await r.stop();
    }
  });
});

/** A sink that holds every consume() until release() — requests in flight, on demand. */
class GatedSink extends TracesSink {
  #release!: () => void;
  readonly #gate = new Promise<void>((resolve) => (this.#release = resolve));
  entered = 0;
  override async consume(batch: TraceBatch, ctx: ConsumeContext): Promise<void> {
    this.entered++;
    await this.#gate;
    return super.consume(batch, ctx);
  }
  release(): void {
    this.#release();
  }
}


describe('shutdown with requests in flight', () => {
  it('waits for them to finish', async () => {
    const sink = new GatedSink();
    const r = await startReceiver({}, 'otlp', sink);
    const client = grpcClient(r.grpc);
    const httpAnswer = postProtobuf(r.http, protobufRequest([span()]));
    const grpcAnswer = grpcExport(client, protobufRequest([span()]));
    await until(() => sink.entered === 2);

    let stopped = false;
    const stopping = r.receiver.shutdown(new AbortController().signal).then(() => (stopped = true));
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(stopped).toBe(false);

    sink.release();
    expect((await httpAnswer).status).toBe(200);
    expect((await grpcAnswer).code).toBe(grpc.status.OK);
    await stopping;
    expect(sink.spanCount()).toBe(2);
    client.close();
  });

  it('cuts them off when the signal aborts', async () => {
    const sink = new GatedSink();
    const r = await startReceiver({}, 'otlp', sink);
    const client = grpcClient(r.grpc);
    const httpAnswer = postProtobuf(r.http, protobufRequest([span()])).then(
      (res) => res.status,
      (err: Error) => err.message,
    );
    const grpcAnswer = grpcExport(client, protobufRequest([span()]));
    await until(() => sink.entered === 2);

    const abort = new AbortController();
    const stopping = r.receiver.shutdown(abort.signal);
    abort.abort();
    await stopping;
    expect(await httpAnswer).toBe('socket hang up');
    expect((await grpcAnswer).code).toBe(grpc.status.CANCELLED);
    sink.release();
    client.close();
  });
});

describe('HTTP while closing', () => {
  it('answers a new request on an open connection with 503', async () => {
    const sink = new GatedSink();
    const r = await startReceiver({ grpc: undefined }, 'otlp', sink);
    const [host, port] = r.http.split(':') as [string, string];
    const socket = net.connect(Number(port), host);
    let received = '';
    socket.on('data', (chunk: Buffer) => (received += chunk.toString('latin1')));
    const ended = new Promise((resolve) => socket.on('close', resolve));
    const body = protobufRequest([span()]);
    const request = `POST /v1/traces HTTP/1.1\r\nHost: ${r.http}\r\nContent-Type: application/x-protobuf\r\nContent-Length: ${body.length}\r\n\r\n`;

    socket.write(request);
    socket.write(body);
    await until(() => sink.entered === 1);
    const stopping = r.receiver.shutdown(AbortSignal.timeout(5000));
    socket.write(request); // same connection, after shutdown began
    socket.write(body);
    await new Promise((resolve) => setTimeout(resolve, 50));
    sink.release();
    await Promise.all([stopping, ended]);

    const statuses = [...received.matchAll(/^HTTP\/1\.1 (\d{3})/gm)].map((m) => m[1]);
    expect(statuses).toEqual(['200', '503']);
    expect(sink.entered).toBe(1);
  });
});

describe('gRPC HTTP/2 flow control', () => {
  it('offers 8 MiB windows per stream and per connection, not the 64 KiB default', async () => {
    const r = await startReceiver({ http: undefined });
    const session = http2.connect(`http://${r.grpc}`);
    try {
      const window = 8 * 1024 * 1024;
      // The server sends its SETTINGS and WINDOW_UPDATE after the connection preface: wait for both.
      await until(() => session.remoteSettings?.initialWindowSize === window && session.state.remoteWindowSize === window).catch(() => undefined);
      expect(session.remoteSettings.initialWindowSize).toBe(window);
      expect(session.state.remoteWindowSize).toBe(window);
    } finally {
      session.close();
      await r.stop();
    }
  });
});
