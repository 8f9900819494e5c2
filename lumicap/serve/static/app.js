// lumicap serve: upload photos, follow their jobs, show dark | enhanced, offer the download.
// Plain browser JavaScript, no libraries and nothing fetched from elsewhere (the page must work offline).
"use strict";

const $ = (selector, root = document) => root.querySelector(selector);
let info = null;
const cards = [];

async function start() {
  const response = await fetch("/api/info");
  info = await response.json();
  const menu = $("#model");
  for (const model of info.models) {
    const option = document.createElement("option");
    option.value = model.key;
    option.textContent = model.label;
    option.dataset.name = model.name;
    option.selected = model.selected;
    menu.append(option);
  }
  $("#limits").textContent = `(up to ${megabytes(info.max_bytes)} MB and ${info.max_megapixels} megapixels per photo)`;
  $("#teacher").textContent = info.teacher ? `captions by ${info.teacher}` : "captions off (start the server with --teacher to see them)";

  const drop = $("#drop");
  const picker = $("#files");
  picker.addEventListener("change", () => { addFiles(picker.files); picker.value = ""; });
  drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    addFiles(event.dataTransfer.files);
  });
  // A photo dropped beside the zone must not make the browser navigate away from the page.
  window.addEventListener("dragover", (event) => event.preventDefault());
  window.addEventListener("drop", (event) => event.preventDefault());

  $("#clear").addEventListener("click", () => cards.filter(settled).forEach(removeCard));

  $("#format").addEventListener("change", () => {
    $("#quality-box").hidden = $("#format").value !== "jpg";
    cards.forEach(updateDownload);
  });
  $("#quality").addEventListener("change", () => {
    const text = $("#quality").value.trim();
    const quality = text === "" ? NaN : Math.round(Number(text));
    $("#quality").value = Number.isFinite(quality) ? Math.min(100, Math.max(1, quality)) : 95;
    cards.forEach(updateDownload);
  });
}

function megabytes(bytes) {
  return (bytes / 1e6).toFixed(bytes >= 1e7 ? 0 : 1);
}

// Uploads go one after another in the cards' order, so the server queues the photos in the order the page
// shows them (parallel uploads would reach it in whatever order they finish).
let uploads = Promise.resolve();

function addFiles(files) {
  const fresh = [...files].map((file) => ({ file, card: newCard(file.name) }));
  if (!fresh.length) return;
  fresh[0].card.node.scrollIntoView({ behavior: "smooth", block: "start" });
  for (const { file, card } of fresh) {
    uploads = uploads.then(() => upload(card, file)).catch((error) => fail(card, `upload failed (${error.message})`));
  }
}

function newCard(name) {
  const node = $("#card-template").content.firstElementChild.cloneNode(true);
  const card = {
    node, id: null, job: null,
    name: $(".name", node), status: $(".status", node), progress: $(".progress", node), error: $(".error", node),
    dark: $(".dark", node), enhanced: $(".enhanced", node), pair: $(".pair", node), compare: $(".compare", node),
    under: $(".under", node), over: $(".over", node), slider: $(".slider", node), footer: $("footer", node),
    download: $(".download", node), metrics: $(".metrics", node), toggle: $(".toggle", node),
    model: $(".model", node), dismiss: $(".dismiss", node), stack: $(".stack", node),
  };
  card.name.textContent = name;
  const menu = $("#model");
  card.modelKey = menu.value;
  card.model.textContent = `model: ${menu.selectedOptions.length ? menu.selectedOptions[0].dataset.name : menu.value}`;
  node.dataset.state = "waiting";
  card.status.textContent = "waiting to upload…";
  card.slider.addEventListener("input", () => card.stack.style.setProperty("--cut", `${card.slider.value}%`));
  card.dismiss.addEventListener("click", () => removeCard(card));
  card.toggle.addEventListener("click", () => {
    const sliding = card.compare.hidden;
    card.compare.hidden = !sliding;
    card.pair.hidden = sliding;
    card.toggle.textContent = sliding ? "side by side" : "before/after slider";
  });
  const reference = $(".reference", node);
  reference.addEventListener("change", () => { if (reference.files.length) addReference(card, reference.files[0]); reference.value = ""; });
  $("#results").append(node);
  cards.push(card);
  return card;
}

function removeCard(card) {
  card.node.remove();
  cards.splice(cards.indexOf(card), 1);
  updateClear();
}

// Finished photos (enhanced or refused) can be removed from the page; those still waiting stay.
function settled(card) {
  return card.node.dataset.state === "done" || card.node.dataset.state === "failed";
}

function updateClear() {
  $("#clear").hidden = !cards.some(settled);
}

async function upload(card, file) {
  if (file.size > info.max_bytes) {
    fail(card, `${file.name}: ${megabytes(file.size)} MB is above this server's upload limit of ${megabytes(info.max_bytes)} MB`);
    return;
  }
  card.dark.src = URL.createObjectURL(file); // shown while waiting; the server's preview replaces it
  card.node.dataset.state = "uploading";
  card.status.textContent = "uploading…";
  const model = encodeURIComponent(card.modelKey);
  const answer = await send(`/api/jobs?name=${encodeURIComponent(file.name)}&model=${model}`, file);
  if (answer.error) { fail(card, answer.error); return; }
  card.id = answer.id;
  card.node.dataset.jobId = answer.id;
  show(card, answer);
  poll(card);
}

