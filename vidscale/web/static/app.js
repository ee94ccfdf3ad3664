// The vidscale page: pick files, queue one job per file, follow them over server-sent events,
// compare each result with bicubic. Talks only to the server that served it.
"use strict";

const $ = (id) => document.getElementById(id);
const jobs = new Map();  // id -> the server's job record, in queue order
let picked = [];         // File objects chosen, not yet started
let shown = null;        // id of the job in the before/after view
let native = false;      // the view at 1:1 (one picture pixel per screen pixel) instead of fit

async function loadConfig() {
  const config = await (await fetch("/api/config")).json();
  $("out-dir").textContent = config.out_dir;
  $("files").accept = config.accepted.join(",");
  $("scales").replaceChildren(...config.scales.map((s, i) => {
    const label = document.createElement("label");
    label.innerHTML = `<input type="radio" name="size" value="${s}"${i === 0 ? " checked" : ""}> ${s}x`;
    return label;
  }));
  $("choice").replaceChildren(...config.choices.map((c) => {
    const option = new Option(c.label, c.key);
    option.dataset.hint = c.hint;
    option.dataset.denoise = JSON.stringify(c.denoise);
    return option;
  }));
  $("choice").onchange = showChoice;
  showChoice();
}

function showChoice() {
  const option = $("choice").selectedOptions[0];
  const levels = JSON.parse(option.dataset.denoise);
  $("hint").textContent = option.dataset.hint;
  $("denoise-box").hidden = levels.length === 0;
  $("denoise").replaceChildren(...levels.map((l) => new Option(l, l, l === "conservative", l === "conservative")));
}

// --- picking and starting -------------------------------------------------------------

function pick(files) {
  picked = picked.concat([...files]);
  $("picked").replaceChildren(...picked.map((f) => {
    const li = document.createElement("li");
    li.textContent = `${f.name} (${(f.size / 1024).toFixed(0)} KiB)`;
    return li;
  }));
  $("start").disabled = picked.length === 0;
}

function jobQuery(file) {
  const q = new URLSearchParams({ name: file.name, choice: $("choice").value });
  const size = document.querySelector("input[name=size]:checked").value;
  if (size === "width") q.set("width", $("width").value); else q.set("scale", size);
  if (!$("denoise-box").hidden) q.set("denoise", $("denoise").value);
  return q;
}

async function start() {
  const files = picked;
  picked = [];
  pick([]);
  say("");
  const problems = [];
  for (const file of files) {
    try {
      const response = await fetch(`/api/jobs?${jobQuery(file)}`, {
        method: "POST", body: file, headers: { "content-type": "application/octet-stream" } });
      if (!response.ok) {
        const error = (await response.json()).error;  // most errors name the file already
        problems.push(error.startsWith(`${file.name}: `) ? error : `${file.name}: ${error}`);
      }
    } catch (err) {
      problems.push(`${file.name}: the server refused the upload (${err.message})`);
    }
  }
  say(problems.join("\n"));
}

function say(text) { $("message").textContent = text; }

// --- the queue, from server-sent events --------------------------------------------------

function listen() {
  const events = new EventSource("/api/events");
  events.onmessage = (e) => {
    const data = JSON.parse(e.data);
    if (data.jobs) { jobs.clear(); data.jobs.forEach((j) => jobs.set(j.id, j)); }
    if (data.job) {
      const before = jobs.get(data.job.id);
      jobs.set(data.job.id, data.job);
      if (data.job.state === "done" && (!before || before.state !== "done")) showCompare(data.job.id);
    }
    drawQueue();
  };
}

function details(job) {
  if (job.state === "failed") return job.error;
  const reused = job.reused ? `; ${job.reused} frames reused from before the restart` : "";
  if (job.state === "done") return `${job.result} (${job.width}x${job.height})${reused}`;
  const resumed = job.resumed ? "resumed after a restart" : "";
  if (job.state !== "running" || !job.total) return resumed;
  let text = `${job.done}/${job.total} ${job.video ? "frames" : "pictures"}`;
  if (job.video && job.fps) text += `, ${job.fps.toFixed(2)} fps, ETA ${formatSeconds(job.eta_s)}`;
  return resumed ? `${resumed}; ${text}` : text;
}

