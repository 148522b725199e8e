// Every component the collector knows, in one place (otelcol components.go).
import { Registry } from './component/registry.ts';
import { otlpReceiverFactory } from './receivers/otlp/index.ts';
import { memoryLimiterFactory } from './processors/memory-limiter.ts';
import { normalizeFactory } from './processors/normalize.ts';
import { traceGraphFactory } from './processors/tracegraph.ts';
import { enrichFactory } from './processors/enrich.ts';
import { detectFactory } from './processors/detect.ts';
import { otlpExporterFactory } from './exporters/otlp.ts';
import { fileExporterFactory } from './exporters/file.ts';
import { debugExporterFactory } from './exporters/debug.ts';
import { adminExtensionFactory } from './admin/server.ts';

export function components(): Registry {
  return new Registry([
    otlpReceiverFactory,
    memoryLimiterFactory,
    normalizeFactory,
    traceGraphFactory,
    detectFactory,
    enrichFactory,
    otlpExporterFactory,
    fileExporterFactory,
    debugExporterFactory,
    adminExtensionFactory,
  ]);
}
