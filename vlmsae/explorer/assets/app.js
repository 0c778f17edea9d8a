"use strict";
// The page: run selectors, search and kind filter, deep links (#run=...&atom=...), and the
// wiring of table, map and panel. Problems are shown on the page, never as a blank one.
(function (V) {
  const $ = (id) => document.getElementById(id);
  const state = { run: null, atom: null };
  const runs = {};  // id -> prepared run data
  const api = window.VLMSAE_EXPLORER = { state, timings: {} };

  function showMessage(text) {
    const box = $("message");
    box.textContent = text || "";
    box.hidden = !text;
  }

  window.addEventListener("error", (event) => showMessage(`Error: ${event.message}`));

  // Bridge partners of every atom, from the run's bridge_top rows.
  function prepare(data) {
    const partners = {};
    const b = data.bridge;
    const n = b.atom_image ? b.atom_image.length : 0;
    const add = (atom, entry) => (partners[atom] = partners[atom] || []).push(entry);
    for (let i = 0; i < n; i++) {
      const common = {
        bridge: b.bridge ? b.bridge[i] : null, cosine: b.cosine ? b.cosine[i] : null,
        form: b.form ? b.form[i] : null,
      };
      // Row i bridges atom_image (firing on images) to atom_text (on the paired captions).
      if (b.atom_image[i] === b.atom_text[i]) {
        add(b.atom_image[i], { atom: b.atom_image[i], side: "both", ...common });
      } else {
        add(b.atom_image[i], { atom: b.atom_text[i], side: "text", ...common });
        add(b.atom_text[i], { atom: b.atom_image[i], side: "image", ...common });
      }
    }
    data.partners = partners;
    return data;
  }

  async function loadRun(id) {
    if (!runs[id]) {
      const entry = api.store.runs.find((r) => r.id === id);
      await V.loadScript(entry.file);
      runs[id] = prepare(window.VLMSAE_RUNS[id]);
    }
    return runs[id];
  }

  function fillSelectors() {
    const all = api.store.runs;
    for (const key of ["variant", "mixture", "seed"]) {
      const values = [...new Set(all.map((r) => String(r[key])))];
      $(`select-${key}`).replaceChildren(...values.map((v) => V.el("option", { value: v }, v)));
      $(`select-${key}`).addEventListener("change", () => chooseRun(key));
    }
  }

  function showSelectors(run) {
    for (const key of ["variant", "mixture", "seed"]) $(`select-${key}`).value = String(run[key]);
  }

  // The run's health (vlmsae.health) beside its selectors: "ok", or its flags with their numbers
  // highlighted, so a broken SAE is not read as a result; hidden when the run has none.
  function showHealth(id) {
    const health = api.store.runs.find((r) => r.id === id).health;
    const box = $("run-health");
    box.hidden = health === null || health === undefined;
    box.textContent = `health: ${health}`;
    box.classList.toggle("flagged", health !== "ok");
  }

  // The run of the changed selector's value that agrees most with the other two selectors.
  function chooseRun(changed) {
    const wanted = {};
    for (const key of ["variant", "mixture", "seed"]) wanted[key] = $(`select-${key}`).value;
    const score = (r) => ["variant", "mixture", "seed"]
      .filter((key) => String(r[key]) === wanted[key]).length;
    const candidates = api.store.runs.filter((r) => String(r[changed]) === wanted[changed]);
    const best = candidates.reduce((a, r) => (score(r) > score(a) ? r : a), candidates[0]);
    open(best.id, state.atom);
  }

  function kindOptions(run) {
    const select = $("filter-kind");
    const current = select.value;
    const kinds = run.columns.atom_kind ? [...new Set(run.columns.atom_kind)].sort() : [];
    select.replaceChildren(V.el("option", { value: "" }, "all"),
      ...kinds.map((k) => V.el("option", { value: k }, k)));
    select.value = kinds.includes(current) ? current : "";
  }

  // Atoms passing the search (a caption among its top text items, its name or its id) and the
  // kind filter; null when neither is set.
  function filterMask(run) {
    const query = $("search").value.trim().toLowerCase();
    const kind = $("filter-kind").value;
    if (!query && !kind) return null;
    const n = run.n_atoms;
    const mask = new Uint8Array(n).fill(1);
    if (kind) for (let a = 0; a < n; a++) mask[a] = run.columns.atom_kind[a] === kind ? 1 : 0;
    if (query) {
      const captions = api.store.items.text.captions || [];
      const hit = captions.map((c) => c !== null && c.toLowerCase().includes(query));
      const k = run.top.k;
      const items = run.top.text.items;
      const names = run.columns.name;
      for (let a = 0; a < n; a++) {
        if (!mask[a]) continue;
        let found = String(a) === query || (names && names[a] !== null
          && String(names[a]).toLowerCase().includes(query));
        for (let j = 0; j < k && !found; j++) {
          found = items[a * k + j] >= 0 && hit[items[a * k + j]];
        }
        mask[a] = found ? 1 : 0;
      }
    }
    return mask;
  }

  function applyFilter() {
    const run = runs[state.run];
    const mask = filterMask(run);
    const shown = mask ? mask.reduce((s, v) => s + v, 0) : run.n_atoms;
    $("count").textContent = `${shown} of ${run.n_atoms} atoms`;
    api.table.setMask(mask);
    api.map.setMask(mask);
  }

  function select(atom, updateHash = true) {
    const run = runs[state.run];
    state.atom = atom;
    api.table.select(atom);
    api.map.select(atom);
    if (atom === null) {
      $("panel").replaceChildren(V.el("p", { class: "hint" },
        "Select an atom on the map or in the table."));
    } else {
      V.renderPanel($("panel"), api.store, run, atom, (other) => select(other));
    }
    if (updateHash) history.replaceState(null, "", V.formatHash(state.run, atom));
  }
  api.select = (atom) => select(atom);

  // Parse an atom id of a deep link: the atom, or null with a message when it is not in the run.
  function checkedAtom(text, run) {
    if (text === null || text === undefined || text === "") return null;
    const atom = Number(text);
    if (!Number.isInteger(atom) || atom < 0 || atom >= run.n_atoms) {
      showMessage(`Atom "${text}" is not in run ${run.id}: it has ${run.n_atoms} atoms ` +
        `(0 to ${run.n_atoms - 1}). Pick one on the map or in the table.`);
      return null;
    }
    return atom;
  }

  async function open(id, atomText) {
    let run;
    try {
      run = await loadRun(id);
    } catch (error) {
      showMessage(error.message);
      return;
    }
    const changed = state.run !== id;
    state.run = id;
    showSelectors(run);
    showHealth(id);
    if (changed) {
      kindOptions(run);
      api.table.setRun(run);
      api.map.setRun(run);
      applyFilter();
    }
    const atom = checkedAtom(atomText, run);
    select(atom, atom !== null || atomText === null || atomText === undefined);
  }

  // Open what the location's hash names; an unknown run falls back to the first, with a message.
  function openHash() {
    showMessage("");
    const link = V.parseHash(location.hash);
    const all = api.store.runs;
    let id = link.run;
    if (!all.some((r) => r.id === id)) {
      if (id) showMessage(`Run "${id}" is not in this explorer; showing ${all[0].id}.`);
      id = all[0].id;
    }
    return open(id, link.atom);
  }

  async function boot() {
    api.store = window.VLMSAE_STORE;
    if (!api.store || !api.store.runs || !api.store.runs.length) {
      showMessage("data/store.js is missing or holds no run: rebuild the explorer (snakemake).");
      return;
    }
    api.table = new V.AtomTable($("table"), (atom) => select(atom));
    api.map = new V.AtomMap($("map"), (atom) => select(atom));
    fillSelectors();
    $("search").addEventListener("input", applyFilter);
    $("filter-kind").addEventListener("change", applyFilter);
    $("map-reset").addEventListener("click", () => api.map.reset());
    $("map-legend").replaceChildren("text", V.el("span", {
      class: "bar", style: `background:linear-gradient(90deg,${V.scoreColour(0)},` +
        `${V.scoreColour(0.5)},${V.scoreColour(1)})`,
    }), `${api.store.modalities[0]} (modality score) · grey: dead`);
    window.addEventListener("hashchange", openHash);
    await openHash();
    await V.nextFrame();
    api.timings.firstPaint = performance.now();
    document.body.dataset.ready = "true";
  }

  api.ready = boot();
})(window.VLMSAE);
