// The map view of vizwidgets (an anywidget module: no build step, no dependencies).
//
// Python sends the picture (RGB bytes), the map as it is drawn (`heat`, float32 in [0, 1] or
// [-1, 1]), the raw map (`values`, float32) for the hover readout, the non-negative `mass` used
// for the box statistics, and the colour map as a 256-entry lookup table. This module only
// blends and points: opacity, colours and the view mode change here without a kernel call.
// The box statistics mirror MapView.box_stats in mapview.py; a browser test checks they agree.

function floats(view) {
  if (!view || !view.byteLength) return new Float32Array(0);
  const copy = view.buffer.slice(view.byteOffset, view.byteOffset + view.byteLength);
  return new Float32Array(copy);
}

function bytes(view) {
  if (!view || !view.byteLength) return new Uint8Array(0);
  return new Uint8Array(view.buffer, view.byteOffset, view.byteLength);
}

// The same index matplotlib's Colormap takes for a value in [0, 1]: floor(v N), N - 1 at 1.
function lutIndex(v) {
  if (!(v > 0)) return 0;
  if (v >= 1) return 255;
  return Math.min(Math.floor(v * 256), 255);
}

function formatValue(v) {
  if (v === 0) return "0";
  const a = Math.abs(v);
  return a >= 1e-3 && a < 1e4 ? v.toPrecision(4) : v.toExponential(3);
}

// share of the mass inside [left, right) x [top, bottom), and whether the first maximum is inside
export function boxStats(mass, width, height, box) {
  const [left, top, right, bottom] = box;
  let total = 0, inside = 0, best = -Infinity, bestAt = 0;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = y * width + x;
      const m = mass[i];
      total += m;
      if (x >= left && x < right && y >= top && y < bottom) inside += m;
      if (m > best) { best = m; bestAt = i; }
    }
  }
  const peakX = bestAt % width, peakY = Math.floor(bestAt / width);
  const hit = peakX >= left && peakX < right && peakY >= top && peakY < bottom;
  return { share: total > 0 ? inside / total : 0, hit: total > 0 && hit, peak: [peakX, peakY] };
}

