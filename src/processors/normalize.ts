// normalize: the canonical agent view of every span (DESIGN §3) from every instrumentation
// dialect, and credentials replaced by their keyed fingerprint in place, so that nothing
// after this processor (exporters, logs, APIs) ever holds a raw secret; what was read of each
// credential (scheme, JWT claims: never the token) travels with it as agentsec.credential.*
// attributes. Put it right after memory_limiter.
//
// mode: redact is the credential pass alone (a sidecar's: no view, nothing after it reads one).
// trust_forwarded_claims: a gateway behind sidecars keeps their fingerprints and rebuilds each
// credential's claims from the attributes they wrote; off (the default), those attributes are
// removed and fingerprint-shaped values are fingerprinted like any other value.
import { z } from 'zod';
import type { ConsumeContext, Processor, ProcessorFactory, Settings, TracesConsumer } from '../component/types.ts';
import type { Span, TraceBatch } from '../otlp/types.ts';
import { CredentialKeys, CredentialReader, DEFAULT_CREDENTIAL_ATTRIBUTES, loadHmacKey } from '../agent/credentials.ts';
import { normalizeSpan, redactSpan, replaceCredentials, type NormalizeOptions, type SpanView } from '../agent/view.ts';
import { StringPool } from '../agent/values.ts';
import { spanViews } from '../agent/annotations.ts';

export const NormalizeConfig = z.strictObject({
  /** Attributes whose values are credentials: fingerprinted, read as JWT, replaced before export. */
  credential_attributes: z.array(z.string().min(1)).default(DEFAULT_CREDENTIAL_ATTRIBUTES),
  /** HMAC key for fingerprints (≥ 32 bytes); when empty, one is generated and kept in service.data_dir. */
  hmac_key: z.string().optional(),
  /** Agent name → role, when several agents share a role (else the agent name is the role). */
  roles: z.record(z.string(), z.string()).default({}),
  /** full: the agent view for the processors after it; redact: the credential pass only (a sidecar). */
  mode: z.enum(['full', 'redact']).default('full'),
  /**
   * Keep credential values that are already fingerprints and honour the agentsec.credential.*
   * attributes bound to them: only where every sender is a sidecar (they can be forged).
   */
  trust_forwarded_claims: z.boolean().default(false),
});
export type NormalizeConfig = z.output<typeof NormalizeConfig>;

export class Normalize implements Processor {
  readonly mutatesData = true;
  readonly #next: TracesConsumer;
  readonly #opts: NormalizeOptions;
  readonly #roles: ReadonlyMap<string, string>;
  readonly #redact: boolean;

  constructor(set: Settings, cfg: NormalizeConfig, next: TracesConsumer) {
    this.#next = next;
    const key = loadHmacKey(cfg.hmac_key || undefined, set.dataDir);
    this.#opts = {
      pool: new StringPool(),
      credentialAttributes: new CredentialKeys(cfg.credential_attributes),
      credentials: new CredentialReader(key),
      trustForwarded: cfg.trust_forwarded_claims,
      edits: 0,
    };
    this.#roles = new Map(Object.entries(cfg.roles));
    this.#redact = cfg.mode === 'redact';
  }

  async start(): Promise<void> {}
  async shutdown(): Promise<void> {}

  refusal(): Error | undefined {
    return this.#next.refusal?.();
  }

  consume(batch: TraceBatch, ctx: ConsumeContext): Promise<void> {
    if (this.#redact) this.redact(batch);
    else spanViews.set(batch, this.normalize(batch));
    return this.#next.consume(batch, ctx);
  }

  /** mode: redact — credentials replaced and described, no view. */
  redact(batch: TraceBatch): void {
    this.#eachSpan(batch, (span) => void redactSpan(span, this.#opts));
  }

  normalize(batch: TraceBatch): SpanView[] {
    const views: SpanView[] = new Array(batch.spanCount);
    let i = 0;
    this.#eachSpan(batch, (span) => {
      const v = normalizeSpan(span, this.#opts);
      if (this.#roles.size > 0 && v.agent) v.agent = this.#roles.get(v.agent) ?? v.agent;
      views[i++] = v;
    });
    views.length = i;
    return views;
  }

  /**
   * Every span of the batch in order, after the credentials of its resource and scope are
   * replaced (both modes). What a pass changes is noted in the batch's source: its bytes no
   * longer describe it.
   */
  #eachSpan(batch: TraceBatch, onSpan: (span: Span) => void): void {
    const opts = this.#opts;
    const source = batch.source;
    let edits = opts.edits!;
    const changed = (part: object): void => {
      if (opts.edits === edits) return;
      edits = opts.edits!;
      if (source) (source.rewritten ??= new Set()).add(part);
    };
    for (const rs of batch.resourceSpans) {
      if (rs.resource) {
        replaceCredentials(rs.resource.attributes, opts);
        changed(rs.resource);
      }
      for (const ss of rs.scopeSpans) {
        if (ss.scope) {
          replaceCredentials(ss.scope.attributes, opts);
          changed(ss.scope);
        }
        for (const span of ss.spans) {
          onSpan(span);
          changed(span);
        }
      }
    }
  }
}

export const normalizeFactory: ProcessorFactory<typeof NormalizeConfig> = {
  kind: 'processor',
  type: 'normalize',
  stability: 'alpha',
  config: NormalizeConfig,
  lacks: (cfg) => (cfg.mode === 'redact' ? 'it has mode: redact (the credential pass only, no agent view)' : undefined),
  create: (set, cfg, next) => new Normalize(set, cfg, next),
};
