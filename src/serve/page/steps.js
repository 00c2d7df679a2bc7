"use strict";
// Backprop step by step: the tape, walked backward, with each node's local rule and numbers.
// ---- backprop, step by step
let visit = 0; // how many nodes of the backward order have been visited
// The backward order: the ops from the loss back to the input, then the
// parameters (each complete once every op that used it has been visited).
function order() {
  if (!trace) return [];
  const g = trace.nodes.filter(n => n.grad), desc = (a, b) => b.id - a.id;
  return g.filter(n => n.kind !== "param").sort(desc).concat(g.filter(n => n.kind === "param").sort(desc)).map(n => n.id);
}
// One colour scale per quantity (every value, every gradient of the tape),
// so that a gradient of 1e-10 looks pale beside one of 0.5.
function scales() {
  const big = k => Math.max(1e-12, ...trace.nodes.filter(n => n[k]).map(n => Math.max(Math.abs(n[k].min), Math.abs(n[k].max))));
  return { value: big("value"), grad: big("grad") };
}
function strip(t, m) {
  if (!t) return "";
  if (!t.data) return `<span class="note">${t.shape.reduce((a, b) => a * b, 1)} values</span>`;
  const n = t.data.length, w = Math.min(n, 160);
  // Small tensors per unit, with their numbers; large ones as a strip of colour.
  if (n <= 16) { return `<span class="cells">${t.data.map(x => { const [r, g, b] = color(x / m); return `<span style="background:rgb(${r},${g},${b})">${fmt(x)}</span>`; }).join("")}</span>`; }
  let cv;
  const sh = t.shape;
  if (sh.length === 4 && sh[2] >= 5 && sh[3] >= 5) {
    // Images: the first channels side by side, a column of zeros between.
    const [, c, h, ww] = sh, k = Math.min(c, 8), W = k * (ww + 1) - 1, img = new Array(W * h).fill(0);
    for (let ch = 0; ch < k; ch++) for (let y = 0; y < h; y++) for (let x = 0; x < ww; x++) img[y * W + ch * (ww + 1) + x] = t.data[(ch * h + y) * ww + x];
    cv = heat(img, W, h, false, undefined, m); cv.className = "maps1";
  } else {
    const rows = Math.ceil(n / w), pad0 = t.data.concat(new Array(rows * w - n).fill(0));
    cv = heat(pad0, w, rows, false, undefined, m); cv.className = "strip";
  }
  return `<img class="${cv.className}" src="${cv.toDataURL()}" alt="">`;
}
function steps(fresh) {
  const body = document.getElementById("tape"), count = document.getElementById("s-count");
  if (!trace) { body.innerHTML = ""; count.textContent = "draw a digit (or read a text) first"; return; }
  const ord = order(), sc = scales();
  if (fresh) visit = Math.min(visit, ord.length);
  const done = new Set(ord.slice(0, visit)), now = visit > 0 ? ord[visit - 1] : null;
  const recv = new Set(now === null ? [] : trace.nodes[now].parents);
  const layerName = i => i === null || i === undefined ? "" : trace.layers[i].name;
  body.innerHTML = trace.nodes.map(n => {
    const name = n.kind === "param" ? n.param : n.kind === "input" ? (trace.text ? "x (the text's ids)" : "x (the drawing)") : n.id === trace.loss_node ? "C (the loss)" : n.op;
    const shown = done.has(n.id) || (recv.has(n.id) && n.grad);
    const g = !n.grad ? `<span class="note">no gradient</span>` : shown ? `${strip(n.grad, sc.grad)} <span class="num">‖·‖ ${fmt(n.grad.norm)}${done.has(n.id) ? "" : " (receiving)"}</span>` : "";
    return `<tr class="${n.id === now ? "now" : ""} ${recv.has(n.id) ? "recv" : ""}"><td class="num">${n.id}</td><td>${esc(name)}</td><td class="hide">${esc(layerName(n.layer))}</td><td class="num">[${n.shape.join(",")}]</td><td>${strip(n.value, sc.value)} <span class="num">‖·‖ ${fmt(n.value.norm)}</span></td><td class="g${shown ? " filled" : ""}">${g}</td></tr>`;
  }).join("");
  scaleBars(sc);
  const cur = now === null ? null : trace.nodes[now];
  if (!snapshotAt) snapshotAt = new Date();
  const snap = trace.model === "(live)" ? `the run's weights as of ${snapshotAt.toLocaleTimeString("en-GB")} (frozen while you step). ` : "";
  count.textContent = snap + (visit === 0 ? `forward pass done: ${trace.nodes.length} nodes on the tape, ${ord.length} gradients to fill; loss ${fmt(trace.loss)} ` + (trace.text ? `(the mean cross-entropy of the next character at ${trace.text.length} positions)` : `against label ${trace.label}`) :
    `visited ${visit} of ${ord.length}: node ${now} (${cur.kind === "param" ? cur.param : cur.op})` + (cur.parents.length ? `, adding to nodes ${cur.parents.join(", ")}` : ""));
  const sel = picked !== null && trace.nodes[picked] ? trace.nodes[picked] : cur;
  document.getElementById("s-rule").innerHTML = sel && (sel === cur || done.has(sel.id)) ? rule(sel) : sel ? `<p class="note">node ${sel.id} (${esc(sel.kind === "param" ? sel.param : sel.op)}) has no gradient yet: step on to it</p>` : "";
  units(sel);
  graph(done, now, recv);
}

