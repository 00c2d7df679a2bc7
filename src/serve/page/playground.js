"use strict";
// The playground: small networks trained in the server by the library
// (POST /api/playground), every weight and its gradient visible; run,
// pause, one step at a time; the settings in the address, so that a link
// gives the same network at the same step.

const PG_PROBLEMS = {
  xor: { hidden: "2", lr: 0.5, act: "sigmoid", init: "uniform(0.3)", what: "XOR, 2-2-1 (Rumelhart, Hinton & Williams 1986): 4 cases" },
  symmetry: { hidden: "2", lr: 0.1, act: "sigmoid", init: "uniform(0.3)", what: "is a 6-bit input a palindrome? 6-2-1, 64 cases (1986)" },
  encoder: { hidden: "3", lr: 0.1, act: "sigmoid", init: "uniform(0.3)", what: "the 8-3-8 encoder: 8 one-hot inputs through 3 hidden units (1986)" },
  spirals: { hidden: "16,16", lr: 0.005, act: "tanh", init: "xavier-normal", what: "the two spirals (Lang & Witbrock 1988): 194 points, 2-16-16-1" },
};
const pg = { state: null, answer: null, losses: [], running: false, busy: false, opened: false, pick: 0 };
const $ = id => document.getElementById(id);

// The settings as the form has them.
function pgSettings() {
  return {
    problem: $("pg-problem").value,
    hidden: $("pg-hidden").value.split(",").map(s => +s.trim()).filter(n => n > 0),
    activation: $("pg-act").value, init: $("pg-init").value,
    lr: +$("pg-lr").value, momentum: +$("pg-mom").value, seed: +$("pg-seed").value,
  };
}
// The address holds the settings and the step.
function pgSaveUrl() {
  const s = pgSettings(), step = pg.state ? pg.state.step : 0;
  const q = new URLSearchParams({ problem: s.problem, hidden: s.hidden.join(","), act: s.activation, init: s.init, lr: s.lr, mom: s.momentum, seed: s.seed, step });
  history.replaceState(null, "", "#playground?" + q);
}
function pgFromUrl() {
  const m = /^#playground\?(.*)$/.exec(location.hash);
  if (!m) return 0;
  const q = new URLSearchParams(m[1]), set = (id, k) => { if (q.has(k)) $(id).value = q.get(k); };
  set("pg-problem", "problem"); set("pg-hidden", "hidden"); set("pg-act", "act"); set("pg-init", "init");
  set("pg-lr", "lr"); set("pg-mom", "mom"); set("pg-seed", "seed");
  return Math.max(0, Math.min(1e6, Math.floor(+q.get("step") || 0)));
}

// `steps` steps from the current state (none: a fresh network).
async function pgStep(steps) {
  if (pg.busy) return;
  pg.busy = true;
  const st = $("pg-status");
  try {
    const r = await fetch("/api/playground", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ ...pgSettings(), steps, state: pg.state }) });
    if (!r.ok) { st.textContent = await r.text(); st.classList.add("err"); pgPause(); return; }
    const a = await r.json();
    const from = pg.state ? pg.state.step : 0;
    a.losses.forEach((l, i) => pg.losses.push([from + i, l]));
    pg.state = a.state; pg.answer = a;
    st.classList.remove("err");
    pgDraw();
    pgSaveUrl();
  } catch (e) { st.textContent = "the server does not answer (" + e + ")"; st.classList.add("err"); pgPause(); }
  finally { pg.busy = false; }
}
async function pgReset(step) {
  pgPause();
  pg.state = null; pg.losses = []; pg.answer = null;
  // A link's step is reached in pieces of at most 5000.
  let left = step || 0;
  await pgStep(Math.min(left, 5000)); left -= Math.min(left, 5000);
  while (left > 0) { const k = Math.min(left, 5000); await pgStep(k); left -= k; }
}
async function pgRun() {
  pg.running = true; $("pg-run").textContent = "❚❚ pause";
  while (pg.running) {
    await pgStep(+$("pg-speed").value);
    await new Promise(r => setTimeout(r, 30));
  }
}
function pgPause() { pg.running = false; $("pg-run").textContent = "▶ run"; }

