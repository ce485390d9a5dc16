// The lithoseg page: submit photos (or a ZIP) to the job API, follow each job, then draw the
// overlay in the browser from the photo and the class-index mask, so the mask weight slider needs
// no new request. No build step and nothing from the internet: plain ES module, same-origin fetch.
//
// Jobs are submitted with mask_weight=0, so the service's overlay PNG (`?form=png`) is the photo
// exactly as the service decoded it (EXIF orientation, TIFF, 16 bit), pixel for
// pixel with the mask. Every other pixel operation happens here on canvases.

const KEY_STORAGE = "lithoseg.apiKey";
const TERMINAL = new Set(["finished", "failed", "cancelled"]);
const MAX_VIEW_PIXELS = 8_000_000; // the view is drawn at most this large; downloads are full size
const ACTIVE_POLLS = 4; // jobs polled every round (the oldest open ones); the rest every few rounds
const NO_CORE = [236, 236, 236];

const $ = (selector) => document.querySelector(selector);
const jobs = new Map(); // job id -> {id, name, status, record, card, view}
let selected = null;
let pausedUntil = 0; // after a 429, polling waits for the Retry-After

class ApiError extends Error {
  constructor(status, sentence) {
    super(sentence);
    this.status = status;
  }
}

// -- the API --------------------------------------------------------------------------------------

function apiKey() {
  return $("#api-key").value.trim();
}

async function api(path, options = {}) {
  const response = await fetch(path, { ...options, headers: { ...(options.headers || {}), "api-key": apiKey() } });
  if (!response.ok) {
    let sentence = `The service answered ${response.status} ${response.statusText}.`;
    try {
      const body = await response.json();
      if (typeof body.detail === "string") sentence = body.detail;
      else if (body.detail) sentence = JSON.stringify(body.detail);
    } catch {
      // not JSON: keep the status line
    }
    if (response.status === 429) {
      pausedUntil = Date.now() + 1000 * Number(response.headers.get("retry-after") || 2);
    }
    throw new ApiError(response.status, sentence);
  }
  return response;
}

function showError(message) {
  const box = $("#error");
  box.textContent = message;
  box.hidden = !message;
}

function notice(text) {
  const item = document.createElement("li");
  item.textContent = text;
  $("#notices").append(item);
}

function depthFields() {
  const top = $("#top-depth").value.trim();
  const bottom = $("#bottom-depth").value.trim();
  if (!top && !bottom) return null;
  const fields = { top_depth: top, bottom_depth: bottom, depth_unit: $("#depth-unit").value, layout: $("#layout").value };
  const columns = $("#columns").value.trim();
  if (columns) fields.columns = columns;
  return fields;
}

function isArchive(file) {
  return /\.zip$/i.test(file.name) || file.type === "application/zip" || file.type === "application/x-zip-compressed";
}

async function submitFiles(files) {
  showError("");
  if (!apiKey()) {
    showError("Enter your API key first: every request needs the api-key header.");
    return;
  }
  localStorage.setItem(KEY_STORAGE, apiKey());
  const depth = depthFields();
  for (const file of files) {
    const form = new FormData();
    form.append("mask_weight", "0");
    form.append("gate", $("#gate").checked ? "true" : "false");
    try {
      if (isArchive(file)) {
        form.append("archive", file, file.name);
        const answer = await (await api("/predict/batch", { method: "POST", body: form })).json();
        for (const job of answer.jobs) addJob(job.job_id, `${file.name} › ${job.name}`, job.status);
        for (const skip of answer.skipped) notice(`${file.name} › ${skip.name}: ${skip.reason}`);
      } else {
        form.append("file", file, file.name);
        if (depth) for (const [name, value] of Object.entries(depth)) form.append(name, value);
        const answer = await (await api("/predict", { method: "POST", body: form })).json();
        addJob(answer.job_id, file.name, answer.status);
      }
    } catch (error) {
      showError(files.length > 1 ? `${file.name}: ${error.message}` : error.message);
    }
  }
  poll();
}

// -- jobs -----------------------------------------------------------------------------------------

function addJob(id, name, status) {
  if (jobs.has(id)) return;
  const card = document.createElement("li");
  card.className = "job";
  card.dataset.jobId = id;
  card.innerHTML = `<div class="name"></div>
    <div class="line"><span class="status"></span><progress max="1" value="0"></progress><span class="tiles"></span>
    <button type="button" class="cancel">cancel</button></div><p class="reason" hidden></p>`;
  card.querySelector(".name").textContent = name;
  card.querySelector(".cancel").addEventListener("click", (event) => {
    event.stopPropagation();
    cancelJob(id);
  });
  card.addEventListener("click", () => select(id));
  $("#job-list").append(card);
  $("#no-jobs").hidden = true;
  const job = { id, name, status, record: null, card, view: null };
  jobs.set(id, job);
  render(job);
}

