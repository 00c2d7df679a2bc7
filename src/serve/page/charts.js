"use strict";
// Charts of a run's curves, drawn by uPlot (vendored: hover, zoom and
// thousands of points at no cost to the page).
//
// chart(id, series, opts) draws into <div id=ID> with its legend in
// <div id=ID-legend>; a series is {name, color, points: [[x, y], …], dash,
// smooth}; opts: {log, rule (a dashed level), empty (what to say when there
// is nothing), marks ([{x, text, color}]: warnings, drawn as flags on the
// chart), epochs ([x, …]: a faint line at each epoch's end), xlabel}.
// Drag across a chart to zoom in, double-click to zoom out; the legend gives
// each curve's value under the pointer, else its latest value.

const charts = {};
// The smoothing of per-step curves: an exponential moving average with
// TensorBoard's weight (0: none), debiased so that the curve starts where
// the data does.
let smoothing = 0;

function ema(points, w) {
  if (!w) return points;
  let m = 0, n = 0;
  return points.map(([x, y]) => {
    if (y === null || !isFinite(y)) return [x, null];
    m = w * m + (1 - w) * y; n = w * n + (1 - w);
    return [x, m / n];
  });
}

// The series as uPlot wants them: one x array (the union of every
// series' x) and one y array per series, null where it has no point.
function aligned(series, log) {
  const xs = [...new Set(series.flatMap(s => s.points.map(p => p[0])))].sort((a, b) => a - b);
  const at = new Map(xs.map((x, i) => [x, i]));
  const ys = series.map(s => {
    const y = new Array(xs.length).fill(null);
    for (const [x, v] of s.points) if (v !== null && isFinite(v) && (!log || v > 0)) y[at.get(x)] = v;
    return y;
  });
  return [xs, ...ys];
}

// Each curve's value at data index `i` (null: its latest), for the legend.
function valueAt(data, k, i) {
  const y = data[k + 1];
  if (i !== null && i !== undefined) return [data[0][i], y[i]];
  for (let j = y.length - 1; j >= 0; j--) if (y[j] !== null) return [data[0][j], y[j]];
  return [null, null];
}

function legendHtml(c, i) {
  return c.shown.map((s, k) => {
    if (s.raw) return "";
    const [x, v] = valueAt(c.data, k, i);
    return `<span style="--c:${s.color}" title="${esc(s.name)}${x === null ? "" : ` at ${c.xlabel} ${x}`}">${esc(s.name)}${v === null ? "" : ` <b>${fmt(v)}</b>`}</span>`;
  }).join("") + (i !== null && i !== undefined ? `<span class="note">at ${c.xlabel} ${c.data[0][i]}</span>` : "");
}

// A chart scrolled out of view is not redrawn as rows come (a live run
// redraws every second, and painting a dozen charts costs the machine the
// run trains on); it is drawn with its latest data when it comes into view.
const inView = new Map(), deferred = {};
const watcher = new IntersectionObserver(entries => {
  for (const e of entries) {
    inView.set(e.target.id, e.isIntersecting);
    const later = deferred[e.target.id];
    if (e.isIntersecting && later) { delete deferred[e.target.id]; chart(...later); }
  }
});

