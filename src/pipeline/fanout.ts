// Hands one batch to several consumers (the collector's fanoutconsumer). A consumer that
// mutates gets its own copy, except the last mutating one when no read-only consumer
// shares the original. The result waits for all: any retryable failure makes the whole
// call retryable (the client resends; consumers that had accepted see a duplicate, which
// OTLP tolerates); only when every failure is permanent is the error permanent.
import type { ConsumeContext, TracesConsumer } from '../component/types.ts';
import { isPermanent } from '../errors.ts';
import type { TraceBatch } from '../otlp/types.ts';
import { copyBatch } from '../otlp/encoded-batch.ts';

export function fanout(consumers: readonly TracesConsumer[]): TracesConsumer {
  if (consumers.length === 1) return consumers[0]!;
  const lastMutating = consumers.findLastIndex((c) => c.mutatesData);
  const anyReadOnly = consumers.some((c) => !c.mutatesData);
  const needsCopy = consumers.map((c, i) => c.mutatesData && (anyReadOnly || i !== lastMutating));
  return {
    mutatesData: false,
    // Only when every consumer would refuse: one that would take the batch still gets it, as
    // consume() gives it to every consumer that takes it.
    refusal() {
      let first: Error | undefined;
      for (const c of consumers) {
        const refused = c.refusal?.();
        if (!refused) return undefined;
        first ??= refused;
      }
      return first;
    },
    async consume(batch: TraceBatch, ctx: ConsumeContext): Promise<void> {
      const results = await Promise.allSettled(consumers.map((c, i) => c.consume(needsCopy[i] ? copyBatch(batch) : batch, ctx)));
      const failures = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected').map((r) => r.reason as unknown);
      if (failures.length === 0) return;
      throw failures.find((e) => !isPermanent(e)) ?? failures[0];
    },
  };
}