function render(job) {
  const { card, record } = job;
  card.dataset.status = job.status;
  card.querySelector(".status").textContent = job.status;
  const bar = card.querySelector("progress");
  if (job.status === "finished") {
    bar.value = 1;
  } else if (record && record.total_tiles) {
    bar.value = record.completed_tiles / record.total_tiles;
  } else {
    bar.removeAttribute("value"); // indeterminate until the job's tiles are planned
  }
  card.querySelector(".tiles").textContent = record && record.progress ? `${record.progress} tiles` : "";
  card.querySelector(".cancel").hidden = TERMINAL.has(job.status);
  const reason = card.querySelector(".reason");
  const rejected = record && record.result && record.result.rejected;
  reason.textContent = job.status === "failed" ? record.error : rejected ? "not a core photo" : "";
  reason.hidden = !reason.textContent;
}

async function cancelJob(id) {
  try {
    await api(`/job/${id}`, { method: "DELETE" });
    const job = jobs.get(id);
    job.status = "cancelled";
    render(job);
  } catch (error) {
    showError(error.message);
  }
}

let polling = false;
let round = 0;

async function poll() {
  if (polling) return;
  polling = true;
  try {
    for (;;) {
      const open = [...jobs.values()].filter((job) => !TERMINAL.has(job.status));
      if (!open.length) break;
      const due = round % 5 === 0 ? open : open.slice(0, ACTIVE_POLLS);
      round += 1;
      if (Date.now() >= pausedUntil) await Promise.all(due.map(refresh));
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
  } finally {
    polling = false;
  }
}

async function refresh(job) {
  try {
    const record = await (await api(`/job/${job.id}`)).json();
    if (record.result) delete record.result.base64; // the overlay comes as a PNG when the job is shown, not kept per job
    job.record = record;
    job.status = record.status;
    render(job);
    if (record.status === "finished" && (selected === null || selected === job.id)) select(job.id);
  } catch (error) {
    if (error.status === 404) {
      job.status = "failed";
      job.record = { error: error.message };
      render(job);
    } else if (error.status !== 429) {
      showError(error.message);
    }
  }
}

// -- the result -----------------------------------------------------------------------------------

async function select(id) {
  const job = jobs.get(id);
  if (!job || job.status !== "finished") return;
  selected = id;
  for (const other of jobs.values()) other.card.classList.toggle("selected", other.id === id);
  try {
    if (!job.view) job.view = await loadView(job);
    show(job);
  } catch (error) {
    showError(error.message);
  }
}

async function fetchBlob(path) {
  return (await api(path)).blob();
}

async function pixels(source, width, height, smooth) {
  // RGBA of an image drawn at width x height; class ids and confidences are read unsmoothed
  const bitmap = await createImageBitmap(source, { colorSpaceConversion: "none", premultiplyAlpha: "none" });
  const canvas = new OffscreenCanvas(width, height);
  const context = canvas.getContext("2d", { willReadFrequently: true });
  context.imageSmoothingEnabled = smooth;
  context.drawImage(bitmap, 0, 0, width, height);
  bitmap.close();
  return context.getImageData(0, 0, width, height).data;
}

async function loadView(job) {
  const result = job.record.result;
  const { width, height } = result.image;
  const scale = Math.min(1, Math.sqrt(MAX_VIEW_PIXELS / (width * height)));
  const w = Math.max(1, Math.round(width * scale));
  const h = Math.max(1, Math.round(height * scale));
  const [photoBlob, maskBlob, heatBlob] = await Promise.all(["png", "mask", "heatmap"].map((form) => fetchBlob(`/job/${job.id}?form=${form}`)));
  const [photo, mask, heat] = await Promise.all([pixels(photoBlob, w, h, true), pixels(maskBlob, w, h, false), pixels(heatBlob, w, h, false)]);
  const csv = result.depth_log ? await fetchBlob(`/job/${job.id}?form=csv`) : new Blob([pixelLogCsv(result.lithology_log)], { type: "text/csv" });
  const record = job.record;
  return {
    width: w,
    height: h,
    photo,
    mask,
    heat,
    photoBlob,
    maskBlob,
    palette: palette(result),
    files: {
      mask: URL.createObjectURL(maskBlob),
      json: URL.createObjectURL(new Blob([JSON.stringify(record, null, 2)], { type: "application/json" })),
      csv: URL.createObjectURL(csv),
    },
  };
}

function palette(result) {
  // class id -> [r, g, b]; colours of the classes present come with the result
  const colours = [];
  for (const [id, name] of Object.entries(result.class_map)) {
    colours[Number(id)] = result.detected_classes[name] || [128, 128, 128];
  }
  return colours;
}

function pixelLogCsv(log) {
  const lines = ["class,class_id,start_px,end_px,start_fraction,end_fraction"];
  for (const i of log.intervals) lines.push([i.class, i.class_id, i.start_px, i.end_px, i.start_fraction, i.end_fraction].join(","));
  return lines.join("\n") + "\n";
}

function blend(target, photo, mask, colours, weight) {
  // (1 - w) photo + w colour on rock pixels; background (class 0) is the photo, as the service draws it
  for (let i = 0; i < target.length; i += 4) {
    const id = mask[i];
    const colour = id ? colours[id] : null;
    if (colour) {
      target[i] = (1 - weight) * photo[i] + weight * colour[0];
      target[i + 1] = (1 - weight) * photo[i + 1] + weight * colour[1];
      target[i + 2] = (1 - weight) * photo[i + 2] + weight * colour[2];
    } else {
      target[i] = photo[i];
      target[i + 1] = photo[i + 1];
      target[i + 2] = photo[i + 2];
    }
    target[i + 3] = 255;
  }
}

function weight() {
  return Number($("#mask-weight").value);
}

function draw(job) {
  const view = job.view;
  const canvas = $("#overlay");
  canvas.width = view.width;
  canvas.height = view.height;
  const context = canvas.getContext("2d");
  const image = context.createImageData(view.width, view.height);
  const rejected = job.record.result.rejected;
  blend(image.data, view.photo, view.mask, view.palette, rejected ? 0 : weight());
  context.putImageData(image, 0, 0);
  $("#mask-weight-value").textContent = weight().toFixed(2);
}

function show(job) {
  const result = job.record.result;
  $("#viewer").hidden = false;
  $("#viewer-title").textContent = job.name;
  const rejected = $("#rejected");
  rejected.hidden = !result.rejected;
  rejected.textContent = result.rejected
    ? `Not a core photo: the content gate scored it ${Number(result.core_score).toFixed(2)}, too low for drill core. ` +
      "Submit it again with the content gate off to segment it anyway."
    : "";
  draw(job);
  legend(result);
  logStrip(result, job.view);
  $("#download-mask").href = job.view.files.mask;
  $("#download-mask").download = `${job.id}-mask.png`;
  $("#download-json").href = job.view.files.json;
  $("#download-json").download = `${job.id}.json`;
  $("#download-csv").href = job.view.files.csv;
  $("#download-csv").download = `${job.id}-log.csv`;
}

function legend(result) {
  const body = $("#legend tbody");
  body.replaceChildren();
  const entries = Object.entries(result.coverage).sort((a, b) => b[1] - a[1]);
  for (const [name, share] of entries) {
    const row = document.createElement("tr");
    row.dataset.class = name;
    const colour = result.detected_classes[name];
    row.innerHTML = `<td><span class="swatch"></span></td><td></td><td>${(100 * share).toFixed(1)} %</td>`;
    row.querySelector(".swatch").style.background = colour ? `rgb(${colour.join(",")})` : "transparent"; // CSSOM: allowed by the CSP
    row.children[1].textContent = name;
    const validation = (result.class_validation || {})[name];
    if (validation && !validation.validated_on_real_photos) {
      const note = document.createElement("span");
      note.className = "unvalidated";
      note.textContent = " · learned from synthetic cores only";
      note.title = "The model was never scored on this class with real labelled photos.";
      row.children[1].append(note);
    }
    body.append(row);
  }
}

const SVG = "http://www.w3.org/2000/svg";

function svgElement(name, attributes, text) {
  const element = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attributes)) element.setAttribute(key, value);
  if (text !== undefined) element.textContent = text;
  return element;
}

