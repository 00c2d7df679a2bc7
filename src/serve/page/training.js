"use strict";
// The training view: a run's metrics.csv (from its file or the live event stream), its charts, warnings and data.
const COLORS = ["#0d0887", "#6a00a8", "#b12a90", "#e16462", "#fca636", "#2a9d8f", "#264653", "#8ab17d"];
// The run shown: its header and rows (parsed once, as they arrive).
let data = { head: [], rows: [] }, source = null, warnings = [], pending = null, drawnAt = 0;

function parseRow(head, l) {
  const v = l.split(","), r = {};
  head.forEach((h, i) => { r[h] = v[i] === undefined || v[i] === "" ? null : (isNaN(+v[i]) ? v[i] : +v[i]); });
  return r;
}
// Add metrics.csv lines (the header first, when there is none yet).
function addLines(lines) {
  lines = lines.filter(l => l.length);
  if (!data.head.length && lines.length) data.head = lines.shift().split(",");
  for (const l of lines) data.rows.push(parseRow(data.head, l));
}

// A colour per layer, the same on every chart (its place among the run's layers).
const LAYER_COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
  "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94", "#f7b6d2", "#c7c7c7", "#dbdb8d", "#9edae5"];

// Where a warning belongs: its step (as the message says it) and the chart
// it concerns. The one place that reads the warnings' words.
function warningAt(text, epochs) {
  let m = /at step (\d+)|after (\d+) steps/.exec(text), step = m ? +(m[1] || m[2]) : null;
  const e = /^overfitting at epoch (\d+)/.exec(text);
  if (e) { const r = epochs.find(r => r.epoch === +e[1]); step = r ? r.step : null; }
  const chart = /^(exploding|vanishing)/.test(text) ? "grad" : /units of .* are (dead|saturated)/.test(text) ? "units"
    : /barely learn/.test(text) ? "ratio" : /chance level/.test(text) ? "acc" : "loss";
  return { step, chart };
}

function draw() {
  drawnAt = Date.now();
  // Charts in a hidden view are drawn when it is shown (the tab's click redraws).
  if (document.getElementById("tab-training").hidden) return;
  const { head, rows } = data;
  const steps = rows.filter(r => r.kind === "step"), epochs = rows.filter(r => r.kind === "epoch");
  // A language model's run: estimates of both splits instead of epochs.
  const evals = rows.filter(r => r.kind === "eval"), lm = head.includes("val_loss");
  const col = (rs, c) => rs.map(r => [r.step, r[c]]);
  const ends = epochs.map(r => r.step);
  const marks = {};
  warnings.forEach((w, i) => {
    const { step, chart } = warningAt(w, epochs);
    if (step !== null) (marks[chart] = marks[chart] || []).push({ x: step, text: `warning ${i + 1}: ${w}` });
  });
  const o = (extra) => ({ epochs: ends, ...extra });
  chart("loss", lm ? [
    { name: "train (steps)", color: COLORS[0], points: col(steps, "loss"), smooth: true },
    { name: "train (estimate)", color: COLORS[2], points: col(evals, "train_loss") },
    { name: "validation (estimate)", color: COLORS[4], points: col(evals, "val_loss") },
  ] : [
    { name: "train (steps)", color: COLORS[0], points: col(steps, "loss"), smooth: true },
    { name: "train (epochs)", color: COLORS[2], points: col(epochs, "loss") },
    { name: "test", color: COLORS[4], points: col(epochs, "test_loss") },
  ], o({ log: document.getElementById("loss-log").checked, marks: marks.loss }));
  chart("acc", lm ? [] : [
    { name: "train (steps)", color: COLORS[0], points: col(steps, "accuracy"), smooth: true },
    { name: "train (epochs)", color: COLORS[2], points: col(epochs, "accuracy") },
    { name: "test", color: COLORS[4], points: col(epochs, "test_accuracy") },
  ], o({ marks: marks.acc, empty: lm ? "a language model has no accuracy: its loss is in nats per character" : undefined }));
  chart("lr", [{ name: "learning rate", color: COLORS[1], points: col(rows, "lr") }], o());
  const layers = [...new Set(head.filter(h => h.startsWith("L")).map(h => h.slice(1, h.lastIndexOf("."))))];
  const names = (info && info.layers) || {};
  const label = l => /^[0-9]+$/.test(l) ? (names[l] ? `${l} ${names[l]}` : "layer " + l) : l;
  const per = (stat, scale) => layers.filter(l => head.includes(`L${l}.${stat}`)).map(l => ({
    name: label(l), color: LAYER_COLORS[layers.indexOf(l) % LAYER_COLORS.length], smooth: true,
    points: steps.map(r => [r.step, r[`L${l}.${stat}`] === null ? null : r[`L${l}.${stat}`] * (scale || 1)]),
  }));
  const diag = head.some(h => h.startsWith("L"));
  const none = lm ? "a language model's run measures the gradient norm per block only"
    : diag ? "no relu, sigmoid or tanh layers" : "no per-layer statistics in this run";
  chart("grad", per("grad_norm"), o({ log: true, marks: marks.grad, empty: diag ? undefined : none }));
  chart("delta", per("delta_norm"), o({ log: true, empty: diag && !lm ? undefined : none }));
  chart("ratio", per("update_ratio"), o({ log: true, rule: 1e-3, marks: marks.ratio, empty: diag && !lm ? undefined : none }));
  chart("units", [...per("dead_frac", 100).map(s => ({ ...s, name: s.name + " dead" })),
    ...per("saturated_frac", 100).map(s => ({ ...s, name: s.name + " saturated", dash: true }))], o({ marks: marks.units, empty: none }));
  histograms(head, steps, label, layers);
  document.getElementById("warnings").innerHTML = warnings.map((w, i) => `<li value="${i + 1}">${esc(w)}</li>`).join("");
  showClock();
}

