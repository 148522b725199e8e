// Component Settings for tests: a silent (or capturing) logger and a fresh metrics registry.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import type { Host, Settings } from '../../src/component/types.ts';
import { MetricsRegistry } from '../../src/telemetry/metrics.ts';

export interface TestSettings extends Settings {
  /** Every log line written, parsed. */
  readonly logs: Record<string, unknown>[];
}

export function testSettings(id: string, metrics = new MetricsRegistry()): TestSettings {
  const logs: Record<string, unknown>[] = [];
  const dest = new Writable({
    write(chunk, _enc, cb) {
      for (const line of String(chunk).split('\n')) if (line) logs.push(JSON.parse(line) as Record<string, unknown>);
      cb();
    },
  });
  const logger = pino({ level: 'debug' }, dest).child({ component: id });
  return { id, logger, metrics, dataDir: mkdtempSync(join(tmpdir(), 'agentsec-test-')), logs };
}

export function testHost(set: Settings): Host {
  const routes: Parameters<Host['api']['add']>[0][] = [];
  return {
    logger: set.logger,
    metrics: set.metrics,
    isReady: () => true,
    api: { add: (r) => void routes.push(r), list: () => routes },
  };
}
