// The Prometheus text exposition format, version 0.0.4 (the format every Prometheus server
// scrapes; https://prometheus.io/docs/instrumenting/exposition_formats/):
//
//   # HELP mptun_path_bytes_out_total Bytes (IP packets) sent on the path.
//   # TYPE mptun_path_bytes_out_total counter
//   mptun_path_bytes_out_total{path="0",iface="eth0"} 123456
//
// A pure formatter: families in, text out. The appliance builds the families only when a
// scrape asks for them (src/appliance/metrics.ts).

/** Label names to values, in the order they are written. */
export type Labels = Readonly<Record<string, string>>;

export interface MetricSample {
  labels?: Labels;
  value: number;
}

export type MetricType = 'counter' | 'gauge' | 'untyped';

/** A metric family: one name, its HELP and TYPE, and its samples (one per label set). */
export interface MetricFamily {
  name: string;
  help: string;
  type: MetricType;
  samples: MetricSample[];
}

/** The Content-Type of the format. */
export const EXPOSITION_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

/** "Metric names may contain ASCII letters and digits, as well as underscores and colons. It must match the regex [a-zA-Z_:][a-zA-Z0-9_:]*." */
const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
/** "Label names may contain ASCII letters, numbers, as well as underscores. They must match the regex [a-zA-Z_][a-zA-Z0-9_]*"; "__" is reserved. */
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/** A metric or label name that the format cannot carry (a bug of the caller, not of the data). */
export class ExpositionError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ExpositionError';
  }
}

/** HELP text: "backslash and line feed characters have to be escaped via \\ and \n". */
export function escapeHelp(s: string): string {
  return s.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

/** A label value: "backslash (\), double-quote ("), and line feed (\n) characters have to be escaped as \\, \", and \n". */
export function escapeLabelValue(s: string): string {
  return s.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

/** A sample value: "a float represented as required by Go's ParseFloat() function ... Nan, +Inf, and -Inf are valid values". */
export function formatValue(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  return String(v);
}

function formatLabels(labels: Labels | undefined): string {
  if (!labels) return '';
  const parts: string[] = [];
  for (const [name, value] of Object.entries(labels)) {
    if (!LABEL_NAME.test(name) || name.startsWith('__')) throw new ExpositionError(`label name ${JSON.stringify(name)} is not valid in the exposition format`);
    parts.push(`${name}="${escapeLabelValue(value)}"`);
  }
  return parts.length > 0 ? `{${parts.join(',')}}` : '';
}

/**
 * The text of `families`: for each, its HELP and TYPE lines, then its samples, each family
 * once and its samples together; families without samples are left out. Ends with a newline.
 */
export function formatExposition(families: readonly MetricFamily[]): string {
  const lines: string[] = [];
  const seen = new Set<string>();
  for (const f of families) {
    if (!METRIC_NAME.test(f.name)) throw new ExpositionError(`metric name ${JSON.stringify(f.name)} is not valid in the exposition format`);
    if (seen.has(f.name)) throw new ExpositionError(`metric ${f.name} is given twice: a family's samples go together`);
    seen.add(f.name);
    if (f.samples.length === 0) continue;
    lines.push(`# HELP ${f.name} ${escapeHelp(f.help)}`);
    lines.push(`# TYPE ${f.name} ${f.type}`);
    for (const s of f.samples) lines.push(`${f.name}${formatLabels(s.labels)} ${formatValue(s.value)}`);
  }
  return lines.length > 0 ? `${lines.join('\n')}\n` : '';
}

/**
 * Collects samples into families by name, in the order names first appear, so that samples
 * of one family given in several places (a counter of the host side and of the subflow side)
 * are written together under one HELP and TYPE.
 */
export class FamilyBuilder {
  private readonly families = new Map<string, MetricFamily>();
  private readonly series = new Set<string>();

  /** A sample of family `name`; the family's HELP and TYPE are those of its first sample. A series given twice is refused. */
  add(name: string, type: MetricType, help: string, value: number, labels?: Labels): void {
    let f = this.families.get(name);
    if (!f) {
      f = { name, help, type, samples: [] };
      this.families.set(name, f);
    } else if (f.type !== type) {
      throw new ExpositionError(`metric ${name} is both a ${f.type} and a ${type}`);
    }
    const series = `${name}${formatLabels(labels)}`;
    if (this.series.has(series)) throw new ExpositionError(`series ${series} is given twice`);
    this.series.add(series);
    f.samples.push(labels ? { labels, value } : { value });
  }

  build(): MetricFamily[] {
    return [...this.families.values()];
  }
}
