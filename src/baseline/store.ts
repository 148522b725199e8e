// Where baselines live. Every store merges deltas the same way (profile.ts), so the engine
// writes what it learnt since the last sync and, when other processes write too, reads the
// merged state back.
import { isAbsolute, join } from 'node:path';
import type { BaselinesConfig } from './config.ts';
import { emptyData, mergeData, splitWindowKey, type BaselineData } from './profile.ts';

export interface BaselineStore {
  /** sqlite, redis or memory (for logs and the API). */
  readonly kind: string;
  /** Where it keeps them (a path, a URL without its password). */
  readonly where: string;
  /** Other processes write to it too: the engine reads the merged state back after each flush. */
  readonly shared: boolean;
  open(): Promise<void>;
  /** Every role and item, and the windows from `fromWindow` up to `toWindow` (inclusive; no end when undefined). */
  load(fromWindow: number, toWindow?: number): Promise<BaselineData>;
  /** Merges a delta in (atomically: concurrent writers never lose each other's counts). */
  flush(delta: BaselineData): Promise<void>;
  /** True for the first caller of `key` within `ttlMs` (so replicas report a shared finding once). */
  claim(key: string, ttlMs: number): Promise<boolean>;
  /** Forgets windows before `beforeWindow`. */
  prune(beforeWindow: number): Promise<void>;
  close(): Promise<void>;
}

/** Kept in the process only: for tests, `analyze` and trying things out. */
export class MemoryStore implements BaselineStore {
  readonly kind = 'memory';
  readonly where = 'this process';
  readonly shared = false;
  readonly data = emptyData();
  readonly #claims = new Map<string, number>();

  async open(): Promise<void> {}

  async load(fromWindow: number, toWindow = Infinity): Promise<BaselineData> {
    const out = emptyData();
    mergeData(out, this.data);
    for (const k of out.windows.keys()) {
      const i = splitWindowKey(k).index;
      if (i < fromWindow || i > toWindow) out.windows.delete(k);
    }
    return out;
  }

  async flush(delta: BaselineData): Promise<void> {
    mergeData(this.data, delta);
  }

  async claim(key: string, ttlMs: number): Promise<boolean> {
    const now = Date.now();
    const until = this.#claims.get(key);
    if (until !== undefined && until > now) return false;
    this.#claims.set(key, now + ttlMs);
    return true;
  }

  async prune(beforeWindow: number): Promise<void> {
    for (const k of this.data.windows.keys()) if (splitWindowKey(k).index < beforeWindow) this.data.windows.delete(k);
  }

  async close(): Promise<void> {}
}

/** The store the config names (sqlite and redis are loaded only when used). */
export async function createStore(cfg: BaselinesConfig, dataDir: string): Promise<BaselineStore> {
  switch (cfg.storage) {
    case 'memory':
      return new MemoryStore();
    case 'sqlite': {
      const { SqliteStore } = await import('./store-sqlite.ts');
      return new SqliteStore(isAbsolute(cfg.sqlite_path) ? cfg.sqlite_path : join(dataDir, cfg.sqlite_path));
    }
    case 'redis': {
      const { RedisStore } = await import('./store-redis.ts');
      return new RedisStore(cfg.redis);
    }
  }
}
