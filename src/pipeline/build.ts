// Builds the component graph from a resolved config and starts and stops it in the
// collector's order (service/internal/graph): per pipeline, receivers → processors (in
// order) → fan-out → exporters. Components are created from the end backwards so each
// one's `next` exists; started exporters first and receivers last; shut down receivers
// first so every component drains into a consumer that is still running.
import type { Component, Exporter, Extension, Host, Processor, Receiver, Settings, TracesConsumer } from '../component/types.ts';
import { type Registry, typeOf } from '../component/registry.ts';
import type { ResolvedConfig } from '../config/schema.ts';
import type { Logger } from '../telemetry/logger.ts';
import type { MetricsRegistry } from '../telemetry/metrics.ts';
import { errorMessage } from '../errors.ts';
import { fanout } from './fanout.ts';

export interface BuiltComponent<T extends Component = Component> {
  /** Where it sits in the config, e.g. exporters::otlp/jaeger, or processors::batch (pipeline traces). */
  readonly label: string;
  readonly id: string;
  readonly component: T;
}

export interface Graph {
  readonly extensions: BuiltComponent<Extension>[];
  readonly receivers: BuiltComponent<Receiver>[];
  /** All processors of all pipelines, each pipeline's in config order. */
  readonly processors: BuiltComponent<Processor>[];
  readonly exporters: BuiltComponent<Exporter>[];
}

export interface BuildContext {
  registry: Registry;
  logger: Logger;
  metrics: MetricsRegistry;
}

/** The entry of a pipeline whose processors change batches, though its first one does not. */
function mutatingEntry(first: TracesConsumer): TracesConsumer {
  return { mutatesData: true, consume: (batch, ctx) => first.consume(batch, ctx), refusal: () => first.refusal?.() };
}

export function buildGraph(cfg: ResolvedConfig, ctx: BuildContext): Graph {
  const settings = (id: string): Settings => ({
    id,
    logger: ctx.logger.child({ component: id }),
    metrics: ctx.metrics,
    dataDir: cfg.service.data_dir,
  });
  const pipelines = Object.entries(cfg.service.pipelines);

  const exporters = new Map<string, BuiltComponent<Exporter>>();
  for (const [, p] of pipelines) {
    for (const id of p.exporters) {
      if (exporters.has(id)) continue;
      const factory = ctx.registry.get('exporter', typeOf(id))!;
      exporters.set(id, { label: `exporters::${id}`, id, component: factory.create(settings(id), cfg.components.exporter.get(id)) });
    }
  }

  const processors: BuiltComponent<Processor>[] = [];
  const pipelineEntry = new Map<string, TracesConsumer>();
  for (const [name, p] of pipelines) {
    let next: TracesConsumer = fanout(p.exporters.map((id) => exporters.get(id)!.component));
    const built: BuiltComponent<Processor>[] = [];
    // Each pipeline has its own processor instances (as in the collector), created last to first.
    for (const id of [...p.processors].reverse()) {
      const factory = ctx.registry.get('processor', typeOf(id))!;
      const processor = factory.create(settings(id), cfg.components.processor.get(id), next);
      built.unshift({ label: `processors::${id} (pipeline ${name})`, id, component: processor });
      next = processor;
    }
    processors.push(...built);
    // A receiver shared by pipelines copies the batch for each pipeline that changes it: that is
    // any whose processors do, whatever its first one does (the collector's pipeline capabilities).
    const mutates = built.some((b) => b.component.mutatesData);
    pipelineEntry.set(name, mutates && !next.mutatesData ? mutatingEntry(next) : next);
  }

  const receivers: BuiltComponent<Receiver>[] = [];
  const receiverIds = [...new Set(pipelines.flatMap(([, p]) => p.receivers))];
  for (const id of receiverIds) {
    const targets = pipelines.filter(([, p]) => p.receivers.includes(id)).map(([name]) => pipelineEntry.get(name)!);
    const factory = ctx.registry.get('receiver', typeOf(id))!;
    receivers.push({ label: `receivers::${id}`, id, component: factory.create(settings(id), cfg.components.receiver.get(id), fanout(targets)) });
  }

  const extensions: BuiltComponent<Extension>[] = cfg.service.extensions.map((id) => {
    const factory = ctx.registry.get('extension', typeOf(id))!;
    return { label: `extensions::${id}`, id, component: factory.create(settings(id), cfg.components.extension.get(id)) };
  });

  return { extensions, receivers, processors, exporters: [...exporters.values()] };
}

/** Start order: extensions, exporters, processors (last to first), receivers. */
export function startOrder(g: Graph): BuiltComponent[] {
  return [...g.extensions, ...g.exporters, ...[...g.processors].reverse(), ...g.receivers];
}

/** Shutdown order: receivers, processors (first to last), exporters, extensions. */
export function shutdownOrder(g: Graph): BuiltComponent[] {
  return [...g.receivers, ...g.processors, ...g.exporters, ...g.extensions];
}

export class StartError extends Error {
  override readonly name = 'StartError';
  readonly label: string;
  constructor(label: string, cause: unknown) {
    super(`${label}: failed to start: ${errorMessage(cause)}`, { cause });
    this.label = label;
  }
}

/** Starts in order; on the first failure shuts down what did start and throws StartError. */
export async function startAll(order: BuiltComponent[], host: Host, signal: AbortSignal): Promise<void> {
  const started: BuiltComponent[] = [];
  for (const c of order) {
    try {
      await c.component.start(host);
      started.push(c);
    } catch (err) {
      await shutdownAll(started.reverse(), signal, host.logger);
      throw new StartError(c.label, err);
    }
  }
}

/** Shuts down in order, past failures, and reports each one. */
export async function shutdownAll(order: BuiltComponent[], signal: AbortSignal, logger: Logger): Promise<Error[]> {
  const errors: Error[] = [];
  for (const c of order) {
    try {
      await c.component.shutdown(signal);
    } catch (err) {
      logger.error({ component: c.id, err: errorMessage(err) }, 'component failed to shut down cleanly');
      errors.push(new Error(`${c.label}: ${errorMessage(err)}`, { cause: err }));
    }
  }
  return errors;
}
