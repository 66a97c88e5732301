// The video page: live steps from the events stream while it is made, then the player
// (hls.js where MSE is, native HLS elsewhere) with its quality, audio and subtitle choices.
(function () {
  "use strict";
  const state = document.getElementById("state");

  const del = document.getElementById("delete-form");
  if (del) {
    del.addEventListener("submit", (e) => {
      if (!window.confirm(del.dataset.confirm)) { e.preventDefault(); return; }
      del.elements.confirmed.value = "yes";
    });
  }

  // --- progress ---------------------------------------------------------------------------
  let fetching = false, again = false;
  function refreshSteps() {
    if (fetching) { again = true; return; }
    fetching = true;
    fetch(state.dataset.steps, { credentials: "same-origin", redirect: "error" })
      .then((r) => (r.ok ? r.text() : Promise.reject(r.status)))
      .then((html) => {
        const t = document.createElement("template");
        t.innerHTML = html.trim();
        const fresh = t.content.firstElementChild;
        const old = document.getElementById("steps");
        if (fresh && old) old.replaceWith(fresh);
      })
      .catch(() => {})
      .finally(() => { fetching = false; if (again) { again = false; refreshSteps(); } });
  }

  const open = state && (state.dataset.status === "waiting" || state.dataset.status === "processing");
  if (open && window.EventSource) {
    const events = new EventSource(state.dataset.events);
    events.addEventListener("status", (e) => {
      const v = JSON.parse(e.data);
      const pct = Math.round((v.progress || 0) * 100);
      const badge = document.querySelector("#status .badge");
      badge.textContent = v.status;
      badge.className = "badge " + v.status;
      badge.dataset.status = v.status;
      state.dataset.status = v.status;
      document.getElementById("progress").value = pct;
      document.getElementById("percent").textContent = pct + "%";
      document.getElementById("step").textContent = v.step || "";
      refreshSteps();
      if (v.status === "ready" || v.status === "errored") {
        events.close();
        window.location.reload();
      }
    });
    events.addEventListener("deleted", () => { events.close(); window.location.assign("/"); });
  }

  // a stream plays before its extras (posters, VMAF) are in: follow its steps to the end
  if (state && state.dataset.status === "ready") {
    const poll = () => {
      if (!document.querySelector("#steps li[data-status=running]")) return;
      refreshSteps();
      window.setTimeout(poll, 2000);
    };
    window.setTimeout(poll, 2000);
  }

  // --- the player -------------------------------------------------------------------------
  const video = document.getElementById("video");
  if (!video || !video.dataset.hls) return;
  const now = document.getElementById("now");
  if (window.Hls && window.Hls.isSupported()) {
    const hls = new window.Hls();
    window.reelforgeHls = hls;
    hls.loadSource(video.dataset.hls);
    hls.attachMedia(video);
    const levels = document.getElementById("levels");
    const audio = document.getElementById("audio-tracks");
    const subs = document.getElementById("subtitle-tracks");
    const option = (value, text) => { const o = document.createElement("option"); o.value = value; o.textContent = text; return o; };
    // a chooser shows only when there is a choice (its label goes with it)
    const show = (select, count) => {
      select.hidden = count < 2;
      document.querySelector("label[for=" + select.id + "]").hidden = count < 2;
    };
    const fillAudio = () => {
      audio.replaceChildren(...hls.audioTracks.map((t, i) => option(i, t.lang || t.name)));
      audio.value = String(hls.audioTrack);
      show(audio, hls.audioTracks.length);
    };
    const fillSubtitles = () => {
      subs.replaceChildren(option(-1, "Off"), ...hls.subtitleTracks.map((t, i) => option(i, t.lang || t.name)));
      subs.value = String(hls.subtitleTrack);
      show(subs, hls.subtitleTracks.length + 1);
    };
    hls.on(window.Hls.Events.MANIFEST_PARSED, () => {
      levels.replaceChildren(option(-1, "Auto"), ...hls.levels.map((l, i) =>
        option(i, l.height + "p, " + Math.round(l.bitrate / 1000) + " kbit/s")));
      fillAudio();
      fillSubtitles();
      document.getElementById("choosers").hidden = false;
    });
    hls.on(window.Hls.Events.AUDIO_TRACKS_UPDATED, fillAudio);
    hls.on(window.Hls.Events.SUBTITLE_TRACKS_UPDATED, fillSubtitles);
    hls.on(window.Hls.Events.LEVEL_SWITCHED, (_, data) => {
      const l = hls.levels[data.level];
      if (l) now.textContent = "Playing " + l.width + "x" + l.height + " at " + Math.round(l.bitrate / 1000) + " kbit/s";
    });
    levels.addEventListener("change", () => { hls.currentLevel = Number(levels.value); });
    audio.addEventListener("change", () => { hls.audioTrack = Number(audio.value); });
    subs.addEventListener("change", () => { hls.subtitleTrack = Number(subs.value); });
  } else if (video.canPlayType("application/vnd.apple.mpegurl")) {
    video.src = video.dataset.hls;
  }
})();
