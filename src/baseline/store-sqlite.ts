// The embedded default: one SQLite file in the data directory (node:sqlite, no native addon).
// A flush is one transaction of upserts that add counts and take min/max, so a crash loses at
// most the last sync interval, never a half-written profile.
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { DatabaseSync, type StatementSync } from 'node:sqlite';
import type { BaselineStore } from './store.ts';
import { emptyData, itemKey, splitItemKey, splitWindowKey, unionConvs, windowKey, type BaselineData, type Dimension } from './profile.ts';

const SCHEMA = `
CREATE TABLE IF NOT EXISTS roles (
  role TEXT PRIMARY KEY, first INTEGER NOT NULL, last INTEGER NOT NULL,
  calls INTEGER NOT NULL, invocations INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS items (
  role TEXT NOT NULL, dim TEXT NOT NULL, value TEXT NOT NULL,
  count INTEGER NOT NULL, first INTEGER NOT NULL, last INTEGER NOT NULL, convs TEXT NOT NULL,
  PRIMARY KEY (role, dim, value));
CREATE TABLE IF NOT EXISTS windows (
  role TEXT NOT NULL, idx INTEGER NOT NULL,
  calls INTEGER NOT NULL, invocations INTEGER NOT NULL, errors INTEGER NOT NULL, tokens INTEGER NOT NULL,
  delegations INTEGER NOT NULL, depth_sum INTEGER NOT NULL, depth_max INTEGER NOT NULL,
  PRIMARY KEY (role, idx));
CREATE TABLE IF NOT EXISTS claims (key TEXT PRIMARY KEY, until INTEGER NOT NULL);
`;

export class SqliteStore implements BaselineStore {
  readonly kind = 'sqlite';
  readonly shared = false;
  readonly path: string;
  #db: DatabaseSync | undefined;
  #upsertRole!: StatementSync;
  #upsertItem!: StatementSync;
  #upsertWindow!: StatementSync;

  constructor(path: string) {
    this.path = path;
  }

  get where(): string {
    return this.path;
  }

  async open(): Promise<void> {
    mkdirSync(dirname(this.path), { recursive: true });
    // Another process (`policy generate`, `analyze`) may hold the lock for a moment: wait for it.
    const db = new DatabaseSync(this.path, { timeout: 5000 });
    db.exec('PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;');
    db.exec(SCHEMA);
    db.function('union_convs', { deterministic: true }, (a, b) => unionCsv(String(a), String(b)));
    this.#upsertRole = db.prepare(`INSERT INTO roles VALUES (?, ?, ?, ?, ?) ON CONFLICT (role) DO UPDATE SET
      first = min(first, excluded.first), last = max(last, excluded.last),
      calls = calls + excluded.calls, invocations = invocations + excluded.invocations`);
    this.#upsertItem = db.prepare(`INSERT INTO items VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (role, dim, value) DO UPDATE SET
      count = count + excluded.count, first = min(first, excluded.first), last = max(last, excluded.last),
      convs = union_convs(convs, excluded.convs)`);
    this.#upsertWindow = db.prepare(`INSERT INTO windows VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (role, idx) DO UPDATE SET
      calls = calls + excluded.calls, invocations = invocations + excluded.invocations, errors = errors + excluded.errors,
      tokens = tokens + excluded.tokens, delegations = delegations + excluded.delegations,
      depth_sum = depth_sum + excluded.depth_sum, depth_max = max(depth_max, excluded.depth_max)`);
    this.#db = db;
  }

  #open(): DatabaseSync {
    if (!this.#db) throw new Error(`baseline store ${this.path} is not open`);
    return this.#db;
  }

  async load(fromWindow: number, toWindow = Number.MAX_SAFE_INTEGER): Promise<BaselineData> {
    const db = this.#open();
    const out = emptyData();
    for (const r of db.prepare('SELECT role, first, last, calls, invocations FROM roles').all() as Record<string, number & string>[]) {
      out.roles.set(r.role, { first: Number(r.first), last: Number(r.last), calls: Number(r.calls), invocations: Number(r.invocations) });
    }
    for (const r of db.prepare('SELECT role, dim, value, count, first, last, convs FROM items').all() as Record<string, string>[]) {
      out.items.set(itemKey(r.role!, r.dim as Dimension, r.value!), { count: Number(r.count), first: Number(r.first), last: Number(r.last), convs: r.convs ? r.convs.split(',') : [] });
    }
    for (const r of db.prepare('SELECT * FROM windows WHERE idx >= ? AND idx <= ?').all(fromWindow, toWindow) as Record<string, string | number>[]) {
      out.windows.set(windowKey(String(r.role), Number(r.idx)), {
        calls: Number(r.calls), invocations: Number(r.invocations), errors: Number(r.errors), tokens: Number(r.tokens),
        delegations: Number(r.delegations), depthSum: Number(r.depth_sum), depthMax: Number(r.depth_max),
      });
    }
    return out;
  }

  async flush(delta: BaselineData): Promise<void> {
    const db = this.#open();
    db.exec('BEGIN');
    try {
      for (const [role, t] of delta.roles) this.#upsertRole.run(role, t.first, t.last, t.calls, t.invocations);
      for (const [key, it] of delta.items) {
        const { role, dim, value } = splitItemKey(key);
        this.#upsertItem.run(role, dim, value, it.count, it.first, it.last, it.convs.join(','));
      }
      for (const [key, w] of delta.windows) {
        const { role, index } = splitWindowKey(key);
        this.#upsertWindow.run(role, index, w.calls, w.invocations, w.errors, w.tokens, w.delegations, w.depthSum, w.depthMax);
      }
      db.exec('COMMIT');
    } catch (err) {
      db.exec('ROLLBACK');
      throw err;
    }
  }

  async claim(key: string, ttlMs: number): Promise<boolean> {
    const db = this.#open();
    const now = Date.now();
    const r = db.prepare('INSERT INTO claims VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET until = excluded.until WHERE until <= ?').run(key, now + ttlMs, now);
    return Number(r.changes) > 0;
  }

  async prune(beforeWindow: number): Promise<void> {
    const db = this.#open();
    db.prepare('DELETE FROM windows WHERE idx < ?').run(beforeWindow);
    db.prepare('DELETE FROM claims WHERE until <= ?').run(Date.now());
  }

  async close(): Promise<void> {
    this.#db?.close();
    this.#db = undefined;
  }
}

function unionCsv(a: string, b: string): string {
  if (!b) return a;
  if (!a) return b;
  const out = a.split(',');
  unionConvs(out, b.split(','));
  return out.join(',');
}