function render({ model, el }) {
  const root = document.createElement("div");
  root.className = "vizwidgets-mapview";
  root.style.cssText = "display:inline-flex;flex-direction:column;gap:4px;font:12px sans-serif;";
  const stage = document.createElement("div");
  stage.style.cssText = "position:relative;display:inline-block;line-height:0;cursor:crosshair;user-select:none;";
  const canvas = document.createElement("canvas");
  canvas.className = "vizwidgets-map";
  const marks = document.createElement("canvas");  // the box being dragged or kept
  marks.className = "vizwidgets-marks";
  marks.style.cssText = "position:absolute;left:0;top:0;pointer-events:none;";
  stage.append(canvas, marks);
  const readout = document.createElement("div");
  readout.className = "vizwidgets-readout";
  readout.style.cssText = "min-height:1.4em;white-space:nowrap;";
  const boxLine = document.createElement("div");
  boxLine.className = "vizwidgets-box";
  boxLine.style.cssText = "min-height:1.4em;white-space:nowrap;";
  root.append(stage, readout, boxLine);
  el.appendChild(root);

  const state = { mass: new Float32Array(0), values: new Float32Array(0), drag: null };

  function size() {
    return [model.get("width"), model.get("height")];
  }

  function panes() {
    return model.get("mode") === "side by side" ? 2 : 1;
  }

  function draw() {
    const [w, h] = size();
    if (!w || !h) return;
    const picture = bytes(model.get("picture"));
    const heat = floats(model.get("heat"));
    const lut = bytes(model.get("lut"));
    const mode = model.get("mode");
    const signed = model.get("signed");
    const opacity = model.get("opacity");
    const n = panes();
    const scale = model.get("scale");
    canvas.width = n * w;
    canvas.height = h;
    canvas.style.width = `${n * w * scale}px`;
    canvas.style.height = `${h * scale}px`;
    marks.width = canvas.width;
    marks.height = h;
    marks.style.width = canvas.style.width;
    marks.style.height = canvas.style.height;
    if (picture.length < w * h * 3 || heat.length < w * h || lut.length < 768) return;
    const ctx = canvas.getContext("2d");
    const out = ctx.createImageData(n * w, h);
    const data = out.data;
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        const i = y * w + x;
        const v = heat[i];
        const k = 3 * lutIndex(signed ? (v + 1) / 2 : v);
        const p = 3 * i;
        let o = 4 * (y * n * w + x);
        if (mode === "heatmap") {
          data[o] = lut[k]; data[o + 1] = lut[k + 1]; data[o + 2] = lut[k + 2];
        } else if (mode === "side by side") {
          data[o] = picture[p]; data[o + 1] = picture[p + 1]; data[o + 2] = picture[p + 2];
          data[o + 3] = 255;
          o += 4 * w;
          data[o] = lut[k]; data[o + 1] = lut[k + 1]; data[o + 2] = lut[k + 2];
        } else {  // overlay: (1 - a|v|) picture + a|v| colour, as vizwidgets.viz.overlay
          const a = opacity * Math.abs(v);
          data[o] = Math.round((1 - a) * picture[p] + a * lut[k]);
          data[o + 1] = Math.round((1 - a) * picture[p + 1] + a * lut[k + 1]);
          data[o + 2] = Math.round((1 - a) * picture[p + 2] + a * lut[k + 2]);
        }
        data[o + 3] = 255;
      }
    }
    ctx.putImageData(out, 0, 0);
    canvas.dataset.version = String(model.get("version"));
    canvas.dataset.drawnAt = String(performance.now());  // read by benchmarks/widgets.py --browser
    drawBox();
  }

  function drawBox() {
    const ctx = marks.getContext("2d");
    ctx.clearRect(0, 0, marks.width, marks.height);
    const box = state.drag ? state.drag.box : model.get("box");
    if (!box || box.length !== 4) return;
    const [w] = size();
    ctx.lineWidth = 2;
    for (let pane = 0; pane < panes(); pane++) {
      const [l, t, r, b] = box;
      ctx.strokeStyle = "#000";
      ctx.strokeRect(pane * w + l + 0.5, t + 0.5, r - l - 1, b - t - 1);
      ctx.strokeStyle = "#fff";
      ctx.setLineDash([4, 4]);
      ctx.strokeRect(pane * w + l + 0.5, t + 0.5, r - l - 1, b - t - 1);
      ctx.setLineDash([]);
    }
  }

  function describeBox() {
    const box = model.get("box");
    const [w, h] = size();
    if (!box || box.length !== 4 || !w) {
      boxLine.textContent = "drag a box over the picture: its share of the map's energy, and whether the maximum is in it";
      return;
    }
    const s = boxStats(state.mass, w, h, box);
    boxLine.textContent =
      `box (${box[0]}, ${box[1]})-(${box[2]}, ${box[3]}): ${(100 * s.share).toFixed(1)}% of the map's energy; ` +
      `maximum at (${s.peak[0]}, ${s.peak[1]}): ${s.hit ? "inside (a hit)" : "outside (a miss)"}`;
  }

  // picture coordinates of a mouse event, clamped to the picture
  function at(event) {
    const rect = canvas.getBoundingClientRect();
    const [w, h] = size();
    let x = Math.floor((event.clientX - rect.left) * canvas.width / rect.width);
    let y = Math.floor((event.clientY - rect.top) * canvas.height / rect.height);
    x = Math.max(0, Math.min(canvas.width - 1, x)) % w;
    y = Math.max(0, Math.min(h - 1, y));
    return [x, y];
  }

  function hover(event) {
    const [w, h] = size();
    if (!w) return;
    const [x, y] = at(event);
    const mw = model.get("map_width"), mh = model.get("map_height");
    const mx = Math.min(mw - 1, Math.floor(x * mw / w)), my = Math.min(mh - 1, Math.floor(y * mh / h));
    const value = state.values.length ? state.values[my * mw + mx] : NaN;
    readout.textContent = `x ${x}, y ${y}: value ${formatValue(value)} for ${model.get("label")}`;
    readout.dataset.x = String(x);
    readout.dataset.y = String(y);
    readout.dataset.value = String(value);
    if (state.drag) {
      const [x0, y0] = state.drag.start;
      state.drag.box = [Math.min(x0, x), Math.min(y0, y), Math.max(x0, x) + 1, Math.max(y0, y) + 1];
      drawBox();
    }
  }

  function press(event) {
    if (event.button !== 0) return;
    const start = at(event);
    state.drag = { start, box: [start[0], start[1], start[0] + 1, start[1] + 1] };
    event.preventDefault();
  }

  function release() {
    if (!state.drag) return;
    const box = state.drag.box;
    state.drag = null;
    // a click without a drag clears the box
    const tiny = box[2] - box[0] < 3 && box[3] - box[1] < 3;
    model.set("box", tiny ? [] : box);
    model.save_changes();
    describeBox();
    drawBox();
  }

  function leave() {
    readout.textContent = model.get("hint");
  }

  function newMap() {
    state.mass = floats(model.get("mass"));
    state.values = floats(model.get("values"));
    describeBox();
  }

  stage.addEventListener("mousemove", hover);
  stage.addEventListener("mousedown", press);
  window.addEventListener("mouseup", release);
  stage.addEventListener("mouseleave", leave);
  // several traits change in one message: draw once, at the next frame
  let pending = false;
  const redraw = () => {
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => { pending = false; draw(); });
  };
  const remap = () => { newMap(); redraw(); };
  const rebox = () => { describeBox(); drawBox(); };
  model.on("change:picture", redraw);
  model.on("change:heat", redraw);
  model.on("change:lut", redraw);
  model.on("change:opacity", redraw);
  model.on("change:mode", redraw);
  model.on("change:signed", redraw);
  model.on("change:scale", redraw);
  model.on("change:version", redraw);
  model.on("change:mass", remap);
  model.on("change:values", remap);
  model.on("change:box", rebox);
  newMap();
  draw();
  leave();
  return () => {
    window.removeEventListener("mouseup", release);
  };
}

export default { render };
