// Build page: follows the build's log over Server-Sent Events and moves the step
// indicator as the worker's steps change; on the end of the build it reloads the
// build's status to show the download (or the error).
(function () {
  "use strict";
  const root = document.getElementById("build");
  const key = root.dataset.key;
  const log = document.getElementById("log"), statusEl = document.getElementById("status");
  const order = ["queued", "resolving", "building", "verifying", "done"];
  const stepOf = { resolve: "resolving", build: "building", verify: "verifying", publish: "verifying" };
  let current = "queued", failed = false;

  function show(step, bad) {
    current = step; failed = !!bad;
    const at = order.indexOf(step);
    for (const li of document.querySelectorAll("#steps li")) {
      const i = order.indexOf(li.dataset.step);
      li.className = i < at || (step === "done" && i === at) ? "done" : i === at ? (failed ? "failed" : "current") : "";
      if (i === at) li.setAttribute("aria-current", "step"); else li.removeAttribute("aria-current");
    }
  }

  function append(l) {
    const span = document.createElement("span");
    span.className = l.stream || "stdout";
    span.textContent = "[" + l.step + "] " + l.line + "\n";
    const stick = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
    log.appendChild(span);
    if (stick) log.scrollTop = log.scrollHeight;
    if (stepOf[l.step] && order.indexOf(stepOf[l.step]) > order.indexOf(current)) show(stepOf[l.step]);
  }

  async function refresh() {
    const r = await fetch("/api/builds/" + key);
    if (!r.ok) return null;
    const b = await r.json();
    statusEl.textContent = b.status;
    root.dataset.status = b.status;
    const xcaddy = document.getElementById("xcaddy-command");
    if (xcaddy && b.xcaddy_command) xcaddy.textContent = b.xcaddy_command;
    const err = document.getElementById("error");
    if (b.error && b.status !== "succeeded") { err.textContent = b.error; err.hidden = false; }
    if (b.status === "building" && current === "queued") show("resolving");
    if (b.status === "succeeded") {
      show("done");
      const a = b.artifact || {};
      document.getElementById("size").textContent = a.size || "";
      document.getElementById("sha256").textContent = a.sha256 || "";
      for (const s of document.querySelectorAll(".sha")) s.textContent = a.sha256 || "";
      document.getElementById("download-panel").hidden = false;
    } else if (b.status === "failed" || b.status === "cancelled") {
      show(current, true);
    }
    return b;
  }

  const initial = root.dataset.status;
  if (initial === "succeeded") show("done");
  else if (initial === "building") show("resolving");
  else show("queued", initial === "failed" || initial === "cancelled");

  // `log` events carry one stored line each; `end` says the build is finished.
  // On a dropped connection EventSource reconnects with Last-Event-ID by itself.
  const es = new EventSource("/api/builds/" + key + "/log");
  es.addEventListener("log", e => append(JSON.parse(e.data)));
  es.addEventListener("end", async () => { es.close(); await refresh(); });
  es.onerror = () => { refresh(); };
  refresh();
})();
