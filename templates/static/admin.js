// Admin page: the token stays in this tab (sessionStorage) and goes along as a
// bearer token on every admin API call; the tables refresh every few seconds.
(function () {
  "use strict";
  const tokenInput = document.getElementById("token"), status = document.getElementById("admin-status");
  let token = sessionStorage.getItem("cbs-admin-token") || "";
  let timer = null;

  async function api(path, method) {
    const r = await fetch("/api/admin/" + path, { method: method || "GET", headers: { authorization: "Bearer " + token } });
    const body = await r.json();
    if (!r.ok) throw new Error(body.error ? body.error.message : r.statusText);
    return body;
  }

  function cell(tr, text, code) {
    const td = document.createElement("td");
    if (code) { const c = document.createElement("code"); c.textContent = text; td.appendChild(c); } else td.textContent = text == null ? "" : text;
    tr.appendChild(td);
    return td;
  }

  function link(tr, key) {
    const td = document.createElement("td"), a = document.createElement("a");
    a.href = "/builds/" + key; a.textContent = key.slice(0, 12); td.appendChild(a); tr.appendChild(td);
  }

  function action(tr, key, verb) {
    const td = document.createElement("td"), b = document.createElement("button");
    b.type = "button"; b.textContent = verb; b.dataset.key = key; b.dataset.action = verb;
    b.setAttribute("aria-label", verb + " " + key.slice(0, 12));
    b.addEventListener("click", async () => {
      try { await api("builds/" + key + "/" + verb, "POST"); status.textContent = (verb === "cancel" ? "cancelled " : "requeued ") + key.slice(0, 12); status.className = "status good"; load(); }
      catch (e) { status.textContent = e.message; status.className = "status bad"; }
    });
    td.appendChild(b); tr.appendChild(td);
  }

  // A prebuild's reason in words: the config entry, or the releases it picked up
  // and how often the spec it came from was requested.
  function why(r) {
    if (r.reason === "configured") return "configured (prebuild.specs)";
    const d = r.detail || {}, parts = [];
    if (d.caddy) parts.push("caddy " + d.caddy.from + " → " + d.caddy.to);
    for (const p of d.plugins || []) parts.push(p.module + " " + p.from + " → " + p.to);
    return parts.join(", ") + (r.source_requests != null ? " (popular: " + r.source_requests + " requests)" : "");
  }

  function fill(id, rows, each) {
    const body = document.querySelector("#" + id + " tbody");
    body.replaceChildren();
    for (const r of rows) { const tr = document.createElement("tr"); each(tr, r); body.appendChild(tr); }
  }

  async function load() {
    try {
      const d = await api("overview");
      if (status.classList.contains("bad")) { status.textContent = ""; status.className = "status"; }
      document.getElementById("admin").hidden = false;
      document.getElementById("login").hidden = true;
      fill("overview", d.queue, (tr, r) => { cell(tr, r.status); cell(tr, r.builds); cell(tr, r.runnable); cell(tr, r.oldest_age); });
      fill("active", d.active, (tr, r) => { link(tr, r.build_key); cell(tr, r.worker_id); cell(tr, r.target); cell(tr, r.running_for); cell(tr, r.lease_left); action(tr, r.build_key, "cancel"); });
      fill("queued", d.queued, (tr, r) => { link(tr, r.build_key); cell(tr, r.target); cell(tr, r.client, true); cell(tr, r.priority); cell(tr, r.waiting_for); action(tr, r.build_key, "cancel"); });
      fill("clients", d.clients, (tr, r) => { cell(tr, r.client, true); cell(tr, r.admitted); cell(tr, r.refused); cell(tr, r.open_builds); });
      fill("prebuilds", d.prebuilds || [], (tr, r) => { link(tr, r.build_key); cell(tr, r.queued_at); cell(tr, why(r)); cell(tr, [r.target, "caddy@" + r.caddy_version, r.plugins].filter(Boolean).join(" "), true); cell(tr, r.status); cell(tr, r.ready_after); });
      fill("failures", d.failures, (tr, r) => { link(tr, r.build_key); cell(tr, r.finished_at); cell(tr, r.error, true); action(tr, r.build_key, "requeue"); });
    } catch (e) {
      status.textContent = e.message; status.className = "status bad";
      document.getElementById("admin").hidden = true;
      document.getElementById("login").hidden = false;
      clearInterval(timer); timer = null;
      return;
    }
    if (!timer) timer = setInterval(load, 3000);
  }

  document.getElementById("login").addEventListener("submit", e => {
    e.preventDefault();
    token = tokenInput.value;
    sessionStorage.setItem("cbs-admin-token", token);
    load();
  });
  if (token) load();
})();