function formatSeconds(s) {
  if (s == null) return "-";
  return s < 90 ? `${Math.round(s)} s` : `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
}

function drawQueue() {  // rows are kept and updated in place, so a button is never swapped under a click
  const body = $("queue").tBodies[0];
  const rows = [...jobs.values()].map((job) => {
    let tr = body.querySelector(`tr[data-id="${job.id}"]`);
    if (!tr) tr = newRow(job);
    if (tr.dataset.state !== job.state) setActions(tr, job);
    tr.dataset.state = job.state;
    tr.classList.toggle("current", job.id === shown);
    tr.cells[1].textContent = job.state;
    tr.cells[1].className = `state state-${job.state}`;
    const bar = tr.cells[2].firstChild;
    bar.max = job.total || 1;
    bar.value = job.state === "done" ? bar.max : job.done;
    tr.cells[3].textContent = details(job);
    return tr;
  });
  if (rows.some((tr, i) => body.rows[i] !== tr) || body.rows.length !== rows.length) body.replaceChildren(...rows);
  $("zip").disabled = ![...jobs.values()].some((j) => j.state === "done");
}

function newRow(job) {
  const tr = document.createElement("tr");
  tr.dataset.id = job.id;
  cell(tr, job.name).className = "name";
  cell(tr, "");
  cell(tr, "").append(document.createElement("progress"));
  cell(tr, "").className = "details";
  cell(tr, "");
  return tr;
}

function setActions(tr, job) {
  const actions = tr.cells[4];
  actions.replaceChildren();
  if (job.state === "queued" || job.state === "running") {
    actions.append(button("Cancel", "cancel", () => fetch(`/api/jobs/${job.id}/cancel`, { method: "POST" })));
  }
  if (job.state === "done") {
    actions.append(button("Compare", "compare", () => showCompare(job.id)));
    const link = document.createElement("a");
    link.href = `/api/jobs/${job.id}/result`;
    link.download = job.result;
    link.className = "download";
    link.append(button("Download", "", () => {}));
    actions.append(link);
  }
}

function cell(tr, text) {
  const td = tr.insertCell();
  td.textContent = text;
  return td;
}

function button(text, cls, onclick) {
  const b = document.createElement("button");
  b.textContent = text;
  b.className = `small ${cls}`;
  b.onclick = onclick;
  return b;
}

function downloadAll() {
  const link = document.createElement("a");
  link.href = "/api/results.zip";
  link.download = "vidscale-results.zip";
  document.body.append(link);
  link.click();
  link.remove();
}

// --- before/after view -----------------------------------------------------------------

function showCompare(id) {
  const job = jobs.get(id);
  shown = id;
  $("compare").hidden = false;
  $("compare-name").textContent = job.result;
  $("tag-after").textContent = job.model ? `${job.choice}: ${job.model}` : job.choice;
  $("stack").dataset.w = job.width;
  $("stack").dataset.h = job.height;
  $("before").src = `/api/jobs/${id}/before.png`;
  $("after").src = `/api/jobs/${id}/after.png`;
  native = false;
  layout(0.5, 0.5);
  drawQueue();
}

function layout(fx, fy) {  // size the pictures (fit or 1:1) and centre the view on (fx, fy) of the picture
  const stack = $("stack"), view = $("view");
  const w = +stack.dataset.w, h = +stack.dataset.h;
  // fit: the whole picture in the view, enlarged or shrunk; 1:1: one picture pixel per screen pixel
  const s = native ? 1 / devicePixelRatio : Math.min((($("compare").clientWidth - 4) || w) / w, innerHeight * 0.55 / h);
  stack.style.width = `${w * s}px`;
  stack.style.height = `${h * s}px`;
  stack.classList.toggle("native", native);
  stack.classList.toggle("pixels", s * devicePixelRatio >= 1);  // enlarged: show pixels, not a blur of them
  $("zoom").textContent = native ? "fit" : "1:1";
  view.scrollLeft = fx * w * s - view.clientWidth / 2;
  view.scrollTop = fy * h * s - view.clientHeight / 2;
}

function divide(percent) {
  $("divide").value = percent;
  $("stack").style.setProperty("--cut", `${percent}%`);
}

function pointAt(e) {
  const box = $("stack").getBoundingClientRect();
  return [(e.clientX - box.left) / box.width, (e.clientY - box.top) / box.height];
}

function viewCentre() {
  const view = $("view"), stack = $("stack");
  return [(view.scrollLeft + view.clientWidth / 2) / stack.clientWidth,
          (view.scrollTop + view.clientHeight / 2) / stack.clientHeight];
}

function wireCompare() {
  const stack = $("stack");
  const drag = (e) => divide(Math.max(0, Math.min(100, 100 * pointAt(e)[0])));
  stack.onpointerdown = (e) => { if (e.button === 0) { stack.setPointerCapture(e.pointerId); drag(e); } };
  stack.onpointermove = (e) => { if (stack.hasPointerCapture(e.pointerId)) drag(e); };
  stack.ondblclick = (e) => { const [fx, fy] = pointAt(e); native = !native; layout(fx, fy); };
  $("divide").oninput = () => divide(+$("divide").value);
  $("zoom").onclick = () => { const c = viewCentre(); native = !native; layout(...c); };
  addEventListener("resize", () => { if (!native && shown) layout(0.5, 0.5); });
}

// --- wiring ------------------------------------------------------------------------------

function wireDrop() {
  const zone = $("drop");
  zone.ondragover = (e) => { e.preventDefault(); zone.classList.add("over"); };
  zone.ondragleave = () => zone.classList.remove("over");
  zone.ondrop = (e) => { e.preventDefault(); zone.classList.remove("over"); pick(e.dataTransfer.files); };
  $("files").onchange = () => { pick($("files").files); $("files").value = ""; };
}

addEventListener("DOMContentLoaded", async () => {
  wireDrop();
  wireCompare();
  $("start").onclick = start;
  $("zip").onclick = downloadAll;
  divide(50);
  await loadConfig();
  listen();
});
