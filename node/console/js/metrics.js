// Prometheus text format, as far as the console reads `/metrics`: samples with labels.

/** `[{name, labels, value}]` of every sample line. */
export function parseMetrics(text) {
  const out = [];
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const m = /^([a-zA-Z_:][\w:]*)(\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const labels = {};
    if (m[3]) {
      const re = /([a-zA-Z_]\w*)="((?:[^"\\]|\\.)*)"/g;
      let l;
      while ((l = re.exec(m[3]))) labels[l[1]] = l[2].replace(/\\n/g, "\n").replace(/\\(.)/g, "$1");
    }
    out.push({ name: m[1], labels, value: Number(m[4]) });
  }
  return out;
}

/** The value of an unlabelled metric (0 when absent). */
export function metricValue(samples, name) {
  return samples.find((s) => s.name === name && Object.keys(s.labels).length === 0)?.value ?? 0;
}
