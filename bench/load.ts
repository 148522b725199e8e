// The load generator, run by bench/run.ts as its own process (so its CPU is not the
// collector's): sends the pre-encoded pool over OTLP/HTTP or OTLP/gRPC with a fixed number
// of requests in flight, warms up, then counts acknowledged spans over a measured window.
// It tells its parent over IPC when the window starts and ends, so the parent can sample
// the collector's CPU over exactly that window.
//   node bench/load.ts --transport http|grpc --target HOST:PORT --pool FILE
//                      [--seconds 10] [--warmup 2] [--concurrency 8]
import http from 'node:http';
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import * as grpc from '@grpc/grpc-js';
import { TRACE_EXPORT_PATH } from '../src/otlp/proto.ts';
import { readPoolFile, SPANS_PER_REQUEST } from './payload.ts';

const GRPC_FLOW_CONTROL_WINDOW = 8 * 1024 * 1024;
/** How long a worker waits after a refusal (503 / UNAVAILABLE) before sending again. */
const REFUSAL_BACKOFF_MS = 50;

type Outcome = { kind: 'acked' } | { kind: 'refused' } | { kind: 'error'; message: string };
type Sender = { send(body: Buffer): Promise<Outcome>; close(): void };

export type LoadMessage =
  | { type: 'window-start' }
  | { type: 'window-end'; result: LoadResult };

export interface LoadResult {
  seconds: number;
  ackedSpans: number;
  refusals: number;
  errors: number;
  firstError: string | undefined;
}

function httpSender(target: string, concurrency: number): Sender {
  const [host, port] = splitHostPort(target);
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
  return {
    send: (body) =>
      new Promise<Outcome>((resolve) => {
        const req = http.request(
          { agent, host, port, path: '/v1/traces', method: 'POST', headers: { 'content-type': 'application/x-protobuf', 'content-length': body.length } },
          (res) => {
            res.resume();
            res.on('end', () => {
              if (res.statusCode === 200) resolve({ kind: 'acked' });
              else if (res.statusCode === 503) resolve({ kind: 'refused' });
              else resolve({ kind: 'error', message: `HTTP ${res.statusCode}` });
            });
          },
        );
        req.on('error', (err) => resolve({ kind: 'error', message: err.message }));
        req.end(body);
      }),
    close: () => agent.destroy(),
  };
}

function grpcSender(target: string): Sender {
  const client = new grpc.Client(target, grpc.credentials.createInsecure(), { 'grpc-node.flow_control_window': GRPC_FLOW_CONTROL_WINDOW });
  // Identity (de)serializers: the request is already protobuf, and the reply is not needed.
  const passThrough = (b: Buffer) => b;
  return {
    send: (body) =>
      new Promise<Outcome>((resolve) => {
        client.makeUnaryRequest(TRACE_EXPORT_PATH, passThrough, passThrough, body, (err) => {
          if (!err) resolve({ kind: 'acked' });
          else if (err.code === grpc.status.UNAVAILABLE) resolve({ kind: 'refused' });
          else resolve({ kind: 'error', message: `gRPC ${grpc.status[err.code]}: ${err.details}` });
        });
      }),
    close: () => client.close(),
  };
}

function splitHostPort(target: string): [string, number] {
  const at = target.lastIndexOf(':');
  return [target.slice(0, at), Number(target.slice(at + 1))];
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      transport: { type: 'string' },
      target: { type: 'string' },
      pool: { type: 'string' },
      seconds: { type: 'string', default: '10' },
      warmup: { type: 'string', default: '2' },
      concurrency: { type: 'string', default: '8' },
    },
  });
  if (!values.target || !values.pool || (values.transport !== 'http' && values.transport !== 'grpc')) {
    throw new Error('usage: load.ts --transport http|grpc --target HOST:PORT --pool FILE [--seconds N] [--warmup N] [--concurrency N]');
  }
  const pool = readPoolFile(values.pool);
  const concurrency = Number(values.concurrency);
  const sender = values.transport === 'http' ? httpSender(values.target, concurrency) : grpcSender(values.target);
  const report = (message: LoadMessage) => process.send?.(message);

  const result: LoadResult = { seconds: 0, ackedSpans: 0, refusals: 0, errors: 0, firstError: undefined };
  let measuring = false;
  let stopped = false;
  let next = 0;

  const worker = async () => {
    while (!stopped) {
      const outcome = await sender.send(pool[next++ % pool.length]!);
      // An answer that arrives after the window closed is not counted.
      if (outcome.kind === 'acked') {
        if (measuring) result.ackedSpans += SPANS_PER_REQUEST;
        continue;
      }
      if (measuring && outcome.kind === 'refused') result.refusals++;
      if (measuring && outcome.kind === 'error') {
        result.errors++;
        result.firstError ??= outcome.message;
      }
      await sleep(REFUSAL_BACKOFF_MS);
    }
  };
  const workers = Array.from({ length: concurrency }, worker);

  await sleep(Number(values.warmup) * 1000);
  measuring = true;
  const windowStart = performance.now();
  report({ type: 'window-start' });
  await sleep(Number(values.seconds) * 1000);
  measuring = false;
  result.seconds = (performance.now() - windowStart) / 1000;
  report({ type: 'window-end', result });

  stopped = true;
  await Promise.all(workers);
  sender.close();
  process.disconnect?.();
}

main().catch((err: unknown) => {
  process.stderr.write(`load: ${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
