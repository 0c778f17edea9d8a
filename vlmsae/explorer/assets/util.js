"use strict";
// Shared helpers of the explorer page; every script adds to the one global VLMSAE.
window.VLMSAE = window.VLMSAE || {};

(function (V) {
  V.isMissing = (value) => value === null || value === undefined || Number.isNaN(value);

  V.format = function (value) {
    if (V.isMissing(value)) return "–";
    if (typeof value !== "number") return String(value);
    if (Number.isInteger(value)) return String(value);
    return Math.abs(value) >= 1e4 || Math.abs(value) < 1e-3 ? value.toExponential(2)
      : value.toPrecision(3);
  };

  // Modality score 0 (text) to 1 (image): blue through green (bimodal) to red, the atom kinds'
  // colours of the figures (matplotlib C0, C2, C3: vlmsae.figures.style); dead atoms grey.
  const STOPS = [[31, 119, 180], [44, 160, 44], [214, 39, 40]];
  V.DEAD_COLOUR = "rgb(200,200,200)";
  V.scoreColour = function (score) {
    if (V.isMissing(score)) return V.DEAD_COLOUR;
    const t = Math.min(1, Math.max(0, score)) * 2;
    const i = Math.min(1, Math.floor(t));
    const f = t - i;
    const [a, b] = [STOPS[i], STOPS[i + 1]];
    const mix = (k) => Math.round(a[k] + (b[k] - a[k]) * f);
    return `rgb(${mix(0)},${mix(1)},${mix(2)})`;
  };

  // el("div", {class: "x", onclick: f}, child, "text", ...): a DOM element; text is never HTML.
  V.el = function (tag, attrs, ...children) {
    const node = document.createElementNS(
      ["svg", "rect", "text", "line", "title"].includes(tag) ? "http://www.w3.org/2000/svg"
        : "http://www.w3.org/1999/xhtml", tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else if (value !== null && value !== undefined) node.setAttribute(key, value);
    }
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : String(child));
    }
    return node;
  };

  // Deep links: #run=<variant/mixture/seedN>&atom=<id>.
  V.parseHash = function (hash) {
    const params = new URLSearchParams(hash.replace(/^#/, ""));
    return { run: params.get("run"), atom: params.get("atom") };
  };
  V.formatHash = function (run, atom) {
    const params = new URLSearchParams();
    if (run) params.set("run", run);
    if (atom !== null && atom !== undefined) params.set("atom", String(atom));
    return "#" + params.toString().replace(/%2F/g, "/");
  };

  // Data files are scripts: browsers refuse fetch() of file:// URLs, never a <script> tag.
  const loading = {};
  V.loadScript = function (src) {
    if (!loading[src]) {
      loading[src] = new Promise((resolve, reject) => {
        const script = document.createElement("script");
        script.src = src;
        script.onload = resolve;
        script.onerror = () => {
          delete loading[src];
          reject(new Error(`${src} did not load: rebuild the explorer (snakemake)`));
        };
        document.head.append(script);
      });
    }
    return loading[src];
  };

  V.nextFrame = () => new Promise((resolve) => requestAnimationFrame(() => resolve()));
})(window.VLMSAE);
