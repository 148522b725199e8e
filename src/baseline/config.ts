// detect.baselines: what the collector learns per role, where it keeps it, and when a departure
// from it is a finding (reference/detection.md §8–9 for the numbers behind the defaults).
import { z } from 'zod';
import { duration } from '../config/units.ts';

export const RedisStoreConfig = z.strictObject({
  /** redis://[user:password@]host:port[/db]; rediss:// for TLS. */
  url: z.string().regex(/^rediss?:\/\//, 'must be a redis:// or rediss:// URL').default('redis://127.0.0.1:6379'),
  /** Every key starts with it; the {hash tag} keeps them in one Redis Cluster slot. */
  key_prefix: z.string().min(1).default('agentsec:{baseline}:'),
  connect_timeout: duration.prefault('5s'),
});

export const BaselinesConfig = z.strictObject({
  /** sqlite: a file in service.data_dir (one process); redis: shared by replicas; memory: forgotten on exit. */
  storage: z.enum(['sqlite', 'redis', 'memory']).default('sqlite'),
  /** The SQLite file; relative paths are under service.data_dir. */
  sqlite_path: z.string().min(1).default('baselines.db'),
  redis: RedisStoreConfig.prefault({}),
  learning: z
    .strictObject({
      /** A role alerts once this much time has passed since it was first seen… */
      period: duration.prefault('48h'),
      /** …and it made at least this many calls. */
      min_observations: z.number().int().nonnegative().default(200),
    })
    .prefault({}),
  /** Volume is judged per window of the spans' own time. */
  window: duration.prefault('5m'),
  /** A window is judged once the spans' time is this far past its end (late spans still count). */
  lateness: duration.prefault('1m'),
  /** A call whose ancestors have not all arrived is learnt from after this much of the trace's time, when its agent is named (as policy_violation judges). */
  settle_after: duration.prefault('30s'),
  /** How often local observations are written to the store (and, for redis, the merged state read back). */
  sync_interval: duration.prefault('5s'),
  volume: z
    .strictObject({
      /** Robust z: a window is high when above median + threshold × max(1.4826·MAD, relative_floor·median, floor). */
      threshold: z.number().positive().default(3),
      relative_floor: z.number().nonnegative().default(0.5),
      /** Consecutive high windows before a finding (one-off blips never fire). */
      persistence: z.number().int().positive().default(3),
      /** A window counts only with at least this many calls (per-minute rate, error rate)… */
      min_calls: z.number().int().nonnegative().default(20),
      /** …or invocations (per-invocation features). */
      min_invocations: z.number().int().nonnegative().default(3),
      /** Past windows needed to judge one. */
      min_history: z.number().int().positive().default(12),
      /** How far back windows are kept and compared. */
      history: duration.prefault('7d'),
    })
    .prefault({}),
  endpoints: z
    .strictObject({
      /** A path position with more distinct children than this is collapsed: any child there is known. */
      collapse_after: z.number().int().positive().default(100),
      /** Paths under these are never collapsed: each new one is new. */
      protected_prefixes: z.array(z.string().startsWith('/')).default(['/admin', '/internal', '/.well-known', '/oauth', '/auth', '/token', '/secrets', '/keys', '/users/me']),
    })
    .prefault({}),
  /** What the generated policy allows: entries seen at least this often, in at least this many conversations (others go to review). */
  generate: z
    .strictObject({
      min_observations: z.number().int().positive().default(3),
      min_conversations: z.number().int().positive().default(2),
    })
    .prefault({}),
});
export type BaselinesConfig = z.output<typeof BaselinesConfig>;
