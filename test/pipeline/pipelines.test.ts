// Whole pipelines in a real collector: pipelines that share a receiver each get the batch as it
// arrived, and a pipeline that would export credentials raw is said at start.
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { CredentialReader } from '../../src/agent/credentials.ts';
import { startCollector, type TestCollector } from '../helpers/collector.ts';
import { eventually } from '../helpers/wait.ts';
import { postJson } from '../receivers/otlp-helpers.ts';

const HMAC_KEY = 'k'.repeat(32);
const TOKEN = 'sk-live-shared-receiver-0123';
const request = {
  resourceSpans: [{ scopeSpans: [{ spans: [{ traceId: '5b8efff798038103d269b633813fc60c', spanId: 'eee19b7ec3c1b174', name: 'call', kind: 3, attributes: [{ key: 'http.request.header.authorization', value: { stringValue: `Bearer ${TOKEN}` } }] }] }] }],
};

let c: TestCollector | undefined;
afterEach(async () => {
  await c?.stop();
  c = undefined;
});

function yaml(dir: string, pipelines: string): string {
  return `
receivers:
  otlp: { protocols: { http: { endpoint: "127.0.0.1:0" } } }
processors:
  memory_limiter: { limit_mib: 4096 }
  normalize: { hmac_key: "${HMAC_KEY}" }
exporters:
  file/a: { path: "${dir}/a.jsonl" }
  file/b: { path: "${dir}/b.jsonl" }
service:
  data_dir: "${dir}"
  pipelines:
${pipelines}
`;
}

describe('pipelines', () => {
  it('that share a receiver each get the batch as it arrived: a credential is fingerprinted once in each, not twice', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'agentsec-pipelines-'));
    c = await startCollector(yaml(dir, `
    traces/a: { receivers: [otlp], processors: [memory_limiter, normalize], exporters: [file/a] }
    traces/b: { receivers: [otlp], processors: [memory_limiter, normalize], exporters: [file/b] }`));
    expect((await postJson(c.httpUrl.slice('http://'.length), request)).status).toBe(200);
    const fingerprint = new CredentialReader(Buffer.from(HMAC_KEY)).fingerprint(TOKEN);
    for (const file of ['a.jsonl', 'b.jsonl']) {
      const text = await eventually(file, async () => readFileSync(join(dir, file), 'utf8'), (t) => t.includes('"traceId"'));
      expect(text, file).not.toContain(TOKEN);
      expect(text, file).toContain(`"stringValue":"${fingerprint}"`);
      expect(text, file).toContain('"agentsec.credential.scheme","value":{"stringValue":"bearer"}');
    }
  });

  it('without normalize are said at start: their credentials leave raw', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'agentsec-pipelines-'));
    c = await startCollector(yaml(dir, `
    traces/raw: { receivers: [otlp], processors: [memory_limiter], exporters: [file/a] }
    traces/safe: { receivers: [otlp], processors: [memory_limiter, normalize], exporters: [file/b] }`));
    const warnings = c.logs.filter((l) => l.msg === 'pipeline has no normalize processor: credential attributes leave it raw, not fingerprinted');
    expect(warnings.map((l) => l.pipeline)).toEqual(['traces/raw']);
    expect(warnings[0]!.level).toBe(40);
  });
});
