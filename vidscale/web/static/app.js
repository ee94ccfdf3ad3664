// The vidscale page: pick files, queue one job per file, follow them over server-sent events,
// compare each result with bicubic (pictures and videos). Talks only to the server that served it.
"use strict";

const $ = (id) => document.getElementById(id);
const jobs = new Map();  // id -> the server's job record, in queue order
const received = new Map();  // id -> when its record arrived (elapsed time ticks on from it)
const choiceNames = new Map();  // choice key -> its short name
let picked = [];         // File objects chosen, not yet started
let shown = null;        // id of the job in the before/after view
let native = false;      // the view at 1:1 (one picture pixel per screen pixel) instead of fit
let liveShown = null;    // "id/frame" of the pair in the live look
const SHOWN_KEY = "vidscale-compared";  // the last compared result, kept across reloads

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
    option.dataset.flags = c.flags;
    option.dataset.denoise = JSON.stringify(c.denoise);
    choiceNames.set(c.key, c.label.split(" (")[0]);
    return option;
  }));
  $("choice").onchange = showChoice;
  $("width").oninput = () => { document.querySelector("input[name=size][value=width]").checked = true; };
  showChoice();
}

function showChoice() {
  const option = $("choice").selectedOptions[0];
  const levels = JSON.parse(option.dataset.denoise);
  $("hint").textContent = option.dataset.hint;
  $("hint").title = option.dataset.flags;  // the command line's words, for those who want them
  $("denoise-box").classList.toggle("off", levels.length === 0);  // keeps its place: nothing jumps
  $("denoise").replaceChildren(...levels.map((l) => new Option(l, l, l === "conservative", l === "conservative")));
}

// --- picking and starting -------------------------------------------------------------

function pick(files) {
  picked = picked.concat([...files]);
  $("picked").replaceChildren(...picked.map((f) => {
    const li = document.createElement("li");
    li.textContent = `${f.name} (${(f.size / 1024).toFixed(0)} KiB)`;
    li.append(Object.assign(document.createElement("span"), { className: "guess" }));
    return li;
  }));
  $("start").disabled = $("estimate").disabled = picked.length === 0;
}

async function estimate() {  // the dry run's time for each file picked, with the model chosen now
  $("estimate").disabled = true;
  const files = picked, items = [...$("picked").children];
  for (const [i, file] of files.entries()) {
    const guess = items[i].querySelector(".guess");
    guess.textContent = "timing\u2026";
    try {
      const response = await fetch(`/api/estimate?${jobQuery(file)}`, {
        method: "POST", body: file, headers: { "content-type": "application/octet-stream" } });
      const reply = await response.json();
      guess.textContent = !response.ok ? reply.error
        : `about ${formatSeconds(reply.seconds ?? reply.seconds_per_frame)}${reply.seconds == null ? " a frame" : ""} ` +
          `with ${choiceNames.get(reply.choice)}${reply.busy ? " (measured while another job ran)" : ""}`;
    } catch (err) {
      guess.textContent = `no estimate (${err.message})`;
    }
  }
  $("estimate").disabled = picked.length === 0;
}

function jobQuery(file) {
  const q = new URLSearchParams({ name: file.name, choice: $("choice").value });
  const size = document.querySelector("input[name=size]:checked").value;
  if (size === "width") q.set("width", $("width").value); else q.set("scale", size);
  if (!$("denoise-box").classList.contains("off")) q.set("denoise", $("denoise").value);
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
    say(problems.join("\n"));  // one line each
  }
}

function say(text) { $("message").textContent = text; }

// --- the queue, from server-sent events --------------------------------------------------

function listen() {
  const events = new EventSource("/api/events");
  events.onmessage = (e) => {
    const data = JSON.parse(e.data);
    const now = performance.now();
    if (data.jobs) {
      jobs.clear();
      data.jobs.forEach((j) => { jobs.set(j.id, j); received.set(j.id, now); });
      const kept = localStorage.getItem(SHOWN_KEY);
      if (!shown && kept && jobs.get(kept)?.state === "done") showCompare(kept);
    }
    if (data.job) {
      jobs.set(data.job.id, data.job);
      received.set(data.job.id, now);
      // the first result shows itself; later ones never take the view from the one being looked at
      if (data.job.state === "done" && !shown) showCompare(data.job.id);
    }
    if (data.removed) {
      jobs.delete(data.removed);
      if (shown === data.removed) hideCompare();
    }
    drawQueue();
    drawLive();
  };
}

function size(w, h) { return w && h ? `${w}\u00d7${h}` : "?"; }

function elapsed(job) {
  if (job.elapsed_s == null) return null;
  const running = job.state === "running" || job.state === "cancelling";
  return job.elapsed_s + (running ? (performance.now() - received.get(job.id)) / 1000 : 0);
}