async function addReference(card, file) {
  card.metrics.textContent = "uploading the reference…";
  const answer = await send(`/api/jobs/${card.id}/reference?name=${encodeURIComponent(file.name)}`, file);
  if (answer.error) { card.metrics.textContent = answer.error; return; }
  show(card, answer);
  poll(card);
}

async function send(url, file) {
  try {
    const response = await fetch(url, { method: "POST", body: file, headers: { "Content-Type": "application/octet-stream" } });
    const body = await response.json().catch(() => ({}));
    return response.ok ? body : { error: body.error || `the server answered ${response.status}` };
  } catch (error) {
    return { error: `upload failed (${error.message}); is the server still running?` };
  }
}

async function poll(card) {
  let job;
  try {
    const response = await fetch(`/api/jobs/${card.id}`);
    job = await response.json();
    if (!response.ok) throw new Error(job.error || response.status);
  } catch (error) {
    fail(card, `lost the job (${error.message}); is the server still running?`);
    return;
  }
  show(card, job);
  const measuring = job.reference && (job.reference.state === "queued" || job.reference.state === "running");
  if (job.state === "queued" || job.state === "running" || measuring) setTimeout(() => poll(card), 300);
}

function show(card, job) {
  const first = card.job === null || card.job.state !== "done";
  card.job = job;
  card.node.dataset.state = job.state;
  card.model.textContent = `model: ${job.model_name}`;
  if (job.state === "failed") { fail(card, job.message); return; }
  if (job.state === "queued") {
    card.status.textContent = job.ahead ? `queued: ${job.ahead} ahead` : "queued: next";
    card.progress.hidden = false;
    card.progress.removeAttribute("value");
  } else if (job.state === "running") {
    card.progress.hidden = false;
    if (job.tiles_total) {
      card.status.textContent = `enhancing: tile ${job.tiles_done} of ${job.tiles_total}`;
      card.progress.max = job.tiles_total;
      card.progress.value = job.tiles_done;
    } else {
      card.status.textContent = "enhancing…";
      card.progress.removeAttribute("value");
    }
  } else if (job.state === "done") {
    card.progress.hidden = true;
    card.status.textContent = `${job.width}×${job.height} · enhanced in ${job.seconds.toFixed(2)} s` + niqeText(job.niqe);
    card.dismiss.hidden = false;
    if (first) showResult(card, job);
    showReference(card, job.reference);
    updateClear();
  }
}

function niqeText(niqe) {
  // NIQE of the dark and the enhanced photo (lower is better); null for photos under 96x96.
  if (!niqe || niqe.input === null || niqe.enhanced === null) return "";
  return ` · NIQE dark ${niqe.input.toFixed(2)} → enhanced ${niqe.enhanced.toFixed(2)} (lower is better)`;
}

function showResult(card, job) {
  const base = `/api/jobs/${job.id}/preview`;
  card.dark.src = card.under.src = `${base}/input`;
  card.enhanced.src = card.over.src = `${base}/output`;
  card.enhanced.hidden = false;
  card.footer.hidden = false;
  updateDownload(card);
  if (job.captions && !job.captions.error) {
    for (const which of ["input", "enhanced"]) {
      const quote = $(`.caption-${which}`, card.node);
      quote.textContent = job.captions[which];
      quote.hidden = false;
    }
  } else if (job.captions) {
    card.metrics.textContent = `captions unavailable: ${job.captions.error}`;
  }
}

function showReference(card, reference) {
  if (!reference) return;
  if (reference.state === "done") {
    card.metrics.textContent = `PSNR ${reference.psnr.toFixed(2)} dB · SSIM ${reference.ssim.toFixed(4)} against ${reference.name}`;
  } else if (reference.state === "failed") {
    card.metrics.textContent = reference.message;
  } else {
    card.metrics.textContent = `measuring against ${reference.name}…`;
  }
}

function updateDownload(card) {
  if (!card.job || card.job.state !== "done") return;
  const format = $("#format").value;
  const quality = $("#quality").value;
  const png = card.job.download_name; // lumicap enhance's name, plus the model's when it is not the default
  const name = format === "png" ? png : png.replace(/\.png$/i, ".jpg");
  card.download.href = `/api/jobs/${card.id}/download?format=${format}&quality=${quality}`;
  card.download.download = name;
  card.download.textContent = format === "png" ? `download ${name}` : `download ${name} (JPEG quality ${quality})`;
}

function fail(card, message) {
  card.node.dataset.state = "failed";
  card.node.classList.add("failed");
  card.status.textContent = "not enhanced";
  card.progress.hidden = true;
  card.error.textContent = message;
  card.error.hidden = false;
  card.dismiss.hidden = false;
  updateClear();
}

start();
