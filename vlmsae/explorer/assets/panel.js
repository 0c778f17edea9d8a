"use strict";
// The selected atom's panel: its numbers, top items of each modality, activation histogram,
// nearest atoms by decoder cosine and bridge partners (links select those atoms).
(function (V) {
  const LABELS = {
    atom_kind: "kind", energy: "energy", frequency: "frequency",
    modality_score: "modality score", stability: "stability",
    classifier_accuracy: "classifier accuracy", name: "name",
    name_score: "name cosine", runner_up: "runner-up name",
  };

  function stats(run, atom) {
    const list = V.el("dl", { class: "stats" });
    for (const [key, values] of Object.entries(run.columns)) {
      list.append(V.el("dt", {}, LABELS[key] || key), V.el("dd", {}, V.format(values[atom])));
    }
    if (run.stability_seeds && "stability" in run.columns) {
      const seeds = `${run.stability_seeds} other seed${run.stability_seeds > 1 ? "s" : ""}`;
      list.append(V.el("dt", {}, "stability over"), V.el("dd", {}, seeds));
    }
    return list;
  }

  function itemLabel(store, role, position) {
    const items = store.items[role];
    if (role === "text" && items.captions && items.captions[position] !== null) {
      return items.captions[position];
    }
    if (role === "image" && items.sources && items.sources[position] !== null) {
      return items.sources[position].split("/").pop();  // the whole path is the tooltip
    }
    return `${store.modalities[role === "image" ? 0 : 1]} row ${items.rows[position]}`;
  }

  function itemTitle(store, role, position) {
    const sources = store.items[role].sources;
    const source = sources && sources[position] !== null ? `${sources[position]}, ` : "";
    const modality = store.modalities[role === "image" ? 0 : 1];
    return `${source}${modality} row ${store.items[role].rows[position]}`;
  }

  function topItems(store, run, atom, role) {
    const k = run.top.k;
    const list = V.el("ol", { class: "top-items", "data-modality": role });
    for (let j = 0; j < k; j++) {
      const position = run.top[role].items[atom * k + j];
      if (position < 0) break;
      const thumbs = store.items[role].thumbs;
      const thumb = thumbs && thumbs[position]
        ? V.el("img", { src: thumbs[position], alt: "", loading: "lazy" }) : null;
      list.append(V.el("li", {},
        V.el("span", { class: "value" }, V.format(run.top[role].values[atom * k + j])),
        thumb, V.el("span", { class: "label", title: itemTitle(store, role, position) },
          itemLabel(store, role, position))));
    }
    if (!list.children.length) {
      return V.el("p", { class: "empty" }, "never active on these eval rows");
    }
    return list;
  }

  // Counts of non-zero activations per bin, one bar pair (first modality, text) per bin.
  function histogram(store, run, atom) {
    const hist = run.hist;
    const bins = hist.bins;
    const counts = ["image", "text"].map((m) => hist[m].slice(atom * bins, (atom + 1) * bins));
    const top = Math.max(1, ...counts[0], ...counts[1]);
    const [width, height, base] = [380, 90, 72];
    const bar = width / bins;
    const svg = V.el("svg", {
      class: "histogram", width, height, viewBox: `0 0 ${width} ${height}`,
    });
    const colours = [V.scoreColour(1), V.scoreColour(0)];
    counts.forEach((series, m) => series.forEach((count, b) => {
      const h = (count / top) * (base - 6);
      svg.append(V.el("rect", {
        x: b * bar + 1 + (m * (bar - 2)) / 2, y: base - h, width: (bar - 2) / 2, height: h,
        fill: colours[m],
      }, V.el("title", {}, `${store.modalities[m]}: ${count}`)));
    }));
    svg.append(V.el("line", { x1: 0, x2: width, y1: base, y2: base, stroke: "#999" }));
    svg.append(V.el("text", { x: 0, y: height - 4 }, V.format(hist.lo[atom])));
    svg.append(V.el("text", { x: width, y: height - 4, "text-anchor": "end" },
      V.format(hist.hi[atom])));
    svg.append(V.el("text", { x: width / 2, y: height - 4, "text-anchor": "middle" },
      `activation (${store.modalities[0]} | ${store.modalities[1]}); max count ${top}`));
    return svg;
  }

  function links(entries, select) {
    if (!entries.length) return V.el("p", { class: "empty" }, "none");
    return V.el("div", { class: "links" }, ...entries.map(([atom, text]) => V.el("button", {
      type: "button", "data-atom": atom, onclick: () => select(atom),
    }, text)));
  }

  function neighbours(run, atom, select) {
    const k = run.neighbours.k;
    const entries = [];
    for (let j = 0; j < k; j++) {
      const other = run.neighbours.atoms[atom * k + j];
      entries.push([other, `${other} (cos ${V.format(run.neighbours.cosine[atom * k + j])})`]);
    }
    return links(entries, select);
  }

  // A partner fires on the other modality of the pair (side), or is the atom itself (both).
  function partners(store, run, atom, select) {
    const [first, second] = store.modalities;
    const sides = { image: `on ${first}`, text: `on ${second}`, both: `${first} to ${second}` };
    const entries = (run.partners[atom] || []).map((p) => [p.atom,
      `${p.side === "both" ? "itself" : p.atom} (${sides[p.side]}) · B ${V.format(p.bridge)}` +
      (V.isMissing(p.cosine) ? "" : ` · cos ${V.format(p.cosine)}`) +
      (p.form ? ` · ${p.form}` : "")]);
    return links(entries, select);
  }

  V.renderPanel = function (container, store, run, atom, select) {
    const name = run.columns.name ? run.columns.name[atom] : null;
    container.replaceChildren(
      V.el("h2", { "data-atom": atom }, `atom ${atom}`, name ? ` · ${name}` : null),
      V.el("p", { class: "hint" }, `run ${run.id}`),
      stats(run, atom),
      V.el("h3", {}, `top ${store.modalities[0]} items`), topItems(store, run, atom, "image"),
      V.el("h3", {}, `top ${store.modalities[1]} items`), topItems(store, run, atom, "text"),
      V.el("h3", {}, "activation histogram"), histogram(store, run, atom),
      V.el("h3", {}, "nearest atoms (decoder cosine)"), neighbours(run, atom, select),
      V.el("h3", {}, "bridge partners"), partners(store, run, atom, select),
    );
  };
})(window.VLMSAE);