// A layer's weights and gradients over time, as TensorBoard draws a
// distribution: the range (least to greatest) pale, the 16–84 % band (±1σ
// for a normal distribution) darker, the median as a line.
function histograms(head, steps, label, layers) {
  const sel = document.getElementById("hist-layer"), card = document.getElementById("hist-card");
  const have = layers.filter(l => head.includes(`L${l}.w_q0`));
  card.hidden = !have.length;
  if (!have.length) return;
  const names = have.map(l => label(l)).join("\n");
  if (sel.dataset.names !== names) {
    const keep = sel.value;
    sel.dataset.names = names;
    sel.innerHTML = have.map(l => `<option value="${esc(l)}">${esc(label(l))}</option>`).join("");
    if (have.includes(keep)) sel.value = keep;
  }
  const l = sel.value, q = ["0", "16", "50", "84", "100"], what = ["least", "16 %", "median", "84 %", "greatest"];
  const c = LAYER_COLORS[layers.indexOf(l) % LAYER_COLORS.length];
  const bands = [[4, 0, c + "22"], [3, 1, c + "55"]]; // [upper, lower] series
  for (const [id, k] of [["hist-w", "w"], ["hist-g", "g"]]) {
    chart(id, q.map((p, i) => ({ name: what[i], color: i === 2 ? c : c + "66", thin: i !== 2, points: steps.map(r => [r.step, r[`L${l}.${k}_q${p}`]]) })), { bands, epochs: steps.length ? data.rows.filter(r => r.kind === "epoch").map(r => r.step) : [] });
  }
}