function details(job) {
  if (job.state === "failed") return job.error;
  const took = elapsed(job);
  const reused = job.reused ? `; ${job.reused} frames reused from before the restart` : "";
  if (job.state === "done") return `${job.result}${took != null ? `, in ${formatSeconds(took)}` : ""}${reused}`;
  const resumed = job.resumed ? "resumed after a restart" : "";
  if (job.state !== "running") return job.state === "cancelling" ? "stopping\u2026" : resumed;
  if (job.stage) return job.stage;
  const parts = [];
  if (job.total && job.video) parts.push(`${job.done}/${job.total} frames`);
  if (job.total && !job.video && job.total > 1) parts.push(`${job.done}/${job.total} pictures`);
  if (!job.video) parts.push(`${Math.floor(100 * fraction(job))}%`);
  if (job.video && job.fps) parts.push(`${job.fps.toFixed(2)} fps`);
  if (took != null) parts.push(`${formatSeconds(took)} elapsed`);
  if (job.eta_s != null) parts.push(`about ${formatSeconds(job.eta_s)} left`);
  const text = parts.join(", ");
  return resumed ? `${resumed}; ${text}` : text;
}

function fraction(job) {
  const total = job.total || 1;
  return Math.min(1, (job.done + (job.part || 0)) / total);
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
    const what = `${size(job.in_width, job.in_height)} \u2192 ${size(job.width, job.height)}, ` +
                 `${choiceNames.get(job.choice) || job.choice}${job.model ? ` (${job.model})` : ""}`;
    tr.cells[2].textContent = tr.cells[2].title = what;
    tr.cells[3].textContent = job.state;
    tr.cells[3].className = `state state-${job.state}`;
    const bar = tr.cells[4].firstChild;
    bar.hidden = !["running", "done", "cancelling"].includes(job.state);
    bar.max = 1;
    bar.value = job.state === "done" ? 1 : fraction(job);
    const text = details(job) || "";
    tr.cells[5].textContent = text;
    tr.cells[5].title = text;
    return tr;
  });
  if (rows.some((tr, i) => body.rows[i] !== tr) || body.rows.length !== rows.length) body.replaceChildren(...rows);
  const done = [...jobs.values()].filter((j) => j.state === "done");
  const chosen = selected();
  $("zip").disabled = done.length === 0;
  $("zip").textContent = chosen.length ? `Download selected (${chosen.length}, zip)` : "Download all (zip)";
}

function selected() {
  return [...document.querySelectorAll("#queue input.pick-row:checked")]
    .map((box) => box.closest("tr").dataset.id).filter((id) => jobs.get(id)?.state === "done");
}

function newRow(job) {
  const tr = document.createElement("tr");
  tr.dataset.id = job.id;
  const box = document.createElement("input");
  box.type = "checkbox";
  box.className = "pick-row";
  box.title = "include in the zip";
  box.onchange = drawQueue;
  cell(tr, "").append(box);
  const name = cell(tr, job.name);
  name.className = "name";
  name.title = job.name;  // the whole name on hover; the cell cuts it to fit
  cell(tr, "").className = "what";
  cell(tr, "");
  cell(tr, "").append(document.createElement("progress"));
  cell(tr, "").className = "details";
  cell(tr, "").className = "actions";
  return tr;
}

function setActions(tr, job) {
  const actions = tr.cells[6];
  tr.cells[0].firstChild.disabled = job.state !== "done";
  actions.replaceChildren();
  if (job.state === "queued" || job.state === "running" || job.state === "cancelling") {
    const cancel = button("Cancel", "cancel", () => {
      const now = jobs.get(job.id);  // says so at once; the server's next event confirms it
      if (now?.state === "running") jobs.set(job.id, { ...now, state: "cancelling" });
      drawQueue();
      fetch(`/api/jobs/${job.id}/cancel`, { method: "POST" });
    });
    cancel.disabled = job.state === "cancelling";
    actions.append(cancel);
    return;
  }
  if (job.state === "done") {
    actions.append(button("Compare", "compare", () => showCompare(job.id)));
    const link = document.createElement("a");
    link.href = `/api/jobs/${job.id}/result`;
    link.download = job.result;
    link.tabIndex = -1;
    link.append(button("Download", "download", () => {}));
    actions.append(link);
  }
  actions.append(button("Remove", "remove", () => remove(job, false)));
  if (job.state === "done") {
    actions.append(button("Delete file", "delete", () => {
      if (confirm(`Delete ${job.result} from the results folder? This cannot be undone.`)) remove(job, true);
    }));
  }
}

