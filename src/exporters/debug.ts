// debug: one pino line per batch summarising what passed (spans, resources, services),
// for the embedded default and for troubleshooting. Never logs attribute values.
import { z } from 'zod';
import type { ExporterFactory } from '../component/types.ts';
import type { TraceBatch } from '../otlp/types.ts';
import { toHex } from '../otlp/ids.ts';
import { createExporter, IN_REQUEST_PATH } from '../pipeline/exporter-helper.ts';

export const DebugExporterConfig = z.strictObject({
  /** Log level of the summary line. */
  level: z.enum(['info', 'debug']).default('info'),
});

const MAX_SERVICES_LISTED = 5;

export function summarize(batch: TraceBatch): { spans: number; resource_spans: number; traces: number; services: string[] } {
  const services = new Set<string>();
  const traces = new Set<string>();
  for (const rs of batch.resourceSpans) {
    const name = rs.resource?.attributes?.find((a) => a.key === 'service.name')?.value?.stringValue;
    if (name && services.size < MAX_SERVICES_LISTED) services.add(name);
    for (const ss of rs.scopeSpans) for (const s of ss.spans) traces.add(toHex(s.traceId));
  }
  return { spans: batch.spanCount, resource_spans: batch.resourceSpans.length, traces: traces.size, services: [...services] };
}

export const debugExporterFactory: ExporterFactory<typeof DebugExporterConfig> = {
  kind: 'exporter',
  type: 'debug',
  stability: 'beta',
  config: DebugExporterConfig,
  create: (set, cfg) =>
    createExporter(set, IN_REQUEST_PATH, async (batch) => {
      set.logger[cfg.level](summarize(batch), 'traces');
    }),
};