function logStrip(result, view) {
  // the log beside the picture: in depth (reading order down the strip) when the job had depths,
  // else along the photo's long side, aligned with the picture
  const figure = $("#log-strip");
  figure.replaceChildren();
  const depth = result.depth_log;
  const log = result.lithology_log;
  const wide = !depth && log.axis === "columns";
  $(".picture").classList.toggle("wide", wide);
  const canvas = $("#overlay");
  const length = wide ? canvas.clientWidth || view.width : canvas.clientHeight || view.height;
  const [across, labels, pad] = [18, depth ? 70 : 0, depth ? 6 : 0]; // pad: room for the first and last depth labels
  const svg = svgElement("svg", wide ? { width: length, height: across } : { width: across + labels, height: length + 2 * pad });
  const colour = (name, id) => (id ? result.detected_classes[name] || [128, 128, 128] : NO_CORE);
  const intervals = depth
    ? depth.intervals.map((i) => ({ ...i, a: (i.from - depth.top) / (depth.bottom - depth.top), b: (i.to - depth.top) / (depth.bottom - depth.top) }))
    : log.intervals.map((i) => ({ ...i, a: i.start_fraction, b: i.end_fraction }));
  for (const i of intervals) {
    const start = i.a * length;
    const size = Math.max(0.5, (i.b - i.a) * length);
    const box = wide ? { x: start, y: 0, width: size, height: across } : { x: 0, y: pad + start, width: across, height: size };
    const rect = svgElement("rect", { ...box, fill: `rgb(${colour(i.class, i.class_id).join(",")})`, "data-class": i.class });
    const where = depth ? `${i.from}–${i.to} ${depth.unit}` : `${i.start_px}–${i.end_px} px`;
    rect.append(svgElement("title", {}, `${i.class}, ${where}`));
    svg.append(rect);
  }
  if (depth) {
    const ticks = 5;
    for (let k = 0; k <= ticks; k += 1) {
      const y = pad + (k / ticks) * length;
      const value = depth.top + (k / ticks) * (depth.bottom - depth.top);
      svg.append(svgElement("line", { x1: across, x2: across + 5, y1: y, y2: y, stroke: "#555" }));
      svg.append(svgElement("text", { x: across + 7, y: y + 4 }, `${Number(value.toFixed(2))} ${depth.unit}`));
    }
  }
  figure.append(svg);
  const found = depth ? `${depth.columns_used} column${depth.columns_used === 1 ? "" : "s"}` : "";
  figure.title = depth ? `Lithology log in depth, ${depth.top}–${depth.bottom} ${depth.unit}, ${found}` : "Lithology log along the photo";
}

