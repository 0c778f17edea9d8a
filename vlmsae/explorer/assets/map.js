"use strict";
// The 2-D map of the atoms (UMAP of the decoder rows): a canvas, dragged to pan, wheel to zoom,
// a click selects the nearest atom; colour = modality score, atoms outside the filter faded.
(function (V) {
  const RADIUS = 3;
  const PICK_PIXELS = 10;
  const DRAG_PIXELS = 4;
  const MARGIN = 16;

  class AtomMap {
    constructor(canvas, onSelect) {
      this.canvas = canvas;
      this.onSelect = onSelect;
      this.selected = null;
      this.mask = null;
      this.view = { scale: 1, dx: 0, dy: 0 };
      new ResizeObserver(() => this.resize()).observe(canvas);
      canvas.addEventListener("mousedown", (event) => this.startDrag(event));
      window.addEventListener("mousemove", (event) => this.drag(event));
      window.addEventListener("mouseup", (event) => this.endDrag(event));
      canvas.addEventListener("wheel", (event) => this.zoom(event), { passive: false });
    }

    setRun(run) {
      this.run = run;
      const { x, y } = run.map;
      this.bounds = {
        x0: Math.min(...x), x1: Math.max(...x), y0: Math.min(...y), y1: Math.max(...y),
      };
      this.colours = run.columns.modality_score
        ? Array.from(run.columns.modality_score, V.scoreColour)
        : new Array(run.n_atoms).fill(V.scoreColour(0.5));
      this.reset();
    }

    reset() {
      this.view = { scale: 1, dx: 0, dy: 0 };
      this.draw();
    }

    resize() {
      const ratio = window.devicePixelRatio || 1;
      this.width = this.canvas.clientWidth;
      this.height = this.canvas.clientHeight;
      this.canvas.width = Math.round(this.width * ratio);
      this.canvas.height = Math.round(this.height * ratio);
      this.ratio = ratio;
      this.draw();
    }

    // Data to CSS pixels: fit the bounds into the canvas, then the pan and zoom of the view.
    project(atom) {
      const b = this.bounds;
      const spanX = b.x1 - b.x0 || 1;
      const spanY = b.y1 - b.y0 || 1;
      const fit = Math.min((this.width - 2 * MARGIN) / spanX, (this.height - 2 * MARGIN) / spanY);
      const cx = (this.run.map.x[atom] - (b.x0 + b.x1) / 2) * fit;
      const cy = (this.run.map.y[atom] - (b.y0 + b.y1) / 2) * fit;
      return {
        x: this.width / 2 + cx * this.view.scale + this.view.dx,
        y: this.height / 2 - cy * this.view.scale + this.view.dy,
      };
    }

    setMask(mask) {
      this.mask = mask;
      this.draw();
    }

    // Selecting only redraws the ring over a copy of the points (`base`): p = 8192 arcs cost
    // more than the 200 ms a selection may take on a slow machine.
    select(atom) {
      this.selected = atom;
      this.compose();
    }

    draw() {
      if (!this.run || !this.width) return;
      this.base = this.base || document.createElement("canvas");
      this.base.width = this.canvas.width;
      this.base.height = this.canvas.height;
      const ctx = this.base.getContext("2d");
      ctx.setTransform(this.ratio, 0, 0, this.ratio, 0, 0);
      const n = this.run.n_atoms;
      if (this.mask) {  // atoms outside the filter first, faded, under the others
        ctx.fillStyle = "rgb(232,232,232)";
        for (let atom = 0; atom < n; atom++) {
          if (this.mask[atom]) continue;
          const p = this.project(atom);
          ctx.fillRect(p.x - RADIUS / 2, p.y - RADIUS / 2, RADIUS, RADIUS);
        }
      }
      for (let atom = 0; atom < n; atom++) {
        if (this.mask && !this.mask[atom]) continue;
        const p = this.project(atom);
        ctx.fillStyle = this.colours[atom];
        ctx.beginPath();
        ctx.arc(p.x, p.y, RADIUS, 0, 2 * Math.PI);
        ctx.fill();
      }
      this.compose();
    }

    compose() {
      if (!this.base) return;
      const ctx = this.canvas.getContext("2d");
      ctx.setTransform(1, 0, 0, 1, 0, 0);
      ctx.clearRect(0, 0, this.canvas.width, this.canvas.height);
      ctx.drawImage(this.base, 0, 0);
      if (this.selected === null) return;
      ctx.setTransform(this.ratio, 0, 0, this.ratio, 0, 0);
      const p = this.project(this.selected);
      ctx.strokeStyle = "#111";
      ctx.lineWidth = 2;
      ctx.beginPath();
      ctx.arc(p.x, p.y, RADIUS + 5, 0, 2 * Math.PI);
      ctx.stroke();
    }

    // The visible atom nearest to (x, y) in CSS pixels, within PICK_PIXELS; null if none.
    atomAt(x, y) {
      let best = null;
      let bestDistance = PICK_PIXELS * PICK_PIXELS;
      for (let atom = 0; atom < this.run.n_atoms; atom++) {
        if (this.mask && !this.mask[atom]) continue;
        const p = this.project(atom);
        const distance = (p.x - x) ** 2 + (p.y - y) ** 2;
        if (distance <= bestDistance) {
          best = atom;
          bestDistance = distance;
        }
      }
      return best;
    }

    local(event) {
      const box = this.canvas.getBoundingClientRect();
      return { x: event.clientX - box.left, y: event.clientY - box.top };
    }

    startDrag(event) {
      this.dragging = { start: this.local(event), view: { ...this.view }, moved: false };
    }

    drag(event) {
      if (!this.dragging) return;
      const p = this.local(event);
      const [dx, dy] = [p.x - this.dragging.start.x, p.y - this.dragging.start.y];
      if (Math.hypot(dx, dy) > DRAG_PIXELS) this.dragging.moved = true;
      if (!this.dragging.moved) return;
      this.view.dx = this.dragging.view.dx + dx;
      this.view.dy = this.dragging.view.dy + dy;
      this.draw();
    }

    endDrag(event) {
      const dragging = this.dragging;
      this.dragging = null;
      if (!dragging || dragging.moved || event.target !== this.canvas) return;
      const p = this.local(event);
      const atom = this.atomAt(p.x, p.y);
      if (atom !== null) this.onSelect(atom);
    }

    zoom(event) {
      event.preventDefault();
      const p = this.local(event);
      const factor = Math.exp(-event.deltaY * 0.0015);
      const scale = Math.min(200, Math.max(0.2, this.view.scale * factor));
      const applied = scale / this.view.scale;
      // Keep the point under the cursor in place.
      this.view.dx = p.x - this.width / 2 - (p.x - this.width / 2 - this.view.dx) * applied;
      this.view.dy = p.y - this.height / 2 - (p.y - this.height / 2 - this.view.dy) * applied;
      this.view.scale = scale;
      this.draw();
    }
  }

  V.AtomMap = AtomMap;
})(window.VLMSAE);
