// agentsec analyze as users run it: OTLP/JSON files (one request per file or per line, Jaeger
// api/v3 and Tempo wrappers), stdin, enriched spans out, clear errors.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { decodeTraceJson } from '../../src/otlp/decode.ts';
import { plainSpans } from '../helpers/plain-spans.ts';

const CLI = join(import.meta.dirname, '../../src/cli.ts');
const dir = mkdtempSync(join(tmpdir(), 'agentsec-analyze-'));
const TRACE = '5b8efff798038103d269b633813fc60c';

const spans = [
  { traceId: TRACE, spanId: '00000000000000a1', name: 'invoke_agent lead', startTimeUnixNano: '1000', endTimeUnixNano: '9000', attributes: [{ key: 'gen_ai.agent.name', value: { stringValue: 'lead' } }] },
  { traceId: TRACE, spanId: '00000000000000a2', parentSpanId: '00000000000000a1', name: 'invoke_agent helper', startTimeUnixNano: '2000', endTimeUnixNano: '8000', attributes: [{ key: 'gen_ai.agent.name', value: { stringValue: 'helper' } }] },
  { traceId: TRACE, spanId: '00000000000000a3', parentSpanId: '00000000000000a2', name: 'execute_tool x', startTimeUnixNano: '3000', endTimeUnixNano: '4000', attributes: [{ key: 'gen_ai.tool.name', value: { stringValue: 'x' } }, { key: 'agentsec.credential', value: { stringValue: 'Bearer analyze-secret-value' } }] },
];
const request = (s: unknown[]) => ({ resourceSpans: [{ resource: { attributes: [{ key: 'service.name', value: { stringValue: 'svc' } }] }, scopeSpans: [{ spans: s }] }] });

function run(args: string[], input?: string) {
  const r = spawnSync(process.execPath, [CLI, 'analyze', ...args], { input, encoding: 'utf8', cwd: dir });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function enriched(file: string) {
  const lines = readFileSync(file, 'utf8').trim().split('\n');
  return new Map(plainSpans(lines.map((l) => decodeTraceJson(l).batch)).map((s) => [s.spanId, s.attributes]));
}

describe('agentsec analyze', () => {
  it('reads a pretty-printed request, a JSON Lines file split child-first, and Jaeger/Tempo wrappers, and writes enriched spans', () => {
    const pretty = join(dir, 'pretty.json');
    writeFileSync(pretty, JSON.stringify(request(spans), null, 2));
    const lines = join(dir, 'lines.jsonl');
    writeFileSync(lines, [spans[2], spans[0], spans[1]].map((s) => JSON.stringify(request([s]))).join('\n') + '\n');
    const jaeger = join(dir, 'jaeger.json');
    writeFileSync(jaeger, JSON.stringify({ result: request(spans) }));
    const tempo = join(dir, 'tempo.json');
    writeFileSync(tempo, JSON.stringify({ batches: request(spans).resourceSpans }));

    for (const input of [pretty, lines, jaeger, tempo]) {
      const out = join(dir, `out-${Math.random()}.jsonl`);
      const r = run([input, '--out-spans', out]);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toBe(''); // findings only (none before detection ships)
      expect(r.stderr).toMatch(/3 spans in 1 traces \(2 agent roles\)/);
      const attrs = enriched(out);
      expect(attrs.get('00000000000000a3')).toMatchObject({ 'agentsec.agent.role': 'helper', 'agentsec.chain.depth': { int: '1' }, 'agentsec.chain.path': 'lead>helper' });
      expect(readFileSync(out, 'utf8')).not.toContain('analyze-secret-value');
    }
  });

  it('reads stdin with -, and reports rejected spans without stopping', () => {
    const bad = { ...spans[0], spanId: 'not-hex' };
    const r = run(['-'], JSON.stringify(request([bad, spans[1]])) + '\n');
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/rejected .*spans\[0\]\.spanId: must be 16 hex digits/);
    expect(r.stderr).toMatch(/1 spans in 1 traces .* 1 spans rejected/);
  });

  it('prints native findings on stdout, under the given policy', () => {
    const input = join(dir, 'deep.json');
    writeFileSync(input, JSON.stringify(request(spans)));
    const policy = join(dir, 'policy.yaml');
    writeFileSync(policy, 'roles:\n  helper: { max_depth: 0 }\n');
    const r = run([input, '--policy', policy]);
    expect(r.code, r.stderr).toBe(0);
    const findings = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as { kind: string; traceId: string; chain: { role: string }[] });
    expect(findings).toEqual([expect.objectContaining({ kind: 'excessive_depth', traceId: TRACE })]);
    expect(findings[0]!.chain.map((h) => h.role)).toEqual(['lead', 'helper']);
    expect(r.stderr).toMatch(/; 1 findings/);
    writeFileSync(policy, 'roles:\n  helper: { max_depth: -1 }\n');
    expect(run([input, '--policy', policy])).toMatchObject({ code: 3, stderr: expect.stringMatching(/policy::roles::helper::max_depth/) });
  });

  it('fails clearly on a missing file, on Jaeger UI JSON, and without files', () => {
    expect(run([join(dir, 'nope.json')])).toMatchObject({ code: 1, stderr: expect.stringMatching(/cannot read .*nope.json/) });
    const ui = join(dir, 'ui.json');
    writeFileSync(ui, JSON.stringify({ data: [{ traceID: 'x', spans: [] }] }));
    expect(run([ui]).stderr).toMatch(/Jaeger's UI JSON, not OTLP/);
    expect(run([]).code).toBe(2);
  });
});