async function remove(job, deleteFile) {
  const response = await fetch(`/api/jobs/${job.id}${deleteFile ? "?file=1" : ""}`, { method: "DELETE" });
  if (!response.ok) say(`${job.name}: ${(await response.json()).error}`);
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

function downloadZip() {
  const chosen = selected();
  const link = document.createElement("a");
  link.href = chosen.length ? `/api/results.zip?ids=${chosen.join(",")}` : "/api/results.zip";
  link.download = "vidscale-results.zip";
  document.body.append(link);
  link.click();
  link.remove();
}

// --- the live look at a running video ------------------------------------------------------

function drawLive() {
  const job = [...jobs.values()].find((j) => j.state === "running" && j.video && j.live != null);
  $("live").hidden = !job;
  if (!job) { liveShown = null; return; }
  const key = `${job.id}/${job.live}`;
  if (key === liveShown) return;
  liveShown = key;
  $("live-name").textContent = $("live-name").title = job.name;
  $("live-caption").textContent = `upscaled (frame ${job.live + 1})`;
  $("live-before").src = `/api/jobs/${job.id}/live/before.jpg?frame=${job.live}`;
  $("live-after").src = `/api/jobs/${job.id}/live/after.jpg?frame=${job.live}`;
}

// --- before/after view -----------------------------------------------------------------

function showCompare(id) {
  const job = jobs.get(id);
  if (!job) return;
  shown = id;
  localStorage.setItem(SHOWN_KEY, id);
  $("compare").hidden = false;
  $("compare-name").textContent = $("compare-name").title = job.result;
  const tag = job.model ? `${choiceNames.get(job.choice) || job.choice}: ${job.model}` : job.choice;
  $("tag-after").textContent = $("tag-after").title = tag;
  $("stack").dataset.w = job.width;
  $("stack").dataset.h = job.height;
  $("before").src = `/api/jobs/${id}/before.png`;
  $("after").src = `/api/jobs/${id}/after.png`;
  showVideos(job);
  native = false;
  layout(0.5, 0.5);
  drawQueue();
}

function hideCompare() {
  shown = null;
  localStorage.removeItem(SHOWN_KEY);
  showVideos(null);
  $("compare").hidden = true;
}

function showVideos(job) {  // a video: both sides play in step (the stills stay as their posters)
  const [before, after] = [$("before-video"), $("after-video")];
  pause();
  for (const v of [before, after]) {
    v.hidden = !job?.video;
    if (job?.video) v.src = `/api/jobs/${job.id}/video/${v === before ? "before" : "after"}`;
    else v.removeAttribute("src");
    v.load();
  }
  $("player").hidden = !job?.video;
  if (job?.video) {
    $("result-link").href = `/api/jobs/${job.id}/result`;
    $("result-link").download = job.result;
    $("result-link").textContent = job.proxy ? "download the result (plays here as a preview copy)"
                                             : "download the result";
  }
}

function pause() {
  $("before-video").pause();
  $("after-video").pause();
  $("play").textContent = "Play";
}

function wirePlayer() {
  const [before, after] = [$("before-video"), $("after-video")];
  $("play").onclick = () => {
    if (after.paused) {
      before.currentTime = after.currentTime;
      Promise.all([before.play(), after.play()]).catch(() => {});
      $("play").textContent = "Pause";
    } else pause();
  };
  $("seek").oninput = () => {
    const t = +$("seek").value * (after.duration || 0);
    before.currentTime = after.currentTime = t;
  };
  after.ontimeupdate = () => {
    if (after.duration) $("seek").value = after.currentTime / after.duration;
    $("clock").textContent = `${clock(after.currentTime)} / ${clock(after.duration)}`;
    if (Math.abs(before.currentTime - after.currentTime) > 0.1) before.currentTime = after.currentTime;
  };
  after.onended = pause;
}

function clock(s) {
  if (!isFinite(s)) return "0:00";
  return `${Math.floor(s / 60)}:${String(Math.floor(s % 60)).padStart(2, "0")}`;
}

function layout(fx, fy) {  // size the pictures (fit or 1:1) and centre the view on (fx, fy) of the picture
  const stack = $("stack"), view = $("view");
  const w = +stack.dataset.w, h = +stack.dataset.h;
  // fit: the whole picture in the view (its width, and 78% of the window's height), enlarged or shrunk
  const room = ($("compare").clientWidth - 2) || w;  // less the view's border
  const s = native ? 1 / devicePixelRatio : Math.min(room / w, (innerHeight * 0.78 - 4) / h);
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
  // the window, or a scroll bar coming or going, changes the room: fit again
  new ResizeObserver(() => { if (!native && shown) layout(0.5, 0.5); }).observe($("compare"));
}

// --- wiring ------------------------------------------------------------------------------

function wireDrop() {
  const zone = $("drop");
  zone.ondragover = (e) => { e.preventDefault(); zone.classList.add("over"); };
  zone.ondragleave = () => zone.classList.remove("over");
  zone.ondrop = (e) => { e.preventDefault(); zone.classList.remove("over"); pick(e.dataTransfer.files); };
  zone.onkeydown = (e) => {
    if (e.target === zone && (e.key === "Enter" || e.key === " ")) { e.preventDefault(); $("files").click(); }
  };
  $("files").onchange = () => { pick($("files").files); $("files").value = ""; };
}

addEventListener("DOMContentLoaded", async () => {
  wireDrop();
  wireCompare();
  wirePlayer();
  $("start").onclick = start;
  $("estimate").onclick = estimate;
  $("zip").onclick = downloadZip;
  divide(50);
  await loadConfig();
  listen();
  setInterval(() => { if ([...jobs.values()].some((j) => j.state === "running")) drawQueue(); }, 1000);
});