function chart(id, series, opts) {
  opts = opts || {};
  const box = document.getElementById(id), legend = document.getElementById(id + "-legend");
  if (!inView.has(id)) { inView.set(id, true); watcher.observe(box); }
  if (charts[id] && inView.get(id) === false) { deferred[id] = [id, series, opts]; return; }
  // Smoothed per-step curves keep their raw points, faint, behind them.
  const shown = series.flatMap(s => s.smooth && smoothing > 0
    ? [{ ...s, raw: true, color: s.color + "40" }, { ...s, points: ema(s.points, smoothing) }] : [s]);
  const data = aligned(shown, opts.log);
  const any = data.slice(1).some(y => y.some(v => v !== null));
  const key = JSON.stringify([shown.map(s => [s.name, s.color, !!s.dash, !!s.raw]), !!opts.log, opts.rule, opts.bands, !!opts.whole]);
  let c = charts[id];
  if (!any) {
    if (c) { c.u.destroy(); delete charts[id]; }
    box.innerHTML = `<div class="empty">${esc(opts.empty || "nothing to show yet")}</div>`;
    legend.innerHTML = series.map(s => `<span style="--c:${s.color}">${esc(s.name)}</span>`).join("");
    return;
  }
  if (c && c.key !== key) { c.u.destroy(); delete charts[id]; c = null; }
  if (!c) {
    box.innerHTML = "";
    c = charts[id] = { key, shown, data, xlabel: opts.xlabel || "step", cursor: null };
    decorations(c, opts);
    const width = Math.max(200, box.clientWidth || 360);
    c.u = new uPlot({
      width, height: 200,
      legend: { show: false },
      // opts.bands: [[upper, lower, fill], …] by series index, filled between
      bands: (opts.bands || []).map(([a, b, fill]) => ({ series: [a + 1, b + 1], fill })),
      cursor: { drag: { x: true, y: false }, points: { size: 6 } },
      scales: { x: { time: false }, y: opts.log ? { distr: 3 } : { range: (u, lo, hi) => pad0(lo, hi, opts.rule) } },
      axes: [
        // opts.whole: whole numbers on the x axis (epochs)
        { label: c.xlabel, labelSize: 18, size: 34, font: "11px system-ui", labelFont: "11px system-ui", grid: { stroke: "#eee" }, ...(opts.whole ? { incrs: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000] } : {}) },
        { size: 52, font: "11px system-ui", grid: { stroke: "#eee" }, values: (u, v) => v.map(fmtTick) },
      ],
      series: [{ label: c.xlabel }, ...shown.map(s => ({
        label: s.name, stroke: s.color, width: s.raw || s.thin ? 1 : 1.6, dash: s.dash ? [5, 3] : undefined, spanGaps: true,
        points: { show: (u, si) => u.data[si].filter(v => v !== null).length < 30, size: 4 },
      }))],
      hooks: {
        setCursor: [u => { c.cursor = u.cursor.idx; legend.innerHTML = legendHtml(c, c.cursor); }],
        draw: [u => decorate(u, c)],
        setSelect: [u => { if (u.select.width > 0) c.zoomed = true; }],
      },
    }, data, box);
    c.u.over.addEventListener("dblclick", () => { c.zoomed = false; c.u.setScale("x", { min: c.data[0][0], max: c.data[0][c.data[0].length - 1] }); });
  } else {
    c.shown = shown; c.data = data;
    decorations(c, opts);
    // Keep a zoomed-in view while rows come; else follow the data.
    const x = c.u.scales.x, zoomed = c.zoomed;
    c.u.setData(data, !zoomed);
    if (zoomed) c.u.setScale("x", { min: x.min, max: x.max });
  }
  legend.innerHTML = legendHtml(c, c.cursor);
}

// What the draw hook adds: the rule, the epochs' ends, the warnings.
function decorations(c, opts) { c.rule = opts.rule; c.epochs = opts.epochs || []; c.marks = opts.marks || []; }

// The y range with a little room, and the rule inside it.
function pad0(lo, hi, rule) {
  if (rule !== undefined) { lo = Math.min(lo, rule); hi = Math.max(hi, rule); }
  if (lo === hi) return [Math.min(0, lo), hi > 0 ? hi * 1.25 : hi + 1];
  const m = (hi - lo) * 0.05;
  return [lo >= 0 && lo - m < 0 ? 0 : lo - m, hi + m];
}
function fmtTick(v) {
  if (v === null) return "";
  const a = Math.abs(v);
  return a !== 0 && (a < 1e-2 || a >= 1e5) ? v.toExponential(0).replace("e+", "e") : +v.toPrecision(3);
}

// Epoch lines and the rule, drawn on the chart's canvas.
function decorate(u, c) {
  const ctx = u.ctx, { left, top, width, height } = u.bbox;
  ctx.save();
  ctx.lineWidth = devicePixelRatio;
  ctx.strokeStyle = "#bbb"; ctx.setLineDash([2, 4]);
  for (const x of c.epochs || []) {
    const px = u.valToPos(x, "x", true);
    if (px < left || px > left + width) continue;
    ctx.beginPath(); ctx.moveTo(px, top); ctx.lineTo(px, top + height); ctx.stroke();
  }
  if (c.rule !== undefined) {
    const py = u.valToPos(c.rule, "y", true);
    ctx.strokeStyle = "#888"; ctx.setLineDash([6, 4]);
    ctx.beginPath(); ctx.moveTo(left, py); ctx.lineTo(left + width, py); ctx.stroke();
  }
  ctx.restore();
  marks(c, u);
}

// The warnings as flags along the chart's top, each with its text on hover.
function marks(c, u) {
  u = u || c.u;
  const over = u.over;
  for (const m of over.querySelectorAll(".marker")) m.remove();
  for (const m of c.marks || []) {
    const px = u.valToPos(m.x, "x");
    if (!(px >= 0 && px <= over.clientWidth)) continue;
    const f = document.createElement("span");
    f.className = "marker"; f.style.left = px + "px"; f.style.setProperty("--c", m.color || "#d62728");
    f.title = m.text; f.textContent = "⚑";
    over.appendChild(f);
  }
}

// Charts follow their card's width (a window resized, a tab shown).
function fitCharts() {
  for (const [id, c] of Object.entries(charts)) {
    const w = document.getElementById(id).clientWidth;
    if (w && Math.abs(w - c.u.width) > 4) c.u.setSize({ width: w, height: 200 });
  }
}
window.addEventListener("resize", fitCharts);
new ResizeObserver(fitCharts).observe(document.body);

// How many curves of a chart have a point (the browser test asks).
function curves(id) {
  const c = charts[id];
  return c ? c.shown.filter((s, k) => !s.raw && c.data[k + 1].some(v => v !== null)).length : 0;
}
