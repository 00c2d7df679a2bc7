"use strict";
// The tabs, the run and model lists, and the start.
// ---- tabs
for (const b of document.querySelectorAll("nav button")) {
  b.onclick = () => {
    for (const o of document.querySelectorAll("nav button")) o.classList.toggle("on", o === b);
    for (const t of document.querySelectorAll(".tab")) t.hidden = t.id !== "tab-" + b.dataset.tab;
    if (b.dataset.tab === "draw" || (b.dataset.tab === "steps" && !trace)) ensureDrawing();
    if (b.dataset.tab === "text" && !textTrace) readText();
    if (b.dataset.tab === "playground") openPlayground();
    if (b.dataset.tab === "training") { draw(); drawCompare(); }
    window.dispatchEvent(new Event("resize")); // charts drawn while hidden take their width
  };
}
document.getElementById("hist-layer").onchange = () => draw();
document.getElementById("smooth").oninput = e => {
  smoothing = +e.target.value;
  document.getElementById("smooth-v").textContent = smoothing ? smoothing.toFixed(2) : "off";
  draw();
};

async function loadModels(prefer) {
  const m = await (await fetch("/api/models")).json();
  const names = (m.live ? ["(live)"] : []).concat(m.models);
  const sel = document.getElementById("model"), keep = sel.value;
  if (sel.dataset.names === names.join("\n")) return;
  sel.dataset.names = names.join("\n");
  sel.innerHTML = names.map(n => `<option>${esc(n)}</option>`).join("") || `<option value="">no saved model yet</option>`;
  if (names.includes(keep)) sel.value = keep; else if (names.includes(prefer)) sel.value = prefer;
  const ts = document.getElementById("t-model"), tkeep = ts.value;
  ts.innerHTML = sel.innerHTML;
  ts.value = names.includes(tkeep) ? tkeep : sel.value;
}
(async () => {
  const list = await (await fetch("/api/runs")).json();
  const sel = document.getElementById("run");
  const names = (list.live ? ["(live)"] : []).concat(list.runs);
  sel.innerHTML = names.map(n => `<option>${n.replace(/</g, "&lt;")}</option>`).join("");
  sel.onchange = () => { show(sel.value); loadModels(sel.value === "(live)" ? "(live)" : sel.value); };
  if (names.length) show(names[0]); else document.getElementById("status").textContent = "no runs in this folder";
  pickRuns(names, names[0]);
  // Runs saved later appear in the list (the one shown stays selected).
  setInterval(async () => {
    const l = await (await fetch("/api/runs")).json();
    const now = (l.live ? ["(live)"] : []).concat(l.runs), keep = sel.value;
    if (now.join("\n") === names.join("\n")) return;
    names.splice(0, names.length, ...now);
    sel.innerHTML = names.map(n => `<option>${n.replace(/</g, "&lt;")}</option>`).join("");
    if (names.includes(keep)) sel.value = keep; else if (names.length && !keep) show(names[0]);
    pickRuns(names, sel.value);
    loadModels(sel.value);
  }, 5000);
  await loadModels(names[0]);
  // A run in progress has a model to draw with after its first steps.
  // and the guess follows the run's weights as they change.
  if (list.live) setInterval(async () => {
    await loadModels(document.getElementById("model").value || "(live)");
    // the drawing follows the run; the step-by-step view keeps its snapshot
    if (document.getElementById("model").value === "(live)" && !document.getElementById("tab-draw").hidden) ask();
  }, 3000);
})();
// A link to the playground opens it.
if (location.hash.startsWith("#playground")) document.querySelector('nav button[data-tab="playground"]').click();
// A playground link pasted into this page's address bar.
window.addEventListener("hashchange", () => {
  if (!location.hash.startsWith("#playground")) return;
  document.querySelector('nav button[data-tab="playground"]').click();
  const step = pgFromUrl();
  pgDescribe();
  pgReset(step);
});
