"use strict";
// Small helpers every view uses: escaping, number format, colour scales, images on canvases.
const esc = t => String(t).replace(/&/g, "&amp;").replace(/</g, "&lt;");
// Diverging colour for v in [-1, 1]: blue, white, red.
function color(v) {
  const a = Math.max(-1, Math.min(1, v));
  const c = x => Math.round(255 - 200 * x);
  return a >= 0 ? [255, c(a), c(a)] : [c(-a), c(-a), 255];
}
function fmt(v) { return v === null || v === undefined ? "" : (Math.abs(v) >= 1e-3 || v === 0 ? +v.toPrecision(3) : v.toExponential(1)); }

// A w×h canvas of values, scaled by the largest |value| (or gray for an image in 0..1).
function heat(values, w, h, gray, scale, max) {
  const cv = document.createElement("canvas");
  cv.width = w; cv.height = h;
  const ctx = cv.getContext("2d"), img = ctx.createImageData(w, h);
  const m = gray ? 1 : max || Math.max(1e-12, ...values.map(Math.abs));
  for (let i = 0; i < w * h; i++) {
    const [r, g, b] = gray ? [255 * values[i], 255 * values[i], 255 * values[i]] : color(values[i] / m);
    img.data.set([r, g, b, 255], 4 * i);
  }
  ctx.putImageData(img, 0, 0);
  if (scale) { cv.style.width = w * scale + "px"; cv.style.height = h * scale + "px"; }
  return cv;
}
// A [C, H, W] image (grey or RGB) on a canvas, stretched to its own range.
function picture(v, c, h, w, scale) {
  const cv = document.createElement("canvas");
  cv.width = w; cv.height = h;
  const ctx = cv.getContext("2d"), img = ctx.createImageData(w, h);
  let lo = Infinity, hi = -Infinity;
  for (const x of v) { lo = Math.min(lo, x); hi = Math.max(hi, x); }
  const k = 255 / Math.max(1e-6, hi - lo), p = h * w;
  for (let i = 0; i < p; i++) {
    const ch = j => (v[(c === 3 ? j : 0) * p + i] - lo) * k;
    img.data.set([ch(0), ch(1), ch(2), 255], 4 * i);
  }
  ctx.putImageData(img, 0, 0);
  cv.style.width = w * scale + "px"; cv.style.height = h * scale + "px";
  return cv;
}
