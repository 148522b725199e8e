// The canonical agent view of a span (DESIGN §3): every instrumentation dialect resolved
// into one fixed-shape record in a single pass over the attributes. The view holds only what
// the span itself says; identity inherited down the tree is resolved by the trace graph.
import type { AnyValue, KeyValue, Resource, Span } from '../otlp/types.ts';
import { SpanKind, StatusCode } from '../otlp/types.ts';
import { numberOf, stringOf, StringPool, textOf } from './values.ts';
import { int64String } from '../otlp/encode.ts';
import { CREDENTIAL_ATTR_KEYS, credentialAttributes, FINGERPRINT_RE, forwardedCredential, type Credential, type CredentialReader } from './credentials.ts';

/** Where an agent's code runs: from resource attributes, shared by every span of a resource. */
export interface Workload {
  readonly key: string;
  readonly service: string;
  readonly pod: string;
  readonly namespace: string;
  readonly serviceAccount: string;
  readonly spiffeId: string;
}

export function workloadOf(resource: Resource | null | undefined, pool: StringPool): Workload {
  let service = '', pod = '', namespace = '', serviceAccount = '', spiffeId = '';
  for (const kv of resource?.attributes ?? []) {
    switch (kv.key) {
      case 'service.name': service = stringOf(kv.value) ?? ''; break;
      case 'k8s.pod.name': pod = stringOf(kv.value) ?? ''; break;
      case 'k8s.namespace.name': namespace = stringOf(kv.value) ?? ''; break;
      case 'k8s.serviceaccount.name': serviceAccount = stringOf(kv.value) ?? ''; break;
      case 'spiffe.id': case 'spiffe_id': case 'workload.spiffe.id': spiffeId = stringOf(kv.value) ?? ''; break;
    }
  }
  return {
    key: pool.intern(`${namespace}/${service}/${pod}/${serviceAccount}/${spiffeId}`),
    service: pool.intern(service), pod: pool.intern(pod), namespace: pool.intern(namespace),
    serviceAccount: pool.intern(serviceAccount), spiffeId: pool.intern(spiffeId),
  };
}

/** Canonical operations (gen_ai.operation.name values, plus what other dialects map to). */
export type Operation = 'invoke_agent' | 'chat' | 'execute_tool' | 'embeddings' | 'retrieval' | 'invoke_workflow' | 'handoff' | 'chain' | '';

export interface CredentialUse extends Credential {
  /** The attribute it was found in. */
  attribute: string;
}

export class SpanView {
  operation: Operation | string = '';
  /** The agent the span itself names (not inherited), by DESIGN §3's order. */
  agent = '';
  agentId = '';
  tool = '';
  toolArgs: string | undefined = undefined;
  toolResult: string | undefined = undefined;
  /** Primary target host (server.address, else the host of url.full). */
  host = '';
  url = '';
  method = '';
  path = '';
  db = '';
  mcpMethod = '';
  mcpResource = '';
  /** Hosts, URLs and e-mail addresses found in the tool arguments. */
  argTargets: string[] | undefined = undefined;
  provider = '';
  model = '';
  conversation = '';
  /** gen_ai.transfer.target.name, or the target of a handoff / transfer_to_* tool. */
  transferTo = '';
  /** return_to_caller (agent as tool) or pass_control (handoff). */
  transferMode = '';
  handoffFrom = '';
  graphNodeId = '';
  graphNodeParentId = '';
  /** An invoke_agent CLIENT span names the agent it calls (remote delegation). */
  remoteAgent = '';
  kind = 0;
  credential: CredentialUse | undefined = undefined;
  /** The span's status is ERROR. */
  error = false;
  /** Tokens used (input + output), when the span reports usage. */
  tokens = 0;
}

