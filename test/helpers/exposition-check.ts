// A strict reader of the Prometheus text format 0.0.4, for tests: every line is a HELP or TYPE
// comment or a sample `name{label="value",...} number`; every sample's family has its HELP and
// TYPE before it; a family's samples are together; no series twice. Gives the samples by series.

export interface ParsedExposition {
  /** Value by series: `name{a="x",b="y"}` as written (or the bare name). */
  samples: Map<string, number>;
  /** TYPE by family name. */
  types: Map<string, string>;
  help: Map<string, string>;
  /** What is wrong, one message a line at fault (empty: all good). */
  errors: string[];
}

const NAME = '[a-zA-Z_:][a-zA-Z0-9_:]*';
const LABEL = '[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\\\\n]|\\\\[\\\\"n])*"';
const SAMPLE = new RegExp(`^(${NAME})(\\{(?:${LABEL}(?:,${LABEL})*)?\\})? (-?[0-9]+(?:\\.[0-9]+)?(?:e[+-]?[0-9]+)?|NaN|[+-]Inf)$`);
const HELP = new RegExp(`^# HELP (${NAME}) (.*)$`);
const TYPE = new RegExp(`^# TYPE (${NAME}) (counter|gauge|histogram|summary|untyped)$`);

export function parseExposition(text: string): ParsedExposition {
  const out: ParsedExposition = { samples: new Map(), types: new Map(), help: new Map(), errors: [] };
  if (text !== '' && !text.endsWith('\n')) out.errors.push('the text does not end with a newline');
  const done = new Set<string>();
  let current: string | null = null;
  for (const [i, line] of text.split('\n').entries()) {
    if (line === '' && i === text.split('\n').length - 1) break;
    const at = `line ${i + 1} ${JSON.stringify(line)}`;
    let m = HELP.exec(line);
    if (m) {
      if (out.help.has(m[1]!)) out.errors.push(`${at}: a second HELP`);
      out.help.set(m[1]!, m[2]!);
      continue;
    }
    m = TYPE.exec(line);
    if (m) {
      if (out.types.has(m[1]!)) out.errors.push(`${at}: a second TYPE`);
      if (!out.help.has(m[1]!)) out.errors.push(`${at}: TYPE before HELP`);
      out.types.set(m[1]!, m[2]!);
      continue;
    }
    m = SAMPLE.exec(line);
    if (!m) {
      out.errors.push(`${at}: neither a HELP/TYPE comment nor \`name{labels} number\``);
      continue;
    }
    const name = m[1]!;
    if (!out.types.has(name) || !out.help.has(name)) out.errors.push(`${at}: no HELP and TYPE for ${name} before it`);
    if (name !== current) {
      if (done.has(name)) out.errors.push(`${at}: the samples of ${name} are not together`);
      if (current !== null) done.add(current);
      current = name;
    }
    if (out.types.get(name) === 'counter' && !name.endsWith('_total')) out.errors.push(`${at}: a counter whose name does not end in _total`);
    const series = `${name}${m[2] ?? ''}`;
    if (out.samples.has(series)) out.errors.push(`${at}: ${series} twice`);
    out.samples.set(series, Number(m[3] === '+Inf' ? Infinity : m[3] === '-Inf' ? -Infinity : m[3]));
  }
  return out;
}

/** The value of the one series of `name` whose labels include all of `labels`, or undefined. */
export function sampleValue(p: ParsedExposition, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const [series, value] of p.samples) {
    if (series !== name && !series.startsWith(`${name}{`)) continue;
    if (Object.entries(labels).every(([k, v]) => series.includes(`${k}="${v}"`))) return value;
  }
  return undefined;
}
