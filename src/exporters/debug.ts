// debug: one pino line per batch summarising what passed (spans, resources, services),
// for the embedded default and for troubleshooting. Never logs attribute values.
import { z } from 'zod';
import type { ExporterFactory } from '../component/types.ts';
import type { TraceBatch } from '../otlp/types.ts';
import { toHex } from '../otlp/ids.ts';
import { FieldReader, WIRE_LEN } from '../otlp/wire.ts';
import { createExporter, IN_REQUEST_PATH } from '../pipeline/exporter-helper.ts';

export const DebugExporterConfig = z.strictObject({
  /** Log level of the summary line. */
  level: z.enum(['info', 'debug']).default('info'),
});

const MAX_SERVICES_LISTED = 5;

export function summarize(batch: TraceBatch): { spans: number; resource_spans: number; traces: number; services: string[] } {
  const services = new Set<string>();
  const traces = new Set<string>();
  let resources = 0;
  const bytes = batch.protobuf;
  if (bytes) {
    // Read from the bytes: decoding the batch to count it would cost more than sending it.
    const request = new FieldReader(bytes);
    const part = new FieldReader(bytes);
    const inner = new FieldReader(bytes);
    while (request.next()) {
      if (request.field !== 1 || request.wire !== WIRE_LEN) continue;
      resources++;
      part.reset(bytes, request.start, request.stop);
      while (part.next()) {
        if (part.wire !== WIRE_LEN) continue;
        if (part.field === 1 && services.size < MAX_SERVICES_LISTED) {
          const name = serviceName(bytes, part.start, part.stop);
          if (name) services.add(name);
        } else if (part.field === 2) {
          inner.reset(bytes, part.start, part.stop);
          while (inner.next()) if (inner.field === 2 && inner.wire === WIRE_LEN) traces.add(traceIdOf(bytes, inner.start, inner.stop));
        }
      }
    }
  } else {
    for (const rs of batch.resourceSpans) {
      resources++;
      const name = rs.resource?.attributes?.find((a) => a.key === 'service.name')?.value?.stringValue;
      if (name && services.size < MAX_SERVICES_LISTED) services.add(name);
      for (const ss of rs.scopeSpans) for (const s of ss.spans) traces.add(toHex(s.traceId));
    }
  }
  return { spans: batch.spanCount, resource_spans: resources, traces: traces.size, services: [...services] };
}

const SERVICE_NAME = Buffer.from('service.name');

/** The service.name string of a Resource message's attributes, if any. */
function serviceName(bytes: Buffer, start: number, end: number): string | undefined {
  const attrs = new FieldReader(bytes, start, end);
  const kv = new FieldReader(bytes);
  const value = new FieldReader(bytes);
  while (attrs.next()) {
    if (attrs.field !== 1 || attrs.wire !== WIRE_LEN) continue;
    kv.reset(bytes, attrs.start, attrs.stop);
    let isName = false;
    let text: string | undefined;
    while (kv.next()) {
      if (kv.wire !== WIRE_LEN) continue;
      if (kv.field === 1) isName = kv.stop - kv.start === SERVICE_NAME.length && bytes.compare(SERVICE_NAME, 0, SERVICE_NAME.length, kv.start, kv.stop) === 0;
      else if (kv.field === 2) {
        value.reset(bytes, kv.start, kv.stop);
        while (value.next()) if (value.field === 1 && value.wire === WIRE_LEN) text = bytes.toString('utf8', value.start, value.stop);
      }
    }
    if (isName && text) return text;
  }
  return undefined;
}

const spanReader = new FieldReader(Buffer.alloc(0));

function traceIdOf(bytes: Buffer, start: number, end: number): string {
  const span = spanReader.reset(bytes, start, end);
  while (span.next()) if (span.field === 1 && span.wire === WIRE_LEN) return bytes.toString('hex', span.start, span.stop);
  return '';
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
