// The upload page: resumable tus uploads with a progress bar per file, then one
// POST /api/videos per finished upload; the story form sent with each file's path.
// Without this script (or without tus-js-client) both forms post as plain forms.
(function () {
  "use strict";
  const form = document.getElementById("upload-form");
  const queue = document.getElementById("queue");
  const input = document.getElementById("files");
  const drop = document.getElementById("drop");
  const csrf = form.dataset.csrf;
  const RETRY_DELAYS = [0, 1000, 3000, 5000, 10000, 20000, 30000];
  let waiting = [];

  function el(tag, attrs, text) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function row(file) {
    const li = el("li", { "data-state": "queued" });
    const name = el("span", { class: "file-name" }, file.name);
    const bar = el("progress", { max: "100", value: "0", "aria-label": "Upload of " + file.name });
    const percent = el("span", { class: "percent" }, "0%");
    const state = el("span", { class: "state muted" }, " waiting to start");
    const line = el("div", { class: "row" });
    line.append(percent, state);
    li.append(name, bar, line);
    queue.append(li);
    return { li, bar, percent, state, line };
  }

  function setState(r, state, text) {
    r.li.dataset.state = state;
    r.state.textContent = " " + text;
  }

  function publishOptions() {
    return { preset: form.elements.preset.value, quality: form.elements.quality.checked };
  }

  function createVideo(r, upload, title) {
    setState(r, "creating", "uploaded; starting to publish…");
    const body = { upload: upload.url, publish: publishOptions(), private: form.elements.private.checked };
    if (title) body.title = title;
    return fetch("/api/videos", {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: JSON.stringify(body),
    }).then((response) => response.json().then((data) => {
      if (!response.ok) throw new Error(data.error ? data.error.message : "HTTP " + response.status);
      setState(r, "published", "uploaded; publishing");
      const link = el("a", { href: "/videos/" + encodeURIComponent(data.id), class: "video-link" },
        "Open “" + data.title + "”");
      r.line.append(link);
    })).catch((err) => failed(r, err, () => createVideo(r, upload, title)));
  }

  function failed(r, err, again) {
    setState(r, "failed", "failed: " + (err && err.message ? err.message : err));
    const button = el("button", { type: "button", class: "secondary" }, "Try again");
    button.addEventListener("click", () => { button.remove(); again(); });
    r.line.append(button);
  }

  function shouldRetry(r) {
    return (err) => {
      const response = err.originalResponse;
      const status = response ? response.getStatus() : 0;
      const retry = (!status || status >= 500 || status === 409 || status === 423 || status === 429)
        && navigator.onLine !== false;
      if (retry) setState(r, "retrying", "connection lost; resuming…");
      return retry;
    };
  }

  function start(file, title) {
    const r = row(file);
    const metadata = { filename: file.name };
    if (file.type) metadata.filetype = file.type;
    const upload = new tus.Upload(file, {
      endpoint: form.dataset.endpoint,
      retryDelays: RETRY_DELAYS,
      metadata: metadata,
      headers: { "X-CSRF-Token": csrf },
      removeFingerprintOnSuccess: true,
      onShouldRetry: shouldRetry(r),
      onProgress(sent, total) {
        const pct = total ? Math.floor((sent / total) * 100) : 0;
        r.bar.value = pct;
        r.percent.textContent = pct + "%";
        if (r.li.dataset.state !== "uploading") setState(r, "uploading", "uploading");
      },
      onSuccess() {
        r.bar.value = 100;
        r.percent.textContent = "100%";
        createVideo(r, upload, title);
      },
      onError(err) {
        failed(r, err, () => { setState(r, "uploading", "resuming"); upload.start(); });
      },
    });
    upload.findPreviousUploads().then((previous) => {
      if (previous.length) {
        upload.resumeFromPreviousUpload(previous[0]);
        r.li.dataset.resumed = "true";
        setState(r, "uploading", "resuming an earlier upload");
      } else {
        setState(r, "uploading", "uploading");
      }
      upload.start();
    });
  }

  function add(files) {
    for (const file of files) waiting.push(file);
    input.value = "";
    const names = waiting.map((f) => f.name).join(", ");
    drop.querySelector("label").textContent = waiting.length
      ? waiting.length + " chosen: " + names : "Drop video files here, or pick them";
  }

  if (window.tus && window.tus.isSupported) {
    input.addEventListener("change", () => add(input.files));
    ["dragenter", "dragover"].forEach((type) => drop.addEventListener(type, (e) => {
      e.preventDefault();
      drop.classList.add("over");
    }));
    ["dragleave", "drop"].forEach((type) => drop.addEventListener(type, () => drop.classList.remove("over")));
    drop.addEventListener("drop", (e) => { e.preventDefault(); add(e.dataTransfer.files); });
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      if (!waiting.length) { input.focus(); return; }
      const title = waiting.length === 1 ? form.elements.title.value.trim() : "";
      waiting.forEach((file) => start(file, title));
      waiting = [];
      add([]);
    });
  }

  // --- the story form: each file sent under its path inside the picked folder ---------------
  const storyForm = document.getElementById("story-form");
  const status = document.getElementById("story-status");
  storyForm.addEventListener("submit", (e) => {
    e.preventDefault();
    let story = storyForm.elements.story.files[0] || null;
    const files = [];
    for (const file of storyForm.elements.files.files) {
      const parts = (file.webkitRelativePath || file.name).split("/");
      const rel = parts.length > 1 ? parts.slice(1).join("/") : parts[0];
      if (rel.split("/").some((p) => p.startsWith("."))) continue;  // .DS_Store and the like
      if (rel === "story.yaml") { story = story || file; continue; }
      files.push([file, rel]);
    }
    if (!story) {
      status.textContent = "Choose the story's YAML file, or a folder holding story.yaml.";
      return;
    }
    const data = new FormData();
    data.append("story", story, "story.yaml");
    files.forEach(([file, rel]) => data.append("files", file, rel));
    data.append("private", storyForm.elements.private.checked ? "true" : "false");
    status.textContent = "Sending " + (files.length + 1) + " files…";
    fetch("/api/stories", {
      method: "POST", credentials: "same-origin", headers: { "X-CSRF-Token": csrf }, body: data,
    }).then((response) => response.json().then((body) => {
      if (!response.ok) throw new Error(body.error ? body.error.message : "HTTP " + response.status);
      window.location.assign("/videos/" + encodeURIComponent(body.id));
    })).catch((err) => { status.textContent = "Refused: " + err.message; });
  });
})();
