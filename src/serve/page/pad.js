"use strict";
// The drawing view: the pad, the request to /api/trace, the guess and each layer's output.
// ---- the drawing pad
const pad = document.getElementById("pad"), pctx = pad.getContext("2d");
let drawn = false, inFlight = false, again = false, trace = null;
// What is on the pad when it is not a drawing (an image file's name).
let padNote = "";
function clearPad() { padNote = ""; pctx.fillStyle = "#000"; pctx.fillRect(0, 0, pad.width, pad.height); drawn = false; }
clearPad();
function stroke(points) {
  pctx.strokeStyle = "#fff"; pctx.lineWidth = 22; pctx.lineCap = "round"; pctx.lineJoin = "round";
  pctx.beginPath(); pctx.moveTo(...points[0]);
  for (const p of points.slice(1)) pctx.lineTo(...p);
  if (points.length === 1) pctx.lineTo(points[0][0] + 0.1, points[0][1]);
  pctx.stroke(); drawn = true;
}
let last = null;
const at = e => { const r = pad.getBoundingClientRect(); return [(e.clientX - r.left) * pad.width / r.width, (e.clientY - r.top) * pad.height / r.height]; };
pad.addEventListener("pointerdown", e => { pad.setPointerCapture(e.pointerId); last = at(e); stroke([last]); ask(); e.preventDefault(); });
pad.addEventListener("pointermove", e => { if (!last) return; const p = at(e); stroke([last, p]); last = p; ask(); e.preventDefault(); });
for (const ev of ["pointerup", "pointercancel"]) pad.addEventListener(ev, () => { if (last) { last = null; ask(); } });
document.getElementById("clear").onclick = () => { clearPad(); trace = null; showTrace(); };
document.getElementById("model").onchange = () => ask();
document.getElementById("label").onchange = () => ask();
document.getElementById("label").innerHTML += [...Array(10).keys()].map(i => `<option value="${i}">${i}</option>`).join("");

// A 7, so that the step-by-step view has a sample before anyone draws.
function ensureDrawing() {
  if (!drawn && document.getElementById("model").options.length) {
    stroke([[70, 60], [210, 60], [120, 230]]);
    const lab = document.getElementById("label");
    if (lab.value === "") lab.value = "7"; // the truth of the sample drawn here
    ask();
  }
}

// The pad, averaged down to 56×56 gray values in 0..1.
function pixels() {
  const n = 56, small = document.createElement("canvas");
  small.width = n; small.height = n;
  const c = small.getContext("2d");
  c.drawImage(pad, 0, 0, n, n);
  const d = c.getImageData(0, 0, n, n).data, out = new Array(n * n);
  for (let i = 0; i < n * n; i++) out[i] = Math.round(d[4 * i] / 255 * 1000) / 1000;
  return { width: n, height: n, pixels: out };
}

