"use strict";
// A text through a language model: next-character predictions and attention maps.
// ---- a text through a language model
let textTrace = null, textPos = null;
// One attention node: a heat map per head, T×T, bright where the weight is high.
function attentionMaps(a, chars) {
  const wrap = document.createElement("div"); wrap.className = "layer";
  const t = a.t, sc = Math.max(2, Math.min(12, Math.floor(240 / t)));
  wrap.innerHTML = `<h3>${esc(a.block || "attention")} <small>attention weights of node ${a.node}, ${a.heads} heads, ${t}×${t}: row i is how position i (${chars ? "reading “" + esc(chars.join("")).slice(0, 40) + "”" : ""}) spreads its attention over positions 0..i</small></h3>`;
  const heads = document.createElement("div"); heads.className = "heads";
  for (let h = 0; h < a.heads; h++) {
    const f = document.createElement("figure");
    const w = a.weights.slice(h * t * t, (h + 1) * t * t);
    const cv = heat(w.map(v => Math.sqrt(v)), t, t, true, sc);
    cv.title = "√weight, so that small weights show";
    cv.onmousemove = e => { const r = cv.getBoundingClientRect(), j = Math.floor((e.clientX - r.left) / r.width * t), i = Math.floor((e.clientY - r.top) / r.height * t);
      if (i >= 0 && j >= 0 && i < t && j < t) cv.title = `head ${h}: position ${i}${chars ? " “" + chars[i] + "”" : ""} reads ${j}${chars ? " “" + chars[j] + "”" : ""} with weight ${fmt(w[i * t + j])}`; };
    f.appendChild(cv); f.insertAdjacentHTML("beforeend", `<figcaption>head ${h}</figcaption>`);
    heads.appendChild(f);
  }
  wrap.appendChild(heads);
  return wrap;
}
function showText() {
  const chars = document.getElementById("t-chars"), next = document.getElementById("t-next"), attn = document.getElementById("t-attn");
  if (!textTrace) { chars.innerHTML = next.innerHTML = attn.innerHTML = ""; return; }
  const tt = textTrace, vis = c => c === "\n" ? "⏎" : c === " " ? "␣" : c;
  if (textPos === null || textPos >= tt.text.length) textPos = tt.text.length - 1;
  chars.innerHTML = tt.text.map((c, i) => `<span data-i="${i}" class="${i === textPos ? "sel" : ""}" title="position ${i}: then “${esc(vis(tt.targets[i]))}”">${esc(vis(c))}</span>`).join("");
  for (const s of chars.children) s.onclick = () => { textPos = +s.dataset.i; showText(); };
  next.innerHTML = `<span></span><b>after “${esc(tt.text.slice(Math.max(0, textPos - 12), textPos + 1).join("").replace(/\n/g, "⏎"))}”</b><span></span>` +
    tt.next[textPos].map(([c, p]) => `<span>${esc(vis(c))}</span><div class="bar${c === tt.targets[textPos] ? " top" : ""}" style="width:${(100 * p).toFixed(1)}%"></div><span>${(100 * p).toFixed(1)}%</span>`).join("") +
    `<span></span><span class="note">the text goes on with “${esc(vis(tt.targets[textPos]))}”</span><span></span>`;
  attn.innerHTML = "";
  if (!tt.attention.length) attn.innerHTML = `<p class="note">this model has no attention (an LSTM or GRU reads the text one step at a time)</p>`;
  for (const a of tt.attention) attn.appendChild(attentionMaps(a, tt.text));
}
async function readText() {
  const model = document.getElementById("t-model").value, text = document.getElementById("t-text").value;
  const st = document.getElementById("t-status");
  if (!model) { st.textContent = "no saved model in this folder yet"; return; }
  st.textContent = "reading…"; st.classList.remove("err");
  try {
    const r = await fetch("/api/trace_text", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ model, text }) });
    if (r.ok) { textTrace = await r.json(); st.textContent = `${textTrace.spec}: loss ${fmt(textTrace.loss)} nats per character over ${textTrace.text.length} predictions`; }
    else { textTrace = null; st.textContent = await r.text(); st.classList.add("err"); }
  } catch (e) { textTrace = null; st.textContent = "the server does not answer (" + e + ")"; st.classList.add("err"); }
  showText();
}
document.getElementById("t-go").onclick = readText;
document.getElementById("t-text").onkeydown = e => { if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) readText(); };
document.getElementById("t-model").onchange = readText;
document.getElementById("t-steps").onclick = () => {
  if (!textTrace) return;
  trace = textTrace; visit = 0; steps(true);
  document.querySelector('nav button[data-tab="steps"]').click();
};

