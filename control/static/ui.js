// Gate admin UI: the few behaviours that need a script. Pages work without it.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  // Ask before a form with data-confirm changes something.
  for (const form of document.querySelectorAll("form[data-confirm]")) {
    form.addEventListener("submit", (event) => {
      if (!window.confirm(form.dataset.confirm)) event.preventDefault();
    });
  }
  // Count down to an access grant's expiry.
  const clocks = document.querySelectorAll("[data-expires]");
  const tick = () => {
    for (const el of clocks) {
      const left = Math.floor((Date.parse(el.dataset.expires) - Date.now()) / 1000);
      if (Number.isNaN(left)) continue;
      if (left <= 0) { el.textContent = "expired"; continue; }
      const h = Math.floor(left / 3600), m = Math.floor((left % 3600) / 60), s = left % 60;
      el.textContent = `${h}h ${String(m).padStart(2, "0")}m ${String(s).padStart(2, "0")}s left`;
    }
  };
  if (clocks.length) { tick(); setInterval(tick, 1000); }
});
