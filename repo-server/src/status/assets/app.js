// xenprov status page: keeps itself current without a reload. Every few seconds it fetches the
// page again and swaps in its <main>, so the tables are rendered in one place (the server) and
// read the same without this script. Open install details stay open across updates.
"use strict";
(() => {
  const EVERY_MS = 2000;
  const live = document.getElementById("live");
  let busy = false;

  async function refresh() {
    if (busy || document.hidden) return;
    busy = true;
    try {
      const resp = await fetch(location.pathname, { cache: "no-store", headers: { Accept: "text/html" } });
      if (!resp.ok) throw new Error(`HTTP ${resp.status}`);
      const text = await resp.text();
      const t0 = performance.now();
      const doc = new DOMParser().parseFromString(text, "text/html");
      const open = [...document.querySelectorAll("details[open]")].map((d) => d.id);
      document.getElementById("main").replaceWith(doc.getElementById("main"));
      document.getElementById("updated").replaceWith(doc.getElementById("updated"));
      document.title = doc.title;
      for (const id of open) {
        const d = document.getElementById(id);
        if (d) d.open = true;
      }
      // For the tests and benchmarks: how many swaps, and what the last one cost.
      document.body.dataset.updates = String(Number(document.body.dataset.updates || 0) + 1);
      document.body.dataset.swapMs = (performance.now() - t0).toFixed(1);
      if (live.textContent) live.textContent = "";
      document.body.classList.remove("stale");
    } catch (e) {
      live.textContent = `Connection to the server lost (${e.message}); retrying.`;
      document.body.classList.add("stale");
    } finally {
      busy = false;
    }
  }

  setInterval(refresh, EVERY_MS);
  document.addEventListener("visibilitychange", refresh);
})();
