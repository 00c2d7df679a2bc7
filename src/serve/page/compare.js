"use strict";
// Compare runs: saved runs' test curves per epoch on the same axes, and a
// table of their settings and final figures.

const compared = new Set(), runCache = {};
let compareNames = [];

// A saved run's header, rows and info, read once (`fresh`: read again, for
// the run on view, which may still be growing).
async function runData(name, fresh) {
  if (!runCache[name] || fresh) {
    runCache[name] = (async () => {
      const [r, i] = await Promise.all([fetch(`/api/runs/${encodeURIComponent(name)}/metrics.csv`), fetch(`/api/runs/${encodeURIComponent(name)}/info`)]);
      const lines = r.ok ? (await r.text()).split("\n").filter(l => l.length) : [];
      const head = lines.length ? lines.shift().split(",") : [];
      return { name, ok: r.ok, head, rows: lines.map(l => parseRow(head, l)), info: i.ok ? await i.json() : null };
    })();
  }
  return runCache[name];
}

// The checkboxes, one per saved run; `shown` (the run on view) is ticked
// the first time.
function pickRuns(names, shown) {
  compareNames = names.filter(n => n !== "(live)");
  for (const n of [...compared]) if (!compareNames.includes(n)) compared.delete(n);
  // At first, the run shown and the folder's first runs (up to five).
  if (!compared.size) for (const n of [shown, ...compareNames]) if (compareNames.includes(n) && compared.size < 5) compared.add(n);
  const box = document.getElementById("compare-pick");
  box.innerHTML = compareNames.map(n => `<label><input type="checkbox" value="${esc(n)}"${compared.has(n) ? " checked" : ""}> ${esc(n)}</label>`).join("")
    || `<span class="note">no saved runs in this folder yet</span>`;
  for (const c of box.querySelectorAll("input")) c.onchange = () => { c.checked ? compared.add(c.value) : compared.delete(c.value); drawCompare(); };
  drawCompare();
}

let comparing = 0;
async function drawCompare() {
  const ticket = ++comparing;
  const runs = await Promise.all(compareNames.filter(n => compared.has(n)).map(runData));
  if (ticket !== comparing) return; // a newer call draws
  const color = i => LAYER_COLORS[i % LAYER_COLORS.length];
  const per = c => runs.map((r, i) => ({ name: r.name, color: color(i), points: r.rows.filter(x => x.kind === "epoch").map(x => [x.epoch, x[c]]) }));
  const empty = "tick runs above to compare them";
  chart("cmp-loss", per("test_loss"), { xlabel: "epoch", whole: true, empty, log: document.getElementById("loss-log").checked });
  chart("cmp-acc", per("test_accuracy"), { xlabel: "epoch", whole: true, empty });
  const cell = v => `<td>${v === null || v === undefined ? "" : esc(v)}</td>`;
  const head = ["run", "model", "optimizer", "lr", "batch", "epochs", "seed", "init", "test loss", "test accuracy", "training time", "samples/s"];
  const body = runs.map((r, i) => {
    const f = r.info || {}, c = f.config || {}, o = c.optimizer || {}, recs = f.records || [], last = recs[recs.length - 1] || {};
    const ep = r.rows.filter(x => x.kind === "epoch"), e = ep[ep.length - 1] || {};
    return `<tr><td><span style="color:${color(i)}">■</span> ${esc(r.name)}</td><td class="model">${esc(f.model || "")}</td>` + [o.kind, fmt(o.lr), c.batch_size, c.epochs, c.seed, f.settings && f.settings.weight_init,
      fmt(e.test_loss), e.test_accuracy === null || e.test_accuracy === undefined ? "" : (100 * e.test_accuracy).toFixed(2) + " %",
      recs.length ? duration(recs.reduce((a, x) => a + x.train_seconds, 0)) : "", last.samples_per_second ? Math.round(last.samples_per_second).toLocaleString("en") : ""].map(cell).join("") + "</tr>";
  });
  document.getElementById("cmp-table").innerHTML = runs.length ? `<tr>${head.map(h => `<th>${h}</th>`).join("")}</tr>` + body.join("") : "";
}
