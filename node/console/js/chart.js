// Line charts drawn as SVG by hand: time on x, values on y, one path per series, a legend
// and a text summary for screen readers. No library.

const NS = "http://www.w3.org/2000/svg";

function s(tag, attrs = {}, text) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  if (text !== undefined) el.textContent = text;
  return el;
}

/** A "nice" upper bound and step for ticks up to `max`. */
export function niceScale(max, ticks = 4) {
  if (!(max > 0)) return { top: 1, step: 0.25 };
  const raw = max / ticks;
  const mag = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 2.5, 5, 10].map((f) => f * mag).find((x) => x >= raw);
  return { top: step * Math.ceil(max / step), step };
}

function formatNumber(v) {
  if (Math.abs(v) >= 1e6) return (v / 1e6).toFixed(1).replace(/\.0$/, "") + "M";
  if (Math.abs(v) >= 1e3) return (v / 1e3).toFixed(1).replace(/\.0$/, "") + "k";
  return Number.isInteger(v) ? String(v) : v.toFixed(v < 10 ? 2 : 1);
}

function hhmm(ms) {
  const d = new Date(ms);
  return `${String(d.getHours()).padStart(2, "0")}:${String(d.getMinutes()).padStart(2, "0")}`;
}

/**
 * An SVG line chart. `series`: `[{name, cls, points: [[timeMs, value], ...]}]`; `title`
 * names it (the SVG's accessible name). Scales with its container (viewBox).
 */
export function lineChart({ title, series, width = 640, height = 220, from, to }) {
  const pad = { left: 48, right: 12, top: 12, bottom: 28 };
  const all = series.flatMap((x) => x.points);
  const t0 = from ?? Math.min(...all.map((p) => p[0]));
  const t1 = to ?? Math.max(...all.map((p) => p[0]));
  const span = Math.max(t1 - t0, 1);
  const { top, step } = niceScale(Math.max(0, ...all.map((p) => p[1])));
  const w = width - pad.left - pad.right;
  const hgt = height - pad.top - pad.bottom;
  const x = (t) => pad.left + ((t - t0) / span) * w;
  const y = (v) => pad.top + hgt - (v / top) * hgt;

  const svg = s("svg", { viewBox: `0 0 ${width} ${height}`, class: "chart", role: "img", "aria-label": title, preserveAspectRatio: "xMidYMid meet" });
  svg.append(s("title", {}, title));
  // Horizontal grid lines with their values.
  for (let v = 0; v <= top + step / 2; v += step) {
    svg.append(s("line", { x1: pad.left, x2: width - pad.right, y1: y(v), y2: y(v), class: "grid" }));
    svg.append(s("text", { x: pad.left - 6, y: y(v) + 4, "text-anchor": "end", class: "tick" }, formatNumber(v)));
  }
  // Time ticks: about five, on whole minutes.
  const minute = 60000;
  const every = Math.max(1, Math.ceil(span / minute / 5)) * minute;
  for (let t = Math.ceil(t0 / every) * every; t <= t1; t += every) {
    svg.append(s("line", { x1: x(t), x2: x(t), y1: pad.top + hgt, y2: pad.top + hgt + 4, class: "axis" }));
    svg.append(s("text", { x: x(t), y: height - 8, "text-anchor": "middle", class: "tick" }, hhmm(t)));
  }
  svg.append(s("line", { x1: pad.left, x2: width - pad.right, y1: pad.top + hgt, y2: pad.top + hgt, class: "axis" }));
  for (const [i, ser] of series.entries()) {
    if (ser.points.length === 0) continue;
    const d = ser.points.map((p, j) => `${j ? "L" : "M"}${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join(" ");
    svg.append(s("path", { d, class: `line ${ser.cls || "series-" + i}`, "data-series": ser.name }));
    if (ser.points.length === 1) {
      const [p] = ser.points;
      svg.append(s("circle", { cx: x(p[0]), cy: y(p[1]), r: 3, class: `dot ${ser.cls || "series-" + i}` }));
    }
  }
  return svg;
}

/** Per-second rates between consecutive samples of a counter: `[[t, rate], ...]`. */
export function rates(samples, field) {
  const out = [];
  for (let i = 1; i < samples.length; i++) {
    const dt = (samples[i].t - samples[i - 1].t) / 1000;
    const dv = samples[i][field] - samples[i - 1][field];
    // A counter that went down: the node restarted; no rate for that interval.
    if (dt > 0 && dv >= 0) out.push([samples[i].t, dv / dt]);
  }
  return out;
}