function readout(event) {
  const job = jobs.get(selected);
  if (!job || !job.view) return;
  const canvas = $("#overlay");
  const box = canvas.getBoundingClientRect();
  const x = Math.floor(((event.clientX - box.left) / box.width) * job.view.width);
  const y = Math.floor(((event.clientY - box.top) / box.height) * job.view.height);
  if (x < 0 || y < 0 || x >= job.view.width || y >= job.view.height) return;
  const i = 4 * (y * job.view.width + x);
  const name = job.record.result.class_map[String(job.view.mask[i])] || "unknown";
  const confidence = Math.round((100 * job.view.heat[i]) / 255);
  const { width } = job.record.result.image;
  const scale = width / job.view.width;
  $("#readout").textContent = `${name} · ${confidence} % confident · x ${Math.floor(x * scale)}, y ${Math.floor(y * scale)}`;
}

async function downloadOverlay() {
  // full size, at the slider's weight
  const job = jobs.get(selected);
  if (!job) return;
  const { width, height } = job.record.result.image;
  const [photo, mask] = await Promise.all([pixels(job.view.photoBlob, width, height, true), pixels(job.view.maskBlob, width, height, false)]);
  const canvas = new OffscreenCanvas(width, height);
  const context = canvas.getContext("2d");
  const image = context.createImageData(width, height);
  blend(image.data, photo, mask, job.view.palette, job.record.result.rejected ? 0 : weight());
  context.putImageData(image, 0, 0);
  const blob = await canvas.convertToBlob({ type: "image/png" });
  const link = document.createElement("a");
  link.href = URL.createObjectURL(blob);
  link.download = `${job.id}-overlay.png`;
  link.click();
  setTimeout(() => URL.revokeObjectURL(link.href), 60_000);
}

// -- wiring ---------------------------------------------------------------------------------------

async function showModel() {
  try {
    const ready = await (await fetch("/ready")).json();
    const model = ready.model || {};
    $("#model").textContent = model.name ? `${model.name} v${model.version}` : "model not loaded";
  } catch {
    $("#model").textContent = "service not reachable";
  }
}

function start() {
  $("#api-key").value = localStorage.getItem(KEY_STORAGE) || "";
  $("#files").addEventListener("change", (event) => {
    submitFiles([...event.target.files]);
    event.target.value = "";
  });
  const drop = $("#drop");
  drop.addEventListener("dragover", (event) => {
    event.preventDefault();
    drop.classList.add("over");
  });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    submitFiles([...event.dataTransfer.files]);
  });
  $("#mask-weight").addEventListener("input", () => {
    const job = jobs.get(selected);
    if (job && job.view) draw(job);
  });
  $("#overlay").addEventListener("pointermove", readout);
  $("#download-overlay").addEventListener("click", () => downloadOverlay().catch((error) => showError(error.message)));
  showModel();
}

start();