// ---- the tape as a graph: a box per node (its number, op and shape; its
// gradient's norm once visited), a line from each parent; the loss on the
// right. Click a box for its rule and units.
let picked = null;
function graph(done, now, recv) {
  const nodes = trace.nodes, col = new Array(nodes.length).fill(0);
  for (const n of nodes) if (n.kind === "op") col[n.id] = 1 + Math.max(0, ...n.parents.filter(p => nodes[p].kind !== "param").map(p => col[p]));
  // a parameter sits in the column before its first user
  for (const n of nodes) for (const p of n.parents) if (nodes[p].kind === "param" && !col[p]) col[p] = Math.max(0, col[n.id] - 1);
  const BW = 104, BH = 44, GX = 36, GY = 10, rows = [];
  const at = nodes.map(n => { const c = col[n.id]; rows[c] = (rows[c] || 0) + 1; return [c, rows[c] - 1]; });
  const H = Math.max(...rows.filter(x => x)) * (BH + GY) + 10, W = (Math.max(...col) + 1) * (BW + GX);
  const xy = id => [6 + at[id][0] * (BW + GX), 6 + at[id][1] * (BH + GY)];
  let edges = "", boxes = "";
  for (const n of nodes) {
    const [x2, y2] = xy(n.id);
    for (const p of n.parents) {
      const [x1, y1] = xy(p), hot = n.id === now;
      edges += `<path d="M${x1 + BW} ${y1 + BH / 2} C${x1 + BW + GX / 2} ${y1 + BH / 2} ${x2 - GX / 2} ${y2 + BH / 2} ${x2} ${y2 + BH / 2}" fill="none" stroke="${hot ? "#b12a90" : "#bbb"}" stroke-width="${hot ? 2 : 1}"/>`;
    }
    const name = n.kind === "param" ? n.param : n.kind === "input" ? "x" : n.id === trace.loss_node ? "C (loss)" : n.op;
    const fill = n.id === now ? "#fff4c2" : done.has(n.id) ? "#f3e8ff" : "#fff", stroke = recv.has(n.id) ? "#b12a90" : n.id === picked ? "#1d2b53" : "#999";
    boxes += `<g class="gnode" data-id="${n.id}"><rect x="${x2}" y="${y2}" width="${BW}" height="${BH}" rx="4" fill="${fill}" stroke="${stroke}" stroke-width="${recv.has(n.id) || n.id === picked ? 2 : 1}"/>` +
      `<text x="${x2 + 5}" y="${y2 + 13}" class="g1">${n.id} ${esc(name.length > 14 ? name.slice(0, 13) + "…" : name)}</text><text x="${x2 + 5}" y="${y2 + 26}" class="g2">[${n.shape.join(",")}] ‖v‖ ${fmt(n.value.norm)}</text>` +
      `<text x="${x2 + 5}" y="${y2 + 39}" class="g2 gg">${done.has(n.id) && n.grad ? "‖∂C‖ " + fmt(n.grad.norm) : n.grad ? "" : "no gradient"}</text><title>${esc(name)} [${n.shape.join("×")}]</title></g>`;
  }
  const svg = document.getElementById("s-graph");
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  svg.style.width = W + "px"; svg.style.height = H + "px";
  svg.innerHTML = edges + boxes;
  for (const g of svg.querySelectorAll(".gnode")) g.onclick = () => { picked = +g.dataset.id === picked ? null : +g.dataset.id; steps(); };
}
// ---- the local rule of the node being visited, in the seeds' notation,
// with its shapes and one entry worked out with the real numbers (MathML,
// which the browser renders itself).
const mi = t => `<mi>${esc(t)}</mi>`, mn = v => `<mn>${fmt(v)}</mn>`, mo = t => `<mo>${t}</mo>`;
const sub = (b, s) => `<msub>${b}<mrow>${s}</mrow></msub>`;
const shp = s => `<mtext>&nbsp;[${s.join("×")}]</mtext>`;
const row = (...parts) => `<mrow>${parts.join("")}</mrow>`;
const math = (...rows) => `<math display="block"><mtable columnalign="left">${rows.map(r => `<mtr><mtd>${r}</mtd></mtr>`).join("")}</mtable></math>`;
const dC = x => `<mfrac><mrow><mi>∂</mi><mi>C</mi></mrow><mrow><mi>∂</mi>${x}</mrow></mfrac>`;
// The index of the largest |value| (the entry worth showing).
const biggest = d => d.reduce((b, v, i) => Math.abs(v) > Math.abs(d[b]) ? i : b, 0);
function rule(cur) {
  const p = cur.parents.map(i => trace.nodes[i]), g = cur.grad && cur.grad.data;
  const act = { relu: ["𝟙[z > 0]", z => z > 0 ? 1 : 0], sigmoid: ["σ(z)(1 − σ(z))", null], tanh: ["1 − tanh²(z)", null] };
  if (cur.id === trace.loss_node && trace.text) {
    return math(
      row(mi("C"), mo("="), mfrac1("T"), mo("∑"), mo("−"), mi("log"), sub(mi("p"), mi("t")), mo("("), sub(mi("y"), mi("t")), mo(")"), mtextNote(`the mean over the ${trace.text.length} positions`)),
      row(sub(mi("δ"), sub(mi("z"), mi("t"))), mo("="), mo("("), sub(mi("p"), mi("t")), mo("−"), sub(mi("y"), mi("t")), mo(")"), mo("/"), mi("T"), mtextNote("softmax with cross-entropy at every position")));
  }
  if (cur.id === trace.loss_node && cur.op === "cross_entropy") {
    const z = p[0], probs = trace.probabilities, y = trace.label;
    const k = z.grad && z.grad.data ? biggest(z.grad.data) : y;
    return math(
      row(mi("C"), mo("="), mo("−"), mi("log"), sub(mi("p"), mi("y")), mo(","), mi("p"), mo("="), mi("softmax"), mo("("), mi("z"), mo(")"), shp(z.shape)),
      row(sub(mi("δ"), mi("z")), mo("="), dC(mi("z")), mo("="), mi("p"), mo("−"), mi("y"), mtextNote("softmax with cross-entropy: the rule of the output layer")),
      probs && probs.length > k ? row(sub(mi("δ"), mn(k)), mo("="), sub(mi("p"), mn(k)), mo("−"), sub(mi("y"), mn(k)), mo("="), mn(probs[k]), mo("−"), mn(k === y ? 1 : 0), mo("="), mn(probs[k] - (k === y ? 1 : 0))) : "");
  }
  if (cur.op === "linear" && p.length >= 2) {
    const [a, W] = p, lines = [
      row(mi("z"), mo("="), mi("W"), mi("a"), mo("+"), mi("b"), shp(cur.shape), mtextNote("a linear layer; δ = ∂C/∂z has arrived, complete")),
      row(dC(mi("W")), mo("="), mi("δ"), sup(mi("a"), mi("T")), shp(W.shape), mo(","), dC(mi("b")), mo("="), mi("δ"), mo(","), dC(mi("a")), mo("="), sup(mi("W"), mi("T")), mi("δ"), shp(a.shape))];
    const av = a.value.data;
    if (g && av) {
      const n = cur.shape[cur.shape.length - 1], m = av.length / (g.length / n);
      const i = biggest(g.slice(0, n)), j = biggest(av.slice(0, m));
      lines.push(row(sub(mrow(dC(mi("W"))), row(mn(i), mo(","), mn(j))), mo("="), sub(mi("δ"), mn(i)), sub(mi("a"), mn(j)), mo("="), mn(g[i]), mo("×"), mn(av[j]), mo("="), mn(g[i] * av[j]), mtextNote("(the first sample; with several, summed over them)")));
    }
    return math(...lines);
  }
  if (act[cur.op] && p.length === 1) {
    const [name] = act[cur.op], z = p[0], zv = z.value.data, lines = [
      row(mi("a"), mo("="), mi(cur.op), mo("("), mi("z"), mo(")"), shp(cur.shape)),
      row(sub(mi("δ"), mi("z")), mo("="), dC(mi("a")), mo("⊙"), mi(cur.op === "relu" ? "𝟙[z > 0]" : cur.op === "sigmoid" ? "σ′(z)" : "tanh′(z)"), mtextNote(`${cur.op}′(z) = ${name}`))];
    if (g && zv) {
      const i = biggest(g), a = cur.value.data ? cur.value.data[i] : null;
      const d = cur.op === "relu" ? (zv[i] > 0 ? 1 : 0) : cur.op === "sigmoid" ? a * (1 - a) : 1 - a * a;
      if (a !== null) lines.push(row(sub(mi("δ"), mn(i)), mo("="), mn(g[i]), mo("×"), mn(d), mo("="), mn(g[i] * d), mtextNote(`z = ${fmt(zv[i])}`)));
    }
    return math(...lines);
  }
  if (cur.kind === "param") return math(row(dC(mi(cur.param)), shp(cur.shape), mtextNote("is complete: every use of the parameter has added its share; the optimizer reads it")));
  if (cur.op === "reshape") return math(row(dC(mi("x")), mo("="), mi("reshape"), mo("("), dC(mi("y")), mo(")"), mtextNote("the same numbers in the input's shape")));
  return math(row(mtextNote(`${cur.op}: each parent receives ∂C/∂parent = (∂node/∂parent)ᵀ · ∂C/∂node, by the op's own rule`)));
}
const mrow = x => `<mrow>${x}</mrow>`, sup = (b, s) => `<msup>${b}<mrow>${s}</mrow></msup>`;
const mfrac1 = d => `<mfrac><mn>1</mn><mi>${d}</mi></mfrac>`;
const mtextNote = t => `<mtext mathcolor="#555">&nbsp;&nbsp;${esc(t)}</mtext>`;

