// webhook: one finding per POST, as JSON (the native record or OCSF Detection Finding), through
// the sink queue. A finding that is upgraded is posted again with the same id: receivers that
// keep one record per finding key on `id` (native) or `finding_info.uid` (OCSF).
import type { z } from 'zod';
import { toOcsf, type Finding } from '../finding.ts';
import type { WebhookSinkConfig } from '../sinks.ts';
import { httpFailure, httpPoster, type HttpPoster } from '../../exporters/http-client.ts';
import { loadSinkTls } from './http.ts';
import { PRODUCT_VERSION, QueuedSink, type SinkContext, USER_AGENT, MAX_ANSWER_BYTES } from './queue.ts';

export function webhookSink(name: string, cfg: z.output<typeof WebhookSinkConfig>, ctx: SinkContext): QueuedSink<string, string> {
  let poster: HttpPoster | undefined;
  return new QueuedSink<string, string>(
    ctx,
    { name, maxQueue: cfg.max_queue, maxBatch: 1, retry: cfg.retry, timeout: cfg.timeout },
    {
      async start() {
        const url = new URL(cfg.url);
        const tls = url.protocol === 'https:' ? await loadSinkTls(name, cfg.tls) : undefined;
        poster = httpPoster(url, { headers: cfg.headers, contentType: 'application/json', tls, userAgent: USER_AGENT, maxAnswerBytes: MAX_ANSWER_BYTES });
      },
      // Serialized at deliver time: the JSON is the snapshot.
      encode: (f: Finding) => JSON.stringify(cfg.format === 'ocsf' ? toOcsf(f, PRODUCT_VERSION) : f),
      request: (bodies) => bodies[0]!,
      async send(body, signal) {
        const answer = await poster!.post(body, signal);
        const failure = httpFailure(answer);
        if (failure) throw failure;
      },
      close: () => poster?.close(),
    },
  );
}
