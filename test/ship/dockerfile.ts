// A Dockerfile reader for the ship tests (there is no Docker engine here): instructions with
// their line continuations joined and comments dropped, stages, and the facts a container
// runs with — ENV, WORKDIR, USER, EXPOSE, VOLUME, HEALTHCHECK, ENTRYPOINT and CMD in exec or
// shell form — as Docker's own parser reads them (for what this project's Dockerfile uses).

export interface Instruction {
  /** Upper-case keyword: FROM, RUN, COPY, ENV, … */
  keyword: string;
  /** Everything after the keyword, continuations joined. */
  args: string;
  /** Leading --name=value flags (FROM --platform, COPY --from, HEALTHCHECK --interval, …). */
  flags: Record<string, string>;
  /** args without the flags. */
  rest: string;
  /** 1-based line where the instruction starts. */
  line: number;
}

export interface Stage {
  /** The `AS` name, if any. */
  name: string | undefined;
  /** The base image or stage. */
  from: string;
  instructions: Instruction[];
}

export interface HealthCheck {
  flags: Record<string, string>;
  /** The command, as argv (shell form becomes /bin/sh -c). */
  argv: string[];
}

export function parseDockerfile(text: string): Stage[] {
  const instructions: Instruction[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const first = lines[i]!;
    if (/^\s*(#|$)/.test(first)) continue;
    const start = i + 1;
    let joined = first;
    // A trailing backslash continues the instruction; comment lines inside it are skipped.
    while (/\\\s*$/.test(joined) && i + 1 < lines.length) {
      joined = joined.replace(/\\\s*$/, ' ');
      i++;
      if (/^\s*#/.test(lines[i]!)) {
        joined += '\\';
        continue;
      }
      joined += lines[i]!;
    }
    const m = /^\s*([A-Za-z]+)\s*(.*)$/s.exec(joined);
    if (!m) throw new Error(`Dockerfile line ${start}: not an instruction: ${first}`);
    const args = m[2]!.trim();
    const flags: Record<string, string> = {};
    let rest = args;
    for (let f = /^--([a-z-]+)=(\S+)\s*/.exec(rest); f; f = /^--([a-z-]+)=(\S+)\s*/.exec(rest)) {
      flags[f[1]!] = f[2]!;
      rest = rest.slice(f[0].length);
    }
    instructions.push({ keyword: m[1]!.toUpperCase(), args, flags, rest, line: start });
  }
  const stages: Stage[] = [];
  for (const ins of instructions) {
    if (ins.keyword === 'FROM') {
      const [from, as, name] = ins.rest.split(/\s+/);
      stages.push({ from: from!, name: as?.toUpperCase() === 'AS' ? name : undefined, instructions: [] });
    } else if (stages.length > 0) {
      stages.at(-1)!.instructions.push(ins);
    } else if (ins.keyword !== 'ARG') {
      throw new Error(`Dockerfile line ${ins.line}: ${ins.keyword} before FROM`);
    }
  }
  if (stages.length === 0) throw new Error('Dockerfile: no FROM');
  return stages;
}

/** Splits shell-like words: double and single quotes, backslash escapes. */
export function shellWords(s: string): string[] {
  const out: string[] = [];
  let cur = '';
  let inWord = false;
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    if (/\s/.test(c)) {
      if (inWord) out.push(cur);
      cur = '';
      inWord = false;
      continue;
    }
    inWord = true;
    if (c === '\\' && i + 1 < s.length) cur += s[++i];
    else if (c === '"') {
      for (i++; i < s.length && s[i] !== '"'; i++) cur += s[i] === '\\' && i + 1 < s.length ? s[++i] : s[i];
    } else if (c === "'") {
      for (i++; i < s.length && s[i] !== "'"; i++) cur += s[i];
    } else cur += c;
  }
  if (inWord) out.push(cur);
  return out;
}

/** ENTRYPOINT/CMD/RUN argument as argv: exec form (a JSON array) as is, shell form through /bin/sh -c. */
export function commandForm(rest: string): string[] {
  const t = rest.trim();
  if (t.startsWith('[')) {
    const argv = JSON.parse(t) as unknown;
    if (!Array.isArray(argv) || !argv.every((a) => typeof a === 'string')) throw new Error(`not an exec-form array: ${t}`);
    return argv;
  }
  return ['/bin/sh', '-c', t];
}

const all = (stage: Stage, keyword: string) => stage.instructions.filter((i) => i.keyword === keyword);
const last = (stage: Stage, keyword: string) => all(stage, keyword).at(-1);

/** The stage's ENV, in order (later values win). Only this stage: FROM <stage> inheritance is not followed. */
export function stageEnv(stage: Stage): Record<string, string> {
  const env: Record<string, string> = {};
  for (const ins of all(stage, 'ENV')) {
    const words = shellWords(ins.rest);
    if (words.length > 0 && !words[0]!.includes('=')) {
      // Legacy form: ENV KEY value with spaces
      env[words[0]!] = ins.rest.trim().slice(ins.rest.trim().indexOf(' ') + 1).trim();
      continue;
    }
    for (const w of words) {
      const at = w.indexOf('=');
      if (at <= 0) throw new Error(`Dockerfile line ${ins.line}: bad ENV word ${w}`);
      env[w.slice(0, at)] = w.slice(at + 1);
    }
  }
  return env;
}

export function stageWorkdir(stage: Stage): string {
  let dir = '/';
  for (const ins of all(stage, 'WORKDIR')) dir = ins.rest.startsWith('/') ? ins.rest : `${dir.replace(/\/$/, '')}/${ins.rest}`;
  return dir;
}

export function stageUser(stage: Stage): string {
  return last(stage, 'USER')?.rest ?? 'root';
}

export function stageEntrypoint(stage: Stage): string[] {
  const e = last(stage, 'ENTRYPOINT');
  return e ? commandForm(e.rest) : [];
}

export function stageCmd(stage: Stage): string[] {
  const c = last(stage, 'CMD');
  return c ? commandForm(c.rest) : [];
}

/** Exposed ports as numbers (`4317`, `4317/tcp`). */
export function stageExpose(stage: Stage): number[] {
  return all(stage, 'EXPOSE').flatMap((i) => i.rest.split(/\s+/).map((p) => Number(p.split('/')[0])));
}

export function stageVolumes(stage: Stage): string[] {
  return all(stage, 'VOLUME').flatMap((i) => (i.rest.trim().startsWith('[') ? (JSON.parse(i.rest) as string[]) : i.rest.split(/\s+/)));
}

export function stageHealthcheck(stage: Stage): HealthCheck | undefined {
  const h = last(stage, 'HEALTHCHECK');
  if (!h || /^NONE$/i.test(h.rest.trim())) return undefined;
  const m = /^CMD\s+(.*)$/is.exec(h.rest.trim());
  if (!m) throw new Error(`Dockerfile line ${h.line}: HEALTHCHECK without CMD`);
  return { flags: h.flags, argv: commandForm(m[1]!) };
}

/** COPY instructions: sources, destination and flags (--from, --chown). */
export function stageCopies(stage: Stage): { from: string | undefined; sources: string[]; dest: string; line: number }[] {
  return all(stage, 'COPY').map((i) => {
    const words = i.rest.trim().startsWith('[') ? (JSON.parse(i.rest) as string[]) : i.rest.split(/\s+/);
    return { from: i.flags.from, sources: words.slice(0, -1), dest: words.at(-1)!, line: i.line };
  });
}

export function stageRuns(stage: Stage): string[] {
  return all(stage, 'RUN').map((i) => i.rest);
}