export interface NormalizeOptions {
  pool: StringPool;
  /** Attribute keys that carry credentials (a CredentialKeys); their values are replaced by the fingerprint in place. */
  credentialAttributes: { has(key: string): boolean };
  credentials: CredentialReader;
  /**
   * Trust what another agentsec's normalize (a sidecar) did: credential values already in
   * fingerprint form are kept as they are, and the agentsec.credential.* attributes bound to
   * them give their scheme and claims. Off: every value is a raw credential (fingerprinted,
   * fingerprint-shaped ones too) and agentsec.credential.* attributes that arrive are removed.
   */
  trustForwarded?: boolean;
  /** Counts the changes made to spans (a value replaced, attributes removed or added): a caller compares it before and after. */
  edits?: number;
}

function edited(opts: NormalizeOptions): void {
  opts.edits = (opts.edits ?? 0) + 1;
}

/** The scheme of a credential value that arrived as a fingerprint, when nothing trusted says more. */
export const FORWARDED_SCHEME = 'fingerprint';

const AI_SDK_OPERATIONS: Record<string, Operation> = {
  'ai.generateText': 'invoke_agent', 'ai.streamText': 'invoke_agent', 'ai.generateObject': 'invoke_agent', 'ai.streamObject': 'invoke_agent',
  'ai.generateText.doGenerate': 'chat', 'ai.streamText.doStream': 'chat', 'ai.generateObject.doGenerate': 'chat', 'ai.streamObject.doStream': 'chat',
  'ai.toolCall': 'execute_tool', 'ai.embed': 'embeddings', 'ai.embedMany': 'embeddings', 'ai.embed.doEmbed': 'embeddings', 'ai.embedMany.doEmbed': 'embeddings',
};
const OPENINFERENCE_OPERATIONS: Record<string, Operation> = {
  AGENT: 'invoke_agent', LLM: 'chat', TOOL: 'execute_tool', RETRIEVER: 'retrieval', EMBEDDING: 'embeddings', CHAIN: 'chain', RERANKER: 'retrieval',
};
const TRACELOOP_OPERATIONS: Record<string, Operation> = { agent: 'invoke_agent', tool: 'execute_tool', workflow: 'invoke_workflow', task: 'chain' };
const MASTRA_OPERATIONS: Record<string, Operation> = {
  agent_run: 'invoke_agent', tool_call: 'execute_tool', mcp_tool_call: 'execute_tool', client_tool_call: 'execute_tool', provider_tool_call: 'execute_tool',
  model_generation: 'chat', workflow_run: 'invoke_workflow',
};
/** gen_ai.operation.name values of older dialects (Mastra 0.x, Traceloop). */
const OPERATION_ALIASES: Record<string, Operation> = { 'agent.run': 'invoke_agent', 'tool.execute': 'execute_tool', 'model.step': 'chat', text_completion: 'chat', generate_content: 'chat' };