function pgDraw() {
  const a = pg.answer;
  if (!a) return;
  const s = pgSettings();
  $("pg-status").innerHTML = `step <b>${a.state.step}</b> · E = ½Σ(y − d)² = <b>${fmt(a.loss)}</b> · ${a.right} of ${a.targets.length} cases right (every output within 0.5)`;
  chart("pg-loss", [{ name: "E", color: COLORS[0], points: pg.losses.concat([[a.state.step, a.loss]]) }], { log: true, xlabel: "step" });
  pgNetwork(a, s);
  pgCases(a);
  pgWeights(a);
}

// The network: a column of units per layer, an edge per weight (red
// positive, blue negative, as thick as it is large), each unit's output for
// the case picked; hover an edge for its weight and gradient.
function pgNetwork(a, s) {
  const names = Object.keys(a.shapes).filter(n => n.endsWith(".weight")).sort((x, y) => parseInt(x) - parseInt(y));
  const sizes = [a.shapes[names[0]][1], ...names.map(n => a.shapes[n][0])];
  const W = 460, H = Math.max(160, Math.min(420, 34 * Math.max(...sizes))), dx = (W - 60) / (sizes.length - 1);
  const pos = (l, i) => [30 + l * dx, H / 2 + (i - (sizes[l] - 1) / 2) * Math.min(34, (H - 30) / sizes[l])];
  // each layer's units for the picked case, as the server computed them
  const acts = a.units.map(u => u[pg.pick % a.inputs.length]);
  const big = Math.max(1e-9, ...names.flatMap(n => a.state.params[n].map(Math.abs)));
  let out = "";
  names.forEach((n, l) => {
    const [o, i] = a.shapes[n], w = a.state.params[n], g = a.grads[n];
    for (let r = 0; r < o; r++) for (let k = 0; k < i; k++) {
      const v = w[r * i + k], [x1, y1] = pos(l, k), [x2, y2] = pos(l + 1, r), [cr, cg, cb] = color(v / big);
      out += `<line class="edge" x1="${x1}" y1="${y1}" x2="${x2}" y2="${y2}" stroke="rgb(${cr},${cg},${cb})" stroke-width="${(0.5 + 4 * Math.abs(v) / big).toFixed(2)}"><title>${esc(n)}[${r},${k}] = ${fmt(v)}; ∂E/∂w = ${fmt(g[r * i + k])}</title></line>`;
    }
  });
  sizes.forEach((k, l) => {
    for (let i = 0; i < k; i++) {
      // white at the unit's lowest output, black at its highest (tanh: −1 to 1)
      const [x, y] = pos(l, i), v = acts[l][i], u = l > 0 && l < sizes.length - 1 && s.activation === "tanh" ? (v + 1) / 2 : v;
      const shade = Math.round(255 * (1 - Math.max(0, Math.min(1, u))));
      const b = l > 0 ? a.state.params[names[l - 1].replace("weight", "bias")][i] : null;
      out += `<circle cx="${x}" cy="${y}" r="9" fill="rgb(${shade},${shade},${shade})" stroke="#1d2b53"><title>${l === 0 ? "input" : l === sizes.length - 1 ? "output" : "hidden"} unit ${i}: ${fmt(v)}${b === null ? "" : `; bias ${fmt(b)}`}</title></circle>`;
    }
  });
  const svg = $("pg-net");
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  svg.style.height = H + "px";
  svg.innerHTML = out;
}

