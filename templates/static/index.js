// Download page: keeps the platform fields consistent, filters the catalog,
// validates free-form modules through the api, shows the curl line, keeps the
// chosen plugins in the address (?package=…, as the official page does: such a
// link opens the page with them chosen), and starts the build with POST
// /api/builds before moving to the build page. Without JavaScript the form
// still submits to /api/compat.
(function () {
  "use strict";
  const form = document.getElementById("download");
  const os = document.getElementById("os"), arch = document.getElementById("arch");
  const arm = document.getElementById("arm"), version = document.getElementById("version");
  const search = document.getElementById("search"), extra = document.getElementById("extra");
  const extras = document.getElementById("extras"), curl = document.getElementById("curl");
  const extraStatus = document.getElementById("extra-status"), submitStatus = document.getElementById("submit-status");
  const armLabel = document.getElementById("arm-label");
  const base = location.origin;

  const targets = JSON.parse(arch.dataset.targets);

  // The chosen target as the api lists it (its ARM variants and their default
  // come from there too: the page keeps no copy of the rules).
  function target() {
    return targets.find(t => t.os === os.value && t.arch === arch.value);
  }

  // Offers only the architectures Go supports for the chosen OS, and ARM
  // variants only for targets that have them.
  function syncTargets() {
    const want = arch.value;
    const options = targets.filter(t => t.os === os.value).map(t => t.arch);
    if (options.join() !== [...arch.options].map(o => o.value).join()) {
      arch.replaceChildren(...options.map(a => new Option(a, a)));
      arch.value = options.includes(want) ? want : options.includes("amd64") ? "amd64" : options[0];
    }
    const t = target(), variants = (t && t.arm_versions) || [];
    armLabel.hidden = variants.length === 0;
    arm.disabled = variants.length === 0;
    for (const o of arm.options) o.hidden = o.value !== "" && !variants.includes(o.value);
    if (variants.length && !variants.includes(arm.value)) arm.value = t.default_arm;
    if (!variants.length) arm.value = "";
  }

  function plugins() {
    const picked = [...form.querySelectorAll("#catalog input:checked")].map(i => i.value);
    return picked.concat([...extras.querySelectorAll("li")].map(li => li.dataset.value));
  }

  function query() {
    const q = new URLSearchParams({ os: os.value, arch: arch.value });
    if (!arm.disabled && arm.value) q.append("arm", arm.value);
    if (version.value) q.append("version", version.value);
    for (const p of plugins()) q.append("p", p);
    return q.toString();
  }

  function update() {
    curl.textContent = 'curl -fo ' + (os.value === "windows" ? "caddy.exe" : "caddy") + ' "' + base + "/api/compat?" + query() + '"';
    const url = new URL(location.href);
    url.searchParams.delete("package");
    for (const p of plugins()) url.searchParams.append("package", p);
    history.replaceState(null, "", url);
  }

  // An added module's Remove button (also of those the page came with).
  function removable(li) {
    li.querySelector("button").addEventListener("click", () => { li.remove(); update(); });
  }
  for (const li of extras.querySelectorAll("li")) removable(li);

  search.addEventListener("input", () => {
    const words = search.value.toLowerCase().split(/\s+/).filter(Boolean);
    let shown = 0;
    for (const li of document.querySelectorAll("#catalog li")) {
      const hit = words.every(w => li.dataset.text.includes(w));
      li.hidden = !hit;
      if (hit) shown++;
    }
    document.getElementById("catalog-empty").hidden = shown > 0;
  });

  let checkSeq = 0;
  async function check(value) {
    const seq = ++checkSeq;
    if (!value) { extraStatus.textContent = ""; extraStatus.className = "status"; return null; }
    const at = value.lastIndexOf("@");
    const module = at > 0 ? value.slice(0, at) : value, ver = at > 0 ? value.slice(at + 1) : "";
    extraStatus.textContent = "checking " + module + "…"; extraStatus.className = "status";
    try {
      const r = await fetch("/api/modules/check?" + new URLSearchParams({ module, version: ver }));
      const body = await r.json();
      if (seq !== checkSeq) return null;
      if (!r.ok) { extraStatus.textContent = body.error.message; extraStatus.className = "status bad"; return null; }
      extraStatus.textContent = body.module + " " + body.version + " found"; extraStatus.className = "status good";
      return body.module + (ver ? "@" + body.version : "");
    } catch (e) {
      if (seq === checkSeq) { extraStatus.textContent = "could not check: " + e; extraStatus.className = "status bad"; }
      return null;
    }
  }

  let timer = null;
  extra.addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(() => check(extra.value.trim()), 300); });
  async function addExtra() {
    // A check still pending from typing would start after this one and void its answer.
    clearTimeout(timer);
    const ok = await check(extra.value.trim());
    if (!ok || plugins().includes(ok)) return;
    const li = document.createElement("li");
    li.dataset.value = ok;
    li.textContent = ok + " ";
    const rm = document.createElement("button");
    rm.type = "button"; rm.textContent = "Remove"; rm.setAttribute("aria-label", "Remove " + ok);
    li.appendChild(rm);
    removable(li);
    extras.appendChild(li);
    extra.value = "";
    update();
  }
  document.getElementById("add-extra").addEventListener("click", addExtra);
  extra.addEventListener("keydown", e => { if (e.key === "Enter") { e.preventDefault(); addExtra(); } });

  form.addEventListener("change", () => { syncTargets(); update(); });
  form.addEventListener("submit", async e => {
    e.preventDefault();
    const spec = { caddy_version: version.value, os: os.value, arch: arch.value,
      plugins: plugins().map(p => { const at = p.lastIndexOf("@"); return at > 0 ? { module: p.slice(0, at), version: p.slice(at + 1) } : { module: p, version: "" }; }) };
    if (!arm.disabled && arm.value) spec.arm = arm.value;
    submitStatus.textContent = "submitting…"; submitStatus.className = "status";
    try {
      const r = await fetch("/api/builds", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(spec) });
      const body = await r.json();
      if (!r.ok) { submitStatus.textContent = body.error.message; submitStatus.className = "status bad"; return; }
      location.href = "/builds/" + body.build_key;
    } catch (err) { submitStatus.textContent = "could not submit: " + err; submitStatus.className = "status bad"; }
  });
  syncTargets();
  update();
})();
