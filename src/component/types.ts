// The component contract, after the OpenTelemetry Collector's component.Component:
// start returns quickly (background work owns an AbortController that shutdown aborts);
// shutdown is idempotent, safe without start, stops accepting, flushes to `next`, and
// gives up when its signal aborts.
import type { z } from 'zod';
import type { Logger } from 'pino';
import type { MetricsRegistry } from '../telemetry/metrics.ts';
import type { TraceBatch } from '../otlp/types.ts';

export interface Component {
  start(host: Host): Promise<void>;
  shutdown(signal: AbortSignal): Promise<void>;
  /** SIGHUP: re-read the files it depends on (a policy…); keeps what it had when they are broken. */
  reload?(): Promise<void>;
}

/** What the running service offers components at start. */
export interface Host {
  readonly logger: Logger;
  readonly metrics: MetricsRegistry;
  /** True once every receiver listens and every exporter has started, until shutdown begins. */
  isReady(): boolean;
  /** Routes other components publish on the admin server under /api/ (see admin extension). */
  readonly api: ApiRegistry;
}

export interface ApiRoute {
  method: 'GET' | 'POST';
  /** Path below /api, with :params, e.g. /traces/:traceId/graph */
  path: string;
  handler(req: { params: Record<string, string>; query: Record<string, string | undefined>; body: unknown }): unknown | Promise<unknown>;
}

export interface ApiRegistry {
  add(route: ApiRoute): void;
  list(): readonly ApiRoute[];
}

export interface ConsumeContext {
  /** The receiver id that accepted the data, e.g. otlp. */
  readonly receiver: string;
  readonly transport: 'grpc' | 'http' | 'file' | 'internal';
}

export interface TracesConsumer {
  /** True when consume() changes the batch; fan-out then hands it a copy (collector MutatesData). */
  readonly mutatesData: boolean;
  /**
   * Resolves once the batch is accepted downstream. Rejects with PermanentError (drop,
   * never retry) or anything else (retryable). After the call the batch belongs to the callee.
   */
  consume(batch: TraceBatch, ctx: ConsumeContext): Promise<void>;
  /**
   * Why a batch offered now would be refused (a retryable error), or undefined when it would be
   * taken. Receivers ask before they decode a request, so that an overloaded pipeline does not
   * decode and judge data it is about to refuse. A processor answers for itself and what follows
   * it (one that holds batches, only for itself).
   */
  refusal?(): Error | undefined;
}

export interface Receiver extends Component {
  /** Where each protocol listens once started, e.g. { grpc: '127.0.0.1:4317' }. */
  endpoints(): Record<string, string>;
}
export interface Processor extends Component, TracesConsumer {}
export interface Exporter extends Component, TracesConsumer {}
export type Extension = Component;

export interface Settings {
  /** Component id as written in the config: type[/name]. */
  readonly id: string;
  readonly logger: Logger;
  readonly metrics: MetricsRegistry;
  /** Directory for state the collector keeps (keys, stores), from service.data_dir. */
  readonly dataDir: string;
}

export type Stability = 'development' | 'alpha' | 'beta' | 'stable';

interface FactoryBase<K extends string, S extends z.ZodType> {
  readonly kind: K;
  readonly type: string;
  readonly stability: Stability;
  /** Validates and fills defaults: defaults live in the schema. */
  readonly config: S;
}

export interface ReceiverFactory<S extends z.ZodType = z.ZodType> extends FactoryBase<'receiver', S> {
  create(set: Settings, cfg: z.output<S>, next: TracesConsumer): Receiver;
}
export interface ProcessorFactory<S extends z.ZodType = z.ZodType> extends FactoryBase<'processor', S> {
  /** Processor types that must come earlier in the same pipeline (what this one reads from them). */
  readonly after?: readonly string[];
  /** Why, with this config, it does not give what the processors naming its type in `after` read (undefined: it does). */
  readonly lacks?: (cfg: z.output<S>) => string | undefined;
  create(set: Settings, cfg: z.output<S>, next: TracesConsumer): Processor;
}
export interface ExporterFactory<S extends z.ZodType = z.ZodType> extends FactoryBase<'exporter', S> {
  create(set: Settings, cfg: z.output<S>): Exporter;
}
export interface ExtensionFactory<S extends z.ZodType = z.ZodType> extends FactoryBase<'extension', S> {
  create(set: Settings, cfg: z.output<S>): Extension;
}

export type AnyFactory = ReceiverFactory | ProcessorFactory | ExporterFactory | ExtensionFactory;
export type ComponentKind = AnyFactory['kind'];

/**
 * Waits for `work` (begun here), calling `giveUp` once if `signal` has aborted or aborts before it
 * ends: how a shutdown turns its deadline into cutting connections or abandoning retries.
 */
export async function untilDoneOrAborted<T>(signal: AbortSignal, giveUp: () => void, work: () => Promise<T>): Promise<T> {
  const done = work();
  if (signal.aborted) giveUp();
  else signal.addEventListener('abort', giveUp, { once: true });
  try {
    return await done;
  } finally {
    signal.removeEventListener('abort', giveUp);
  }
}