// The cases: input, target, output; click one to see it on the network.
// The spirals: the plane, coloured by the network's output, with the points.
function pgCases(a) {
  const box = $("pg-cases");
  if (a.grid) {
    const n = a.grid_side, cv = document.createElement("canvas"), S = 240;
    cv.width = S; cv.height = S; cv.className = "plane";
    const ctx = cv.getContext("2d"), img = ctx.createImageData(n, n);
    a.grid.forEach((v, i) => { const [r, g, b] = color(2 * v - 1); img.data.set([r, g, b, 255], 4 * i); });
    const tmp = document.createElement("canvas"); tmp.width = n; tmp.height = n; tmp.getContext("2d").putImageData(img, 0, 0);
    ctx.imageSmoothingEnabled = true; ctx.drawImage(tmp, 0, 0, S, S);
    const at = v => (v + a.extent) / (2 * a.extent) * S;
    a.inputs.forEach(([x, y], i) => {
      ctx.beginPath(); ctx.arc(at(x), S - at(y), 2.5, 0, 7);
      ctx.fillStyle = a.targets[i][0] ? "#b00" : "#00b"; ctx.strokeStyle = "#fff"; ctx.fill(); ctx.stroke();
    });
    box.innerHTML = `<p class="note">the network's output over the plane (red: 1, blue: 0) and the 194 points</p>`;
    box.appendChild(cv);
    return;
  }
  const cell = v => { const [r, g, b] = color(2 * v - 1); return `<td style="background:rgb(${r},${g},${b})">${(+v).toFixed(2)}</td>`; };
  box.innerHTML = `<table class="settings cases"><tr><th>case</th><th>input</th><th>target</th><th>output</th></tr>` + a.inputs.map((x, i) =>
    `<tr data-i="${i}" class="${i === pg.pick ? "sel" : ""}"><td>${i}</td><td>${x.join(" ")}</td><td>${a.targets[i].join(" ")}</td>${a.outputs[i].map(cell).join("")}</tr>`).join("") + "</table>";
  for (const tr of box.querySelectorAll("tr[data-i]")) tr.onclick = () => { pg.pick = +tr.dataset.i; pgDraw(); };
}

// Every parameter: its values and ∂E/∂w side by side, one colour scale per quantity.
function pgWeights(a) {
  const names = Object.keys(a.shapes).sort((x, y) => parseInt(x) - parseInt(y) || x.localeCompare(y));
  const mw = Math.max(1e-9, ...names.flatMap(n => a.state.params[n].map(Math.abs)));
  const mg = Math.max(1e-12, ...names.flatMap(n => a.grads[n].map(Math.abs)));
  const grid = (v, shape, m) => {
    const cols = shape.length > 1 ? shape[1] : shape[0];
    return `<div class="wgrid" style="grid-template-columns:repeat(${cols}, auto)">` + v.map(x => { const [r, g, b] = color(x / m); return `<span style="background:rgb(${r},${g},${b})" title="${fmt(x)}">${cols <= 8 ? fmt(x) : ""}</span>`; }).join("") + "</div>";
  };
  $("pg-weights").innerHTML = names.map(n => `<div class="wpair"><h3>${esc(n)} <small>[${a.shapes[n].join("×")}]</small></h3><div class="row"><div><small>w</small>${grid(a.state.params[n], a.shapes[n], mw)}</div><div><small>∂E/∂w</small>${grid(a.grads[n], a.shapes[n], mg)}</div></div></div>`).join("");
}

function openPlayground() {
  if (pg.opened) return;
  pg.opened = true;
  const step = pgFromUrl();
  pgDescribe();
  pgReset(step);
}
function pgDescribe() { $("pg-what").textContent = PG_PROBLEMS[$("pg-problem").value].what; }

$("pg-problem").onchange = () => {
  const p = PG_PROBLEMS[$("pg-problem").value];
  $("pg-hidden").value = p.hidden; $("pg-lr").value = p.lr; $("pg-act").value = p.act; $("pg-init").value = p.init;
  pgDescribe(); pg.pick = 0; pgReset(0);
};
// A new shape or first draw: a fresh network. A new rate, momentum or
// activation: the same weights go on learning.
for (const id of ["pg-hidden", "pg-init", "pg-seed"]) $(id).onchange = () => pgReset(0);
for (const id of ["pg-lr", "pg-mom", "pg-act"]) $(id).onchange = () => { pgSaveUrl(); if (pg.answer) pgStep(0); };
$("pg-run").onclick = () => pg.running ? pgPause() : pgRun();
$("pg-one").onclick = () => { pgPause(); pgStep(1); };
$("pg-ten").onclick = () => { pgPause(); pgStep(10); };
$("pg-reset").onclick = () => pgReset(0);