// At most one request in flight; the latest drawing is sent when it returns.
async function ask() {
  const model = document.getElementById("model").value;
  if (!model || !drawn) return;
  if (inFlight) { again = true; return; }
  inFlight = true;
  const st = document.getElementById("trace-status");
  try {
    const lab = document.getElementById("label").value;
    const body = { model, ...pixels(), label: lab === "" ? null : +lab };
    const r = await fetch("/api/trace", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
    if (r.ok) { trace = await r.json(); snapshotAt = null; st.textContent = `model ${trace.model}: ${trace.spec}` + (padNote ? ` · ${padNote}` : ""); st.classList.remove("err"); }
    else { if (!trace || !trace.text) trace = null; st.textContent = await r.text(); st.classList.add("err"); }
  } catch (e) { st.textContent = "the server does not answer (" + e + ")"; st.classList.add("err"); }
  inFlight = false;
  showTrace();
  if (again) { again = false; ask(); }
}

function showTrace() {
  const g = document.getElementById("guess"), probs = document.getElementById("probs"), acts = document.getElementById("acts");
  const seen = document.getElementById("seen").getContext("2d");
  if (!trace) { g.textContent = "–"; g.dataset.class = ""; probs.innerHTML = ""; acts.innerHTML = ""; seen.clearRect(0, 0, 28, 28); steps(); return; }
  g.textContent = trace.class; g.dataset.class = trace.class;
  const p = trace.probabilities;
  probs.innerHTML = p.map((v, i) => `<span>${i}</span><div class="bar${i === trace.class ? " top" : ""}" style="width:${(100 * v).toFixed(1)}%"></div><span>${(100 * v).toFixed(1)}%</span>`).join("");
  seen.drawImage(heat(trace.image, 28, 28, true), 0, 0);
  acts.innerHTML = "";
  for (const l of trace.layers) {
    const n = trace.nodes[l.node], v = n.value, shape = v.shape;
    const div = document.createElement("div"); div.className = "layer";
    div.innerHTML = `<h3>${esc(l.name)} <small>${esc(l.describe)} → [${shape.join(", ")}]</small></h3>`;
    const box = document.createElement("div");
    if (!v.data) box.innerHTML = `<span class="note">${shape.reduce((a, b) => a * b, 1)} values (norm ${fmt(v.norm)}): too many to draw</span>`;
    else if (shape.length === 4) {
      box.className = "maps";
      const [, c, h, w] = shape, k = Math.min(c, 16), sc = Math.max(1, Math.floor(84 / w));
      for (let i = 0; i < k; i++) box.appendChild(heat(v.data.slice(i * h * w, (i + 1) * h * w), w, h, false, sc));
      if (c > k) box.insertAdjacentHTML("beforeend", `<span class="note">and ${c - k} more maps</span>`);
    } else if (v.data.length > 256) {
      // Many units: a square of pixels (a flattened image stays an image).
      const n = v.data.length, w = Math.ceil(Math.sqrt(n)), h = Math.ceil(n / w);
      box.className = "maps";
      box.appendChild(heat(v.data.concat(new Array(w * h - n).fill(0)), w, h, false, Math.max(1, Math.floor(112 / w))));
    } else {
      const m = Math.max(1e-12, ...v.data.map(Math.abs));
      box.className = "units";
      box.innerHTML = v.data.slice(0, 1024).map((x, i) => { const [r, gg, b] = color(x / m); return `<span title="unit ${i}: ${fmt(x)}" style="background:rgb(${r},${gg},${b})"></span>`; }).join("");
    }
    div.appendChild(box); acts.appendChild(div);
  }
  steps(true);
}


// An image file dropped on the pad (or opened): fitted into it in grey,
// light on dark as MNIST's digits are (a dark digit on a light background,
// as a photo or a scan has it, is inverted), then read like a drawing.
async function padImage(file) {
  const st = document.getElementById("trace-status");
  let bmp;
  try { bmp = await createImageBitmap(file); } catch (e) { st.textContent = `${file.name}: not an image this browser can read`; st.classList.add("err"); return; }
  const s = Math.min(pad.width / bmp.width, pad.height / bmp.height), w = bmp.width * s, h = bmp.height * s;
  const tmp = document.createElement("canvas");
  tmp.width = pad.width; tmp.height = pad.height;
  const t = tmp.getContext("2d");
  t.drawImage(bmp, (pad.width - w) / 2, (pad.height - h) / 2, w, h);
  const img = t.getImageData(0, 0, pad.width, pad.height), d = img.data;
  // grey values of the image's own pixels (the margins left by fitting it stay out of the mean)
  let sum = 0, n = 0;
  for (let i = 0; i < d.length; i += 4) {
    const g = 0.299 * d[i] + 0.587 * d[i + 1] + 0.114 * d[i + 2];
    d[i] = d[i + 1] = d[i + 2] = g;
    if (d[i + 3] > 0) { sum += g; n++; }
  }
  const invert = n && sum / n > 127;
  for (let i = 0; i < d.length; i += 4) {
    const g = d[i + 3] > 0 ? (invert ? 255 - d[i] : d[i]) : 0;
    d[i] = d[i + 1] = d[i + 2] = g; d[i + 3] = 255;
  }
  pctx.putImageData(img, 0, 0);
  drawn = true;
  padNote = `${file.name}${invert ? " (inverted: a dark digit on a light background)" : ""}`;
  st.textContent = padNote;
  ask();
}
pad.addEventListener("dragover", e => e.preventDefault());
pad.addEventListener("drop", e => { e.preventDefault(); const f = e.dataTransfer.files[0]; if (f) padImage(f); });
document.getElementById("pad-file").onchange = e => { const f = e.target.files[0]; if (f) padImage(f); };
