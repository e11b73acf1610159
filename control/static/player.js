// Gate admin UI: a small asciicast v2 player. It reads the file the recordings API serves,
// keeps the output text (escape sequences dropped, backspace and carriage return applied) and
// shows it at the recorded pace, faster with the speed control.
"use strict";
(() => {
  const ESCAPES = /\x1b\[[0-9;?]*[ -\/]*[@-~]|\x1b\][^\x07\x1b]*(\x07|\x1b\\)|\x1b[()][A-Za-z0-9]|\x1b[=>78DEHM]/g;

  function apply(screen, data) {
    let text = screen;
    for (const ch of data.replace(ESCAPES, "").replace(/\r\n/g, "\n")) {
      if (ch === "\b") text = text.slice(0, -1);
      else if (ch === "\r") text = text.slice(0, text.lastIndexOf("\n") + 1);
      else if (ch === "\x07") continue;
      else text += ch;
    }
    return text;
  }

  function parse(body) {
    const lines = body.split("\n").filter((l) => l.trim() !== "");
    const header = JSON.parse(lines.shift() || "{}");
    const events = [];
    for (const line of lines) {
      try {
        const [time, kind, data] = JSON.parse(line);
        if (kind === "o" && typeof data === "string") events.push([Number(time), data]);
      } catch (_) { /* a line that is not an event is skipped */ }
    }
    return { header, events };
  }

  async function start(root) {
    const screen = root.querySelector("#screen");
    const clock = root.querySelector("[data-role=clock]");
    const speed = root.querySelector("[data-action=speed]");
    let cast, index = 0, text = "", timer = null, at = 0;
    try {
      const reply = await fetch(root.dataset.src, { credentials: "same-origin" });
      if (!reply.ok) throw new Error(`the recording could not be read (HTTP ${reply.status})`);
      cast = parse(await reply.text());
    } catch (e) {
      screen.textContent = String(e.message || e);
      return;
    }
    const show = () => { screen.textContent = text; screen.scrollTop = screen.scrollHeight; clock.textContent = `${at.toFixed(1)} s`; };
    const step = () => {
      if (index >= cast.events.length) { timer = null; root.dataset.state = "ended"; return; }
      const [time, data] = cast.events[index++];
      at = time; text = apply(text, data); show();
      const next = cast.events[index];
      const wait = next ? Math.min(2000, (next[0] - time) * 1000) / Number(speed.value || 1) : 0;
      timer = setTimeout(step, wait);
    };
    root.addEventListener("click", (event) => {
      const action = event.target.dataset && event.target.dataset.action;
      if (action === "play" && !timer) {
        if (index >= cast.events.length) { index = 0; text = ""; }
        root.dataset.state = "playing"; step();
      } else if (action === "pause" && timer) {
        clearTimeout(timer); timer = null; root.dataset.state = "paused";
      } else if (action === "end") {
        if (timer) clearTimeout(timer);
        timer = null;
        while (index < cast.events.length) { const [time, data] = cast.events[index++]; at = time; text = apply(text, data); }
        show(); root.dataset.state = "ended";
      }
    });
    root.dataset.state = "ready";
  }

  document.addEventListener("DOMContentLoaded", () => {
    const root = document.getElementById("player");
    if (root) start(root);
  });
})();
