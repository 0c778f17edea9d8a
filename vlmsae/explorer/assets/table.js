"use strict";
// The atom table: sortable by any column, filtered by the app's mask, and virtual (only the
// visible rows exist in the DOM), so p = 8192 atoms paint at once.
(function (V) {
  const ROW_HEIGHT = 24;
  const OVERSCAN = 8;
  const COLUMNS = [
    { key: "atom", label: "atom", width: "58px" },
    { key: "name", label: "name", width: "minmax(80px, 1.4fr)" },
    { key: "atom_kind", label: "kind", width: "84px" },
    { key: "energy", label: "energy", width: "1fr" },
    { key: "frequency", label: "frequency", width: "1fr" },
    { key: "modality_score", label: "modality", width: "1fr" },
    { key: "stability", label: "stability", width: "1fr" },
    { key: "classifier_accuracy", label: "classifier acc.", width: "1fr" },
  ];

  class AtomTable {
    constructor(container, onSelect) {
      this.onSelect = onSelect;
      this.head = V.el("div", { class: "table-head" });
      this.body = V.el("div", { class: "table-body" });
      this.spacer = V.el("div", { class: "table-spacer" });
      this.body.append(this.spacer);
      container.replaceChildren(this.head, this.body);
      this.body.addEventListener("scroll", () => this.schedule());
      this.body.addEventListener("click", (event) => {
        const row = event.target.closest(".atom-row");
        if (row) this.onSelect(Number(row.dataset.atom));
      });
      new ResizeObserver(() => this.schedule()).observe(this.body);
      this.sortKey = "energy";
      this.ascending = false;
      this.selected = null;
      this.mask = null;
    }

    setRun(run) {
      this.run = run;
      this.columns = COLUMNS.filter((c) => c.key === "atom" || c.key in run.columns);
      if (!this.columns.some((c) => c.key === this.sortKey)) this.sortKey = "atom";
      const template = this.columns.map((c) => c.width).join(" ");
      this.head.style.gridTemplateColumns = template;
      this.template = template;
      this.head.replaceChildren(...this.columns.map((c) => V.el("div", {
        "data-key": c.key, title: `sort by ${c.label}`, onclick: () => this.sortBy(c.key),
      }, c.label)));
      this.sort();
    }

    value(key, atom) {
      return key === "atom" ? atom : this.run.columns[key][atom];
    }

    sortBy(key) {
      this.ascending = key === this.sortKey ? !this.ascending : key === "atom";
      this.sortKey = key;
      this.sort();
      if (this.selected !== null) this.select(this.selected);  // keep it in view
    }

    sort() {
      const key = this.sortKey;
      const sign = this.ascending ? 1 : -1;
      const order = Array.from({ length: this.run.n_atoms }, (_, i) => i);
      order.sort((a, b) => {
        const [x, y] = [this.value(key, a), this.value(key, b)];
        if (V.isMissing(x) || V.isMissing(y)) {  // missing values last, either direction
          return V.isMissing(x) - V.isMissing(y) || a - b;
        }
        const c = typeof x === "string" ? x.localeCompare(y) : x - y;
        return sign * c || a - b;
      });
      this.order = order;
      for (const cell of this.head.children) {
        cell.classList.toggle("sorted", cell.dataset.key === key);
        cell.classList.toggle("ascending", this.ascending);
      }
      this.applyMask();
    }

    setMask(mask) {
      this.mask = mask;
      this.body.scrollTop = 0;  // a new filter starts at its first row, or at the selected atom
      this.applyMask();
      if (this.selected !== null) this.select(this.selected);
    }

    applyMask() {
      this.rows = this.mask ? this.order.filter((atom) => this.mask[atom]) : this.order;
      this.version = (this.version || 0) + 1;
      this.spacer.style.height = `${this.rows.length * ROW_HEIGHT}px`;
      this.render();
    }

    select(atom) {
      this.selected = atom;
      const position = this.rows.indexOf(atom);
      if (position >= 0) {
        const top = position * ROW_HEIGHT;
        const view = this.body.clientHeight;
        if (top < this.body.scrollTop || top + ROW_HEIGHT > this.body.scrollTop + view) {
          this.body.scrollTop = Math.max(0, top - view / 3);
        }
      }
      this.render();
    }

    schedule() {
      if (this.pending) return;
      this.pending = requestAnimationFrame(() => {
        this.pending = null;
        this.render();
      });
    }

    // Rows already shown are kept (moved, re-marked), so an element stays the same while its
    // atom is in view; all are rebuilt when the order, filter or run changes.
    render() {
      if (!this.run) return;
      if (this.builtFor !== this.version) {
        this.spacer.replaceChildren();
        this.elements = new Map();
        this.builtFor = this.version;
      }
      const first = Math.max(0, Math.floor(this.body.scrollTop / ROW_HEIGHT) - OVERSCAN);
      const count = Math.ceil(this.body.clientHeight / ROW_HEIGHT) + 2 * OVERSCAN;
      const visible = this.rows.slice(first, first + count);
      const wanted = new Set(visible);
      for (const [atom, element] of this.elements) {
        if (wanted.has(atom)) continue;
        element.remove();
        this.elements.delete(atom);
      }
      visible.forEach((atom, i) => {
        let element = this.elements.get(atom);
        if (!element) {
          element = this.row(atom);
          this.elements.set(atom, element);
          this.spacer.append(element);
        }
        element.style.top = `${(first + i) * ROW_HEIGHT}px`;
        element.classList.toggle("selected", atom === this.selected);
      });
    }

    row(atom) {
      const cells = this.columns.map((c) => {
        const value = this.value(c.key, atom);
        if (c.key === "modality_score") {
          return V.el("div", {}, V.el("span", {
            class: "swatch", style: `background:${V.scoreColour(value)}`,
          }), V.format(value));
        }
        return V.el("div", { title: V.format(value) }, V.format(value));
      });
      return V.el("div", {
        class: "atom-row", "data-atom": atom, style: `grid-template-columns:${this.template}`,
      }, ...cells);
    }
  }

  V.AtomTable = AtomTable;
})(window.VLMSAE);