// Elapsed time, throughput and time to go: the live run's clock, or a saved
// run's epochs.
let info = null, clock = null;
function duration(s) {
  if (s === null || s === undefined || !isFinite(s)) return "";
  if (s < 10) return `${+s.toFixed(1)} s`;
  s = Math.round(s);
  return s >= 3600 ? `${Math.floor(s / 3600)} h ${Math.floor(s % 3600 / 60)} min` : s >= 60 ? `${Math.floor(s / 60)} min ${s % 60} s` : `${s} s`;
}
function showClock() {
  const el = document.getElementById("clock"), parts = [];
  const recs = (info && info.records) || [];
  if (info && info.model) parts.push(`model <code>${esc(info.model)}</code>`);
  if (clock) {
    parts.push(`${duration(clock.elapsed)} elapsed`);
    if (clock.step) parts.push(`step ${clock.step}${clock.steps ? ` of ${clock.steps}` : ""}`);
    if (clock.samples_per_second) parts.push(`${Math.round(clock.samples_per_second).toLocaleString("en")} samples/s`);
    const done = data.rows.length && status_done;
    if (!done && clock.steps && clock.step > 0 && clock.step < clock.steps) parts.push(`about ${duration(clock.elapsed / clock.step * (clock.steps - clock.step))} to go`);
  } else if (recs.length) {
    const t = recs.reduce((a, r) => a + r.train_seconds, 0), last = recs[recs.length - 1];
    parts.push(`${recs.length} epochs in ${duration(t)} of training`, `${Math.round(last.samples_per_second).toLocaleString("en")} samples/s`);
  }
  el.innerHTML = parts.join(" · ");
}
let status_done = false;

// ---- the live run's data: the confusion matrix and augmented images
// The event stream sends it whenever it changes.
function showData(d) {
  const card = document.getElementById("data-card");
  card.hidden = !d.confusion && !d.augmented;
  const names = d.classes || [];
  if (d.confusion) {
    const m = d.confusion, name = i => esc(names[i] ?? i);
    let h = "<table class=confusion><tr><th></th>" + m.map((_, j) => `<th>${name(j)}</th>`).join("") + "</tr>";
    m.forEach((row, i) => {
      const all = Math.max(1, row.reduce((a, b) => a + b, 0));
      h += `<tr><th>${name(i)}</th>` + row.map((v, j) => {
        const f = v / all, [cr, cg, cb] = i === j ? [255 - 180 * f, 255 - 60 * f, 255 - 180 * f] : [255, 255 - 200 * f, 255 - 200 * f];
        return `<td style="background:rgb(${cr | 0},${cg | 0},${cb | 0})">${v}</td>`;
      }).join("") + `<td class=note>${(100 * row[i] / all).toFixed(1)}%</td></tr>`;
    });
    document.getElementById("confusion").innerHTML = h + "</table>";
  }
  if (d.augmented) {
    const [c, hh, w] = d.augmented.shape, out = document.getElementById("augmented");
    document.getElementById("aug-title").hidden = false;
    out.innerHTML = "";
    for (const row of d.augmented.rows) {
      const div = document.createElement("div");
      div.className = "aug-row";
      for (const img of row) div.appendChild(picture(img, c, hh, w, Math.max(1, Math.round(64 / w))));
      out.appendChild(div);
    }
  }
}

async function show(name) {
  document.getElementById("data-card").hidden = true;
  if (source) { source.close(); source = null; }
  data = { head: [], rows: [] }; warnings = []; info = null; clock = null; status_done = false;
  const status = document.getElementById("status");
  if (name === "(live)") {
    status.textContent = "training…";
    // The stream sends every row from the first, then the new ones.
    source = new EventSource("/api/live/events");
    source.onmessage = e => {
      const m = JSON.parse(e.data);
      if (m.data) showData(m.data);
      if (m.info) info = m.info;
      if (m.clock) { clock = m.clock; showClock(); }
      // Nothing new: no redraw (the page costs the run nothing between rows).
      if (!m.lines.length && !m.warnings.length && !m.done && data.head.length) return;
      addLines(m.lines);
      warnings = warnings.concat(m.warnings);
      status_done = m.done;
      status.textContent = m.done ? "finished" : `training… ${data.rows.length} rows`;
      // Redraw at most every two seconds while the run goes on (each redraw
      // paints a dozen charts, on the machine the run trains on).
      if (m.done) { source.close(); source = null; draw(); }
      else if (!pending) { pending = setTimeout(() => { pending = null; draw(); }, Math.max(0, 2000 - (Date.now() - drawnAt))); }
    };
  } else {
    const r = await runData(name, true);
    data = { head: r.head, rows: r.rows };
    if (r.info) { info = r.info; warnings = info.warnings || []; status_done = true; }
    status.textContent = r.ok ? `${data.rows.length} rows` : "cannot read this run";
  }
  draw();
}

document.getElementById("loss-log").onchange = () => { draw(); drawCompare(); };