/** A URL's host, past any user:password@ (which is no destination, and may be a secret). */
const URL_RE = /\bhttps?:\/\/(?:[^\s/?#@"'<>\\]*@)?([A-Za-z0-9.-]+)(?::\d+)?[^\s"'<>\\]*/g;
/** The user:password@ of URLs, cut before looking for e-mail addresses (it would read as one). */
const URL_USERINFO_RE = /(\/\/)[^\s/?#@"'<>\\]*@/g;
const MAX_ARG_SCAN = 16 * 1024;

/**
 * Builds the view of one span, and replaces the raw value of every credential attribute by
 * its fingerprint in place (nothing downstream, exporters and logs included, sees the secret).
 */
export function normalizeSpan(span: Span, opts: NormalizeOptions): SpanView {
  const v = new SpanView();
  v.kind = span.kind ?? 0;
  const attrs = span.attributes;
  // Candidates by dialect, resolved by precedence after the pass.
  let genAiAgentName = '', genAiAgentId = '', aiMetadataAgent = '', aiFunctionId = '', oiAgentName = '';
  let oiKind = '', traceloopKind = '', traceloopEntity = '', mastraType = '', genAiOperation = '';
  let genAiTool = '', aiToolName = '', oiToolName = '';
  let genAiArgs: string | undefined, aiArgs: string | undefined, oiInput: string | undefined, tlInput: string | undefined, mastraInput: string | undefined;
  let genAiResult: string | undefined, aiResult: string | undefined, oiOutput: string | undefined, tlOutput: string | undefined, mastraOutput: string | undefined;
  let serverAddress = '', genAiProvider = '', genAiSystem = '', aiProvider = '', llmProvider = '';
  let genAiModel = '', aiModel = '', llmModel = '', dbSystem = '', dbOperation = '', dbCollection = '';
  let sessionId = '', tlSession = '';
  let inputTokens = 0, outputTokens = 0;
  let forwarded = false;

  if (attrs) {
    for (let i = 0; i < attrs.length; i++) {
      const kv = attrs[i]!;
      const val = kv.value;
      switch (kv.key) {
        case 'gen_ai.operation.name': genAiOperation = stringOf(val) ?? ''; break;
        case 'gen_ai.agent.name': genAiAgentName = stringOf(val) ?? ''; break;
        case 'gen_ai.agent.id': genAiAgentId = stringOf(val) ?? ''; break;
        case 'ai.telemetry.metadata.agent': aiMetadataAgent = stringOf(val) ?? ''; break;
        case 'ai.telemetry.functionId': aiFunctionId = stringOf(val) ?? ''; break;
        case 'agent.name': oiAgentName = stringOf(val) ?? ''; break;
        case 'graph.node.id': v.graphNodeId = stringOf(val) ?? ''; break;
        case 'graph.node.parent_id': v.graphNodeParentId = stringOf(val) ?? ''; break;
        case 'openinference.span.kind': oiKind = stringOf(val) ?? ''; break;
        case 'traceloop.span.kind': traceloopKind = stringOf(val) ?? ''; break;
        case 'traceloop.entity.name': traceloopEntity = stringOf(val) ?? ''; break;
        case 'mastra.span.type': mastraType = stringOf(val) ?? ''; break;
        case 'gen_ai.tool.name': genAiTool = stringOf(val) ?? ''; break;
        case 'ai.toolCall.name': aiToolName = stringOf(val) ?? ''; break;
        case 'tool.name': oiToolName = stringOf(val) ?? ''; break;
        case 'gen_ai.tool.call.arguments': genAiArgs = textOf(val); break;
        case 'ai.toolCall.args': aiArgs = textOf(val); break;
        case 'input.value': oiInput = textOf(val); break;
        case 'traceloop.entity.input': tlInput = textOf(val); break;
        case 'gen_ai.tool.input': mastraInput = textOf(val); break;
        case 'gen_ai.tool.call.result': genAiResult = textOf(val); break;
        case 'ai.toolCall.result': aiResult = textOf(val); break;
        case 'output.value': oiOutput = textOf(val); break;
        case 'traceloop.entity.output': tlOutput = textOf(val); break;
        case 'gen_ai.tool.output': mastraOutput = textOf(val); break;
        case 'gen_ai.transfer.target.name': v.transferTo = stringOf(val) ?? ''; break;
        case 'gen_ai.transfer.mode': v.transferMode = stringOf(val) ?? ''; break;
        case 'server.address': serverAddress = stringOf(val) ?? ''; break;
        case 'url.full': case 'http.url': v.url = stringOf(val) ?? ''; break;
        case 'http.request.method': case 'http.method': v.method = stringOf(val) ?? ''; break;
        case 'url.path': case 'http.target': v.path = stringOf(val) ?? ''; break;
        case 'db.system.name': case 'db.system': dbSystem = stringOf(val) ?? ''; break;
        case 'db.operation.name': case 'db.operation': dbOperation = stringOf(val) ?? ''; break;
        case 'db.collection.name': case 'db.sql.table': dbCollection = stringOf(val) ?? ''; break;
        case 'mcp.method.name': v.mcpMethod = stringOf(val) ?? ''; break;
        case 'mcp.resource.uri': v.mcpResource = stringOf(val) ?? ''; break;
        case 'mcp.server': if (!serverAddress) serverAddress = stringOf(val) ?? ''; break;
        case 'gen_ai.provider.name': genAiProvider = stringOf(val) ?? ''; break;
        case 'gen_ai.system': genAiSystem = stringOf(val) ?? ''; break;
        case 'ai.model.provider': aiProvider = stringOf(val) ?? ''; break;
        case 'llm.provider': case 'llm.system': if (!llmProvider) llmProvider = stringOf(val) ?? ''; break;
        case 'gen_ai.request.model': genAiModel = stringOf(val) ?? ''; break;
        case 'ai.model.id': aiModel = stringOf(val) ?? ''; break;
        case 'llm.model_name': llmModel = stringOf(val) ?? ''; break;
        case 'gen_ai.conversation.id': v.conversation = stringOf(val) ?? ''; break;
        case 'session.id': sessionId = stringOf(val) ?? ''; break;
        case 'traceloop.association.properties.session_id': tlSession = stringOf(val) ?? ''; break;
        // Usage, in every dialect's spelling (input and output counted once each).
        case 'gen_ai.usage.input_tokens': case 'gen_ai.usage.prompt_tokens': case 'ai.usage.promptTokens': case 'ai.usage.inputTokens': case 'llm.token_count.prompt':
          inputTokens = numberOf(val) ?? inputTokens; break;
        case 'gen_ai.usage.output_tokens': case 'gen_ai.usage.completion_tokens': case 'ai.usage.completionTokens': case 'ai.usage.outputTokens': case 'llm.token_count.completion':
          outputTokens = numberOf(val) ?? outputTokens; break;
      }
      if (opts.credentialAttributes.has(kv.key)) v.credential = takeCredential(kv, opts, v.credential);
      else if (CREDENTIAL_ATTR_KEYS.has(kv.key)) forwarded = true;
    }
    if (v.credential || forwarded) v.credential = settleCredential(span, v.credential, forwarded, opts);
  }

  // operation
  const name = span.name ?? '';
  v.operation = OPERATION_ALIASES[genAiOperation] ?? genAiOperation ?? '';
  if (!v.operation) {
    v.operation = AI_SDK_OPERATIONS[name] ?? OPENINFERENCE_OPERATIONS[oiKind] ?? TRACELOOP_OPERATIONS[traceloopKind] ?? MASTRA_OPERATIONS[mastraType] ?? '';
  }

  // tool (and handoffs, which some dialects record as tools)
  v.tool = genAiTool || aiToolName || (oiKind === 'TOOL' ? oiToolName : '') || (traceloopKind === 'tool' ? traceloopEntity : '') || (v.operation === 'execute_tool' ? oiToolName : '');
  if (v.tool.startsWith('handoff_to_') || v.tool.startsWith('transfer_to_')) {
    v.operation = 'handoff';
    v.transferMode ||= 'pass_control';
    v.transferTo ||= handoffTarget(oiOutput, 'to_agent') ?? v.tool.slice(v.tool.indexOf('_to_') + 4);
    v.handoffFrom = handoffTarget(oiInput, 'from_agent') ?? '';
  }
  if (v.tool) {
    v.toolArgs = genAiArgs ?? aiArgs ?? oiInput ?? tlInput ?? mastraInput;
    v.toolResult = genAiResult ?? aiResult ?? oiOutput ?? tlOutput ?? mastraOutput;
    if (v.toolArgs) v.argTargets = targetsIn(v.toolArgs, opts.pool);
  }

  // agent: gen_ai.agent.name › gen_ai.agent.id › ai.telemetry.metadata.agent › ai.telemetry.functionId
  // › OpenInference agent.name | graph.node.id | span name (AGENT spans) › traceloop.entity.name (agent spans)
  let agent = genAiAgentName || genAiAgentId || aiMetadataAgent || aiFunctionId;
  if (!agent && oiKind === 'AGENT') {
    // The OpenAI Agents bridge maps the SDK's trace (a workflow) to a root AGENT span with
    // neither agent.name nor graph.node.id: that root is a workflow, not an agent.
    agent = oiAgentName || v.graphNodeId || (span.parentSpanId && span.parentSpanId.length > 0 ? name : '');
  }
  if (!agent && traceloopKind === 'agent') agent = traceloopEntity;
  if (v.operation === 'invoke_agent' && v.kind === SpanKind.CLIENT && agent) {
    // A remote invoke_agent CLIENT span names the agent it calls: it belongs to the caller.
    v.remoteAgent = opts.pool.intern(agent);
    agent = '';
  }
  v.agent = opts.pool.intern(agent);
  v.agentId = opts.pool.intern(genAiAgentId || agent);

  v.tokens = inputTokens + outputTokens;
  v.error = span.status?.code === StatusCode.ERROR;

  // targets
  if (!serverAddress && v.url) serverAddress = hostOf(v.url) ?? '';
  if (!v.path && v.url) v.path = pathOf(v.url);
  v.host = opts.pool.intern(serverAddress.toLowerCase());
  if (dbSystem) v.db = opts.pool.intern([dbSystem, dbOperation, dbCollection].filter(Boolean).join(' '));
  v.provider = opts.pool.intern(normalizeProvider(genAiProvider || genAiSystem || aiProvider || llmProvider));
  v.model = opts.pool.intern(genAiModel || aiModel || llmModel);
  v.conversation ||= sessionId || tlSession;
  v.tool = opts.pool.intern(v.tool);
  v.transferTo = opts.pool.intern(v.transferTo);
  v.method = opts.pool.intern(v.method);
  v.path = opts.pool.intern(v.path);
  v.mcpMethod = opts.pool.intern(v.mcpMethod);
  replaceEventAndLinkCredentials(span, opts);
  return v;
}

/**
 * Replaces a credential attribute's values by their fingerprints (every one is replaced) and
 * returns the span's credential: `first`, else this one if the span presents it (a credential in
 * a response header, set-cookie, was issued to the caller, not presented by it).
 */
function takeCredential(kv: KeyValue, opts: NormalizeOptions, first: CredentialUse | undefined): CredentialUse | undefined {
  const read = readCredential(kv, opts);
  return first ?? (kv.key.startsWith('http.response.') ? undefined : read);
}

/**
 * Replaces configured credential attributes wherever else they appear (a resource's, a scope's,
 * a span event's or link's attributes) by their fingerprints, in place. They are not the span's
 * credential (nothing there presents it to a tool), but no raw value may leave.
 */
export function replaceCredentials(attrs: KeyValue[] | null | undefined, opts: NormalizeOptions): void {
  if (!attrs) return;
  for (let i = 0; i < attrs.length; i++) if (opts.credentialAttributes.has(attrs[i]!.key)) readCredential(attrs[i]!, opts);
}

function replaceEventAndLinkCredentials(span: Span, opts: NormalizeOptions): void {
  const events = span.events;
  if (events) for (let i = 0; i < events.length; i++) replaceCredentials(events[i]!.attributes, opts);
  const links = span.links;
  if (links) for (let i = 0; i < links.length; i++) replaceCredentials(links[i]!.attributes, opts);
}

/**
 * The credential pass alone (normalize's `mode: redact`, a sidecar's): every credential replaced
 * by its fingerprint in place and described by the agentsec.credential.* attributes, and no view.
 * Returns the span's credential (the first found), as normalizeSpan's view holds it.
 */
export function redactSpan(span: Span, opts: NormalizeOptions): CredentialUse | undefined {
  replaceEventAndLinkCredentials(span, opts);
  const attrs = span.attributes;
  if (!attrs) return undefined;
  let first: CredentialUse | undefined;
  let forwarded = false;
  for (let i = 0; i < attrs.length; i++) {
    const kv = attrs[i]!;
    if (opts.credentialAttributes.has(kv.key)) first = takeCredential(kv, opts, first);
    else if (CREDENTIAL_ATTR_KEYS.has(kv.key)) forwarded = true;
  }
  return first || forwarded ? settleCredential(span, first, forwarded, opts) : undefined;
}

/**
 * Replaces the credentials of one attribute by their fingerprints in place; returns the first.
 * Every text the value carries is a credential here, in whatever member it comes (see
 * credentialTexts), and the whole value is replaced, so that no raw value stays on the span.
 */
function readCredential(kv: KeyValue, opts: NormalizeOptions): CredentialUse | undefined {
  const value = kv.value;
  if (!value) return undefined;
  const raw = credentialTexts(value);
  if (raw.length === 0) return undefined;
  let replaced = false;
  const creds = raw.map((r): Credential => {
    // From a trusted sidecar: fingerprinted there, with the same key. Not fingerprinted again.
    if (opts.trustForwarded && r.length === 27 && FINGERPRINT_RE.test(r)) return { fingerprint: r, claims: undefined, scheme: FORWARDED_SCHEME };
    replaced = true;
    return opts.credentials.read(r);
  });
  // Replace in place: the secret never travels further than this function.
  if (replaced) edited(opts);
  if (replaced) kv.value = creds.length === 1 && !value.arrayValue ? { stringValue: creds[0]!.fingerprint } : { arrayValue: { values: creds.map((c) => ({ stringValue: c.fingerprint })) } };
  return { ...creds[0]!, attribute: kv.key };
}

/**
 * The texts of every scalar in a value: its string, bytes (as UTF-8), int or double, and those of
 * each item of its array or key-value list, at any depth (walked without recursion). Every member
 * counts: an AnyValue may arrive with several set, and an exporter writes one of them.
 */
function credentialTexts(value: AnyValue): string[] {
  const out: string[] = [];
  const stack: AnyValue[] = [value];
  while (stack.length > 0) {
    const v = stack.pop()!;
    if (v.stringValue) out.push(v.stringValue);
    if (v.bytesValue && v.bytesValue.length > 0 && Object.hasOwn(v, 'bytesValue')) out.push(Buffer.from(v.bytesValue).toString('utf8'));
    if (v.intValue != null && Object.hasOwn(v, 'intValue')) out.push(int64String(v.intValue));
    if (v.doubleValue != null && Object.hasOwn(v, 'doubleValue')) out.push(String(v.doubleValue));
    const items = v.arrayValue?.values;
    if (items) for (let i = items.length - 1; i >= 0; i--) stack.push(items[i]!);
    const entries = v.kvlistValue?.values;
    if (entries) for (let i = entries.length - 1; i >= 0; i--) if (entries[i]!.value) stack.push(entries[i]!.value!);
  }
  return out;
}

/**
 * After the pass over a span's attributes: the agentsec.credential.* attributes that describe
 * its credential, and that credential. Attributes that arrived (`forwarded`) are honoured when
 * trusted and bound to a fingerprint the span holds (the sidecar read the token; the claims are
 * its), else removed; a credential read here is described by attributes written here.
 */
function settleCredential(span: Span, first: CredentialUse | undefined, forwarded: boolean, opts: NormalizeOptions): CredentialUse | undefined {
  let attrs = span.attributes!;
  if (forwarded) {
    if (opts.trustForwarded && (first === undefined || first.scheme === FORWARDED_SCHEME)) {
      const from = forwardedCredential(attrs);
      if (from) return from;
    }
    span.attributes = attrs = attrs.filter((kv) => !CREDENTIAL_ATTR_KEYS.has(kv.key) || opts.credentialAttributes.has(kv.key));
    edited(opts);
  }
  if (first && first.scheme !== FORWARDED_SCHEME) {
    edited(opts);
    for (const kv of credentialAttributes(first, first.attribute)) attrs.push(kv);
  }
  return first;
}

function handoffTarget(json: string | undefined, key: string): string | undefined {
  if (!json || json[0] !== '{') return undefined;
  try {
    const o = JSON.parse(json) as Record<string, unknown>;
    const t = o[key];
    if (typeof t === 'string') return t;
    if (t && typeof t === 'object' && typeof (t as { name?: unknown }).name === 'string') return (t as { name: string }).name;
  } catch {
    // Not JSON: no target from it.
  }
  return undefined;
}

/** The path of a URL ('' when it has none or is not a URL). */
function pathOf(url: string): string {
  const m = /^[a-z][a-z0-9+.-]*:\/\/[^/?#]*(\/[^?#]*)?/i.exec(url);
  return m?.[1] ?? '';
}

export function hostOf(url: string): string | undefined {
  const m = /^[a-z][a-z0-9+.-]*:\/\/(?:[^@/?#]*@)?(\[[^\]]+\]|[^:/?#]+)/i.exec(url);
  return m ? m[1]!.toLowerCase() : undefined;
}

/** Hosts of URLs and e-mail addresses in tool arguments (the destinations a call names). */
function targetsIn(text: string, pool: StringPool): string[] | undefined {
  const scan = text.length > MAX_ARG_SCAN ? text.slice(0, MAX_ARG_SCAN) : text;
  // Each pattern only where its marker is: most arguments name URLs or addresses, not both.
  const urls = scan.includes('://');
  const emails = scan.includes('@');
  if (!urls && !emails) return undefined;
  const out = new Set<string>();
  if (urls) for (const m of scan.matchAll(URL_RE)) out.add(pool.intern(m[1]!.toLowerCase()));
  if (emails) emailsIn(urls ? scan.replace(URL_USERINFO_RE, '$1') : scan, (address) => out.add(pool.intern(address)));
  return out.size > 0 ? [...out] : undefined;
}

/**
 * E-mail addresses in text (lower-cased), found outwards from each '@': a local part of
 * [A-Za-z0-9._%+-], a domain of two or more labels ending in a TLD of letters. In one pass, since
 * text comes from whoever sends spans: a regular expression for this backtracks for seconds on a
 * long run of "a." after an '@'.
 */
function emailsIn(text: string, found: (address: string) => void): void {
  for (let at = text.indexOf('@'); at >= 0; ) {
    let start = at;
    while (start > 0 && isLocalChar(text.charCodeAt(start - 1))) start--;
    let end = at + 1;
    while (end < text.length && isDomainChar(text.charCodeAt(end))) end++;
    if (start < at) {
      const labels = text.slice(at + 1, end).split('.');
      // The longest run of labels that makes a domain: a trailing '.', '-' or digit is no TLD.
      while (labels.length >= 2 && !isTld(labels[labels.length - 1]!)) labels.pop();
      if (labels.length >= 2 && labels.every((l) => l.length > 0)) found(`${text.slice(start, at)}@${labels.join('.')}`.toLowerCase());
    }
    at = text.indexOf('@', end > at + 1 ? end : at + 1);
  }
}

function isLocalChar(c: number): boolean {
  return (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || (c >= 48 && c <= 57) || c === 46 || c === 95 || c === 37 || c === 43 || c === 45;
}

function isDomainChar(c: number): boolean {
  return (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || (c >= 48 && c <= 57) || c === 46 || c === 45;
}

function isTld(label: string): boolean {
  return label.length >= 2 && /^[A-Za-z]+$/.test(label);
}

/** openai.chat → openai, google.vertex → gcp.vertex_ai (the AI SDK's provider ids). */
function normalizeProvider(p: string): string {
  if (!p) return '';
  const base = p.split('.')[0]!.toLowerCase();
  if (base === 'google') return p.includes('vertex') ? 'gcp.vertex_ai' : 'gcp.gemini';
  if (base === 'azure') return 'azure.ai.openai';
  if (base === 'amazon-bedrock' || base === 'bedrock') return 'aws.bedrock';
  return base;
}

