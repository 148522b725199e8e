// normalize: the canonical agent view of every span (DESIGN §3) from every instrumentation
// dialect, and credentials replaced by their keyed fingerprint in place, so that nothing
// after this processor (exporters, logs, APIs) ever holds a raw secret. Put it right after
// memory_limiter.
import { z } from 'zod';
import type { ConsumeContext, Processor, ProcessorFactory, Settings, TracesConsumer } from '../component/types.ts';
import type { TraceBatch } from '../otlp/types.ts';
import { CredentialReader, DEFAULT_CREDENTIAL_ATTRIBUTES, loadHmacKey } from '../agent/credentials.ts';
import { normalizeSpan, type NormalizeOptions, type SpanView } from '../agent/view.ts';
import { StringPool } from '../agent/values.ts';
import { spanViews } from '../agent/annotations.ts';

export const NormalizeConfig = z.strictObject({
  /** Attributes whose values are credentials: fingerprinted, read as JWT, replaced before export. */
  credential_attributes: z.array(z.string().min(1)).default(DEFAULT_CREDENTIAL_ATTRIBUTES),
  /** HMAC key for fingerprints (≥ 32 bytes); when empty, one is generated and kept in service.data_dir. */
  hmac_key: z.string().optional(),
  /** Agent name → role, when several agents share a role (else the agent name is the role). */
  roles: z.record(z.string(), z.string()).default({}),
});
export type NormalizeConfig = z.output<typeof NormalizeConfig>;

export class Normalize implements Processor {
  readonly mutatesData = true;
  readonly #next: TracesConsumer;
  readonly #opts: NormalizeOptions;
  readonly #roles: ReadonlyMap<string, string>;

  constructor(set: Settings, cfg: NormalizeConfig, next: TracesConsumer) {
    this.#next = next;
    const key = loadHmacKey(cfg.hmac_key || undefined, set.dataDir);
    this.#opts = {
      pool: new StringPool(),
      credentialAttributes: new Set(cfg.credential_attributes),
      credentials: new CredentialReader(key),
    };
    this.#roles = new Map(Object.entries(cfg.roles));
  }

  async start(): Promise<void> {}
  async shutdown(): Promise<void> {}

  consume(batch: TraceBatch, ctx: ConsumeContext): Promise<void> {
    spanViews.set(batch, this.normalize(batch));
    return this.#next.consume(batch, ctx);
  }

  normalize(batch: TraceBatch): SpanView[] {
    const views: SpanView[] = new Array(batch.spanCount);
    let i = 0;
    for (const rs of batch.resourceSpans) {
      for (const ss of rs.scopeSpans) {
        for (const span of ss.spans) {
          const v = normalizeSpan(span, this.#opts);
          if (this.#roles.size > 0 && v.agent) v.agent = this.#roles.get(v.agent) ?? v.agent;
          views[i++] = v;
        }
      }
    }
    views.length = i;
    return views;
  }
}

export const normalizeFactory: ProcessorFactory<typeof NormalizeConfig> = {
  kind: 'processor',
  type: 'normalize',
  stability: 'alpha',
  config: NormalizeConfig,
  create: (set, cfg, next) => new Normalize(set, cfg, next),
};
