// TracesSink: a TracesConsumer that records what reaches it (the collector's consumertest.TracesSink),
// and can be told to fail, to test how errors travel back to clients.
import type { ConsumeContext, TracesConsumer } from '../../src/component/types.ts';
import type { Span, TraceBatch } from '../../src/otlp/types.ts';

export class TracesSink implements TracesConsumer {
  readonly mutatesData = false;
  batches: TraceBatch[] = [];
  contexts: ConsumeContext[] = [];
  /** When set, consume() rejects with it instead of recording. */
  failWith: unknown = undefined;
  /** When set, refusal() answers it: receivers refuse before decoding. */
  refuseWith: Error | undefined = undefined;

  refusal(): Error | undefined {
    return this.refuseWith;
  }

  async consume(batch: TraceBatch, ctx: ConsumeContext): Promise<void> {
    if (this.failWith !== undefined) throw this.failWith;
    this.batches.push(batch);
    this.contexts.push(ctx);
  }

  spanCount(): number {
    return this.batches.reduce((n, b) => n + b.spanCount, 0);
  }

  spans(): Span[] {
    return this.batches.flatMap((b) => b.resourceSpans.flatMap((rs) => rs.scopeSpans.flatMap((ss) => ss.spans)));
  }

  reset(): void {
    this.refuseWith = undefined;
    this.batches = [];
    this.contexts = [];
  }
}