// The visited node's layer, unit by unit: its output and that output's
// gradient (δ = ∂C/∂z for a linear or convolution layer, ∂C/∂a for an
// activation); a large layer shows its 64 units of largest |gradient|
// (largest |value| before the gradient arrives). For the first layer's
// weights, the rows of ∂C/∂W with the largest norms, as images.
function units(cur) {
  const box = document.getElementById("s-units");
  box.innerHTML = "";
  const att = cur && trace.attention ? trace.attention.find(a => a.node === cur.id) : null;
  if (att) { box.appendChild(attentionMaps(att, trace.text)); return; }
  if (cur && (cur.rows || (cur.kind !== "param" && cur.parents.some(p => trace.nodes[p].rows)))) box.appendChild(gradRows(cur.rows ? cur : trace.nodes[cur.parents.find(p => trace.nodes[p].rows)]));
  if (!cur || cur.layer === null || cur.layer === undefined) return;
  const l = trace.layers[cur.layer], out = trace.nodes[l.node];
  if (!out.value.data) return;
  const d = out.grad && out.grad.data && order().slice(0, visit).includes(out.id) ? out.grad.data : null;
  const lin = /^(linear|conv|matmul)/.test(out.op), a = lin ? "z" : "a";
  const n = out.value.data.length, key = d || out.value.data;
  const idx = [...Array(n).keys()];
  if (n > 64) idx.sort((i, j) => Math.abs(key[j]) - Math.abs(key[i])).splice(64);
  const ma = Math.max(1e-12, ...out.value.data.map(Math.abs)), md = d ? Math.max(1e-12, ...d.map(Math.abs)) : 1;
  const bg = (x, m) => { const [r, g, b] = color(x / m); return `background:rgb(${r},${g},${b})`; };
  const div = document.createElement("div");
  div.className = "layer";
  div.innerHTML = `<h3>layer ${esc(l.name)} <small>${esc(l.describe)}: each unit's ${a} (top) and ${lin ? "δ = ∂C/∂z" : "∂C/∂a"} (bottom)${n > 64 ? `; the 64 of ${n} units with the largest |${d ? (lin ? "δ" : "∂C/∂a") : a}|` : ""}</small></h3><div class="unitgrid">${idx.map(i =>
    `<div class="unit"><b>${i}</b><span style="${bg(out.value.data[i], ma)}">${fmt(out.value.data[i])}</span><span style="${d ? bg(d[i], md) : ""}">${d ? fmt(d[i]) : "…"}</span></div>`).join("")}</div>`;
  box.appendChild(div);
}
// A weight's gradient rows as images (row i: how unit i's incoming weights
// would change), when the server sent them (the first layer of an image model).
function gradRows(p) {
  const div = document.createElement("div"), side = Math.round(Math.sqrt(p.shape[1]));
  div.className = "layer";
  const shown = order().slice(0, visit).includes(p.id);
  div.innerHTML = `<h3>${esc(p.param)} <small>∂C/∂W row by row, as ${side}×${side} images: the ${p.rows.index.length} units whose incoming weights get the largest gradient (red: the loss rises with the weight, so gradient descent lowers it)${shown ? "" : " — filled when the parameter is visited"}</small></h3>`;
  if (!shown) return div;
  const maps = document.createElement("div"); maps.className = "maps";
  const m = Math.max(1e-12, ...p.rows.data.flat().map(Math.abs));
  p.rows.index.forEach((r, k) => {
    const f = document.createElement("figure"); f.className = "rowimg";
    f.appendChild(heat(p.rows.data[k], side, side, false, 2, m));
    f.insertAdjacentHTML("beforeend", `<figcaption>unit ${r}</figcaption>`);
    maps.appendChild(f);
  });
  div.appendChild(maps);
  return div;
}
document.getElementById("s-next").onclick = () => { picked = null; visit = Math.min(visit + 1, order().length); steps(); };
document.getElementById("s-back").onclick = () => { picked = null; visit = Math.max(visit - 1, 0); steps(); };
document.getElementById("s-reset").onclick = () => { visit = 0; steps(); };
document.getElementById("s-all").onclick = () => { visit = order().length; steps(); };
// The view holds one snapshot of the model: a live run's newer weights only at a click.
document.getElementById("s-snap").onclick = () => { snapshotAt = null; ask(); };
let snapshotAt = null;


// The two colour scales, one for every value of the tape and one for every
// gradient: blue at −largest, white at 0, red at +largest.
function scaleBars(sc) {
  const [br, bg, bb] = color(-1), [rr, rg, rb] = color(1);
  const bar = (what, m) => `<span class="scalebar"><span>${what}</span><b>−${fmt(m)}</b><i style="background:linear-gradient(90deg,rgb(${br},${bg},${bb}),#fff,rgb(${rr},${rg},${rb}))"></i><b>+${fmt(m)}</b></span>`;
  document.getElementById("s-scale").innerHTML = bar("values", sc.value) + bar("gradients", sc.grad) + `<span class="note">one scale each for the whole tape: a gradient of 1e-10 stays white</span>`;
}
