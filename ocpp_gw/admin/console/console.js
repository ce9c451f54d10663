// The ocpp-gw operator console: a few pages over the admin JSON API, no build step, no external assets.
// Every value from the gateway goes into the page as text (textContent), never as HTML.
"use strict";

(function () {
  const REFRESH_MS = 3000;
  const UNSAFE = new Set(["POST", "PUT", "PATCH", "DELETE"]);
  const state = { csrf: null, tokenRequired: false, timer: null, page: null, credentials: null };

  const $ = (id) => document.getElementById(id);

  // -- talking to the API -------------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  async function api(method, path, body) {
    const headers = { Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (UNSAFE.has(method) && state.csrf) headers["X-CSRF-Token"] = state.csrf;
    const response = await fetch(path, {
      method, headers, credentials: "same-origin", cache: "no-store",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    let data = null;
    try { data = await response.json(); } catch (e) { data = null; }
    if (response.status === 401 && path !== "/api/v1/login") {
      showLogin();
      throw new ApiError(401, "log in first");
    }
    if (!response.ok) throw new ApiError(response.status, (data && data.error) || response.statusText);
    return data;
  }

  // -- small helpers ------------------------------------------------------------------------

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (name === "class") node.className = value;
      else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
      else node.setAttribute(name, value === true ? "" : value);
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function pad(n) { return String(n).padStart(2, "0"); }

  function clock(ts) {
    if (!ts) return "–";
    const d = new Date(ts * 1000);
    const time = `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
    const today = new Date();
    if (d.toDateString() === today.toDateString()) return time;
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${time}`;
  }

  function ago(ts) {
    if (!ts) return "";
    const s = Math.max(0, Math.round(Date.now() / 1000 - ts));
    if (s < 60) return `${s} s ago`;
    if (s < 3600) return `${Math.floor(s / 60)} min ago`;
    if (s < 86400) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min ago`;
    return `${Math.floor(s / 86400)} d ago`;
  }

  function duration(seconds) {
    if (seconds === null || seconds === undefined) return "–";
    if (seconds === 0) return "off";
    if (seconds < 120) return `${Math.round(seconds)} s`;
    if (seconds < 7200) return `${Math.round(seconds / 60)} min`;
    return `${(seconds / 3600).toFixed(1)} h`;
  }

  function uptime(seconds) {
    const d = Math.floor(seconds / 86400), h = Math.floor((seconds % 86400) / 3600);
    const m = Math.floor((seconds % 3600) / 60), s = Math.floor(seconds % 60);
    return (d ? `${d} d ` : "") + `${pad(h)}:${pad(m)}:${pad(s)}`;
  }

  function fill(tbody, rows) { tbody.replaceChildren(...rows); }

  function facts(dl, pairs) {
    dl.replaceChildren(...pairs.flatMap(([term, value]) => [el("dt", {}, term), el("dd", {}, value)]));
  }

  function banner(message) {
    const node = $("banner");
    node.textContent = message || "";
    node.hidden = !message;
  }

  function confirmDialog(text, okLabel) {
    const dialog = $("confirm");
    $("confirm-text").textContent = text;
    $("confirm-ok").textContent = okLabel || "OK";
    return new Promise((resolve) => {
      dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
      dialog.returnValue = "cancel";
      dialog.showModal();
    });
  }

  function refreshed() { $("footer-refreshed").textContent = `· updated ${clock(Date.now() / 1000)}`; }

  // -- pages --------------------------------------------------------------------------------

  const pages = {
    chargers: { view: "view-chargers", load: loadChargers, poll: true },
    charger: { view: "view-charger", load: loadCharger, poll: true },
    credentials: { view: "view-credentials", load: loadCredentials, poll: false },
    status: { view: "view-status", load: loadStatus, poll: true },
  };

  function route() {
    const hash = location.hash.replace(/^#\/?/, "");
    const [name, ...rest] = hash.split("/");
    if (name === "chargers" && rest.length) return { name: "charger", cid: decodeURIComponent(rest.join("/")) };
    return { name: pages[name] ? name : "chargers" };
  }

  function showOnly(viewId) {
    for (const section of document.querySelectorAll("main > section")) section.hidden = section.id !== viewId;
  }

  async function render() {
    clearTimeout(state.timer);
    const current = route();
    state.page = current;
    const page = pages[current.name];
    showOnly(page.view);
    for (const link of document.querySelectorAll("#nav a")) {
      link.classList.toggle("active", link.dataset.page === (current.name === "charger" ? "chargers" : current.name));
    }
    await tick(current);
  }

  async function tick(current) {
    const page = pages[current.name];
    try {
      await page.load(current);
      banner("");
      refreshed();
    } catch (err) {
      if (err.status === 401) return;
      banner(err.status ? `${err.message}` : `The gateway does not answer (${err.message}).`);
    }
    if (page.poll && state.page === current) {
      state.timer = setTimeout(() => tick(current), REFRESH_MS);
    }
  }

  // Chargers ------------------------------------------------------------------------------

  function stateBadge(pipeState) {
    return el("span", { class: `badge state-${String(pipeState).toLowerCase()}` }, pipeState);
  }

  function kickButton(cid) {
    return el("button", {
      class: "danger small", type: "button", "data-kick": cid,
      onclick: (event) => { event.stopPropagation(); kick(cid); },
    }, "Kick");
  }

  async function kick(cid) {
    const ok = await confirmDialog(
      `Kick ${cid}? Its connection is closed now (code 1000); the charge point will usually reconnect on its own.`,
      "Kick");
    if (!ok) return;
    try {
      await api("DELETE", `/api/v1/clients/${encodeURIComponent(cid)}`);
      banner("");
    } catch (err) {
      if (err.status !== 401) banner(`Kick ${cid}: ${err.message}`);
    }
    clearTimeout(state.timer);
    await tick(state.page);
  }

  function chargerLink(cid) {
    return el("a", { href: `#/chargers/${encodeURIComponent(cid)}` }, cid);
  }

  async function loadChargers() {
    const [clients, gone] = await Promise.all([api("GET", "/api/v1/clients"), api("GET", "/api/v1/disconnects")]);
    const filter = $("charger-filter").value.trim().toLowerCase();
    const match = (cid) => !filter || cid.toLowerCase().includes(filter);
    const connected = new Set(clients.map((c) => c.cid));
    clients.sort((a, b) => a.cid.localeCompare(b.cid));
    const rows = clients.filter((c) => match(c.cid)).map((c) => el("tr", { "data-cid": c.cid, class: "live" },
      el("td", {}, chargerLink(c.cid)),
      el("td", {}, c.peer),
      el("td", { title: ago(c.connected_at) }, clock(c.connected_at)),
      el("td", {}, stateBadge(c.state)),
      el("td", {}, c.last_message_at ? `${clock(c.last_message_at)} ${c.last_action || ""}` : "–"),
      el("td", {}, duration(c.heartbeat_interval)),
      el("td", { class: "num" }, c.queue_depth),
      el("td", { class: "num" }, c.messages_in),
      el("td", { class: "num" }, c.messages_out),
      el("td", {}, c.version || "–"),
      el("td", {}, kickButton(c.cid)),
    ));
    const recent = gone.filter((g) => !connected.has(g.cid) && match(g.cid)).map((g) => el("tr", { "data-cid": g.cid, class: "gone" },
      el("td", {}, chargerLink(g.cid)),
      el("td", {}, g.peer),
      el("td", {}, `${clock(g.connected_at)} – ${clock(g.disconnected_at)}`),
      el("td", { colspan: "2" }, el("span", { class: "badge state-gone" }, "disconnected"), " ", g.reason),
      el("td", {}, duration(g.heartbeat_interval)),
      el("td", { class: "num" }, "–"),
      el("td", { class: "num" }, g.messages_in),
      el("td", { class: "num" }, g.messages_out),
      el("td", {}, g.version || "–"),
      el("td", { class: "muted small" }, ago(g.disconnected_at)),
    ));
    fill($("chargers").tBodies[0], [...rows, ...recent]);
    $("chargers-empty").hidden = rows.length + recent.length > 0;
    $("charger-count").textContent = `${clients.length} connected`;
  }

  // One charger ---------------------------------------------------------------------------

  const DIRECTIONS = {
    from_cp: "CP → gateway", to_cp: "gateway → CP", to_csms: "gateway → CSMS", from_csms: "CSMS → gateway",
  };

  async function loadCharger({ cid }) {
    let info, live = true;
    try {
      info = await api("GET", `/api/v1/clients/${encodeURIComponent(cid)}`);
    } catch (err) {
      if (err.status !== 404) throw err;
      live = false;
      try {
        info = await api("GET", `/api/v1/disconnects/${encodeURIComponent(cid)}`);
      } catch (again) {
        if (again.status !== 404) throw again;
        info = null;
      }
    }
    $("charger-title").textContent = cid;
    const badge = $("charger-state");
    $("charger-kick").hidden = !live;
    $("charger-kick").onclick = () => kick(cid);
    if (!info) {
      badge.textContent = "not connected";
      badge.className = "badge state-gone";
      facts($("charger-facts"), [["Status", "Not connected, and not seen disconnecting since the gateway started."]]);
      fill($("charger-history").tBodies[0], []);
      fill($("charger-errors").tBodies[0], []);
      $("charger-history-empty").hidden = false;
      $("charger-errors-empty").hidden = false;
      return;
    }
    badge.textContent = live ? info.state : "disconnected";
    badge.className = `badge state-${live ? String(info.state).toLowerCase() : "gone"}`;
    const pairs = [
      ["Peer", info.peer],
      ["User name", info.username || "–"],
      ["OCPP version", info.version || "–"],
      ["Subprotocol", info.subprotocol || "– (no header: the default version)"],
      ["Connected since", `${clock(info.connected_at)} (${ago(info.connected_at)})`],
    ];
    if (!live) pairs.push(["Disconnected", `${clock(info.disconnected_at)} (${ago(info.disconnected_at)}): ${info.reason}`]);
    pairs.push(
      ["Last message", info.last_message_at ? `${clock(info.last_message_at)} ${info.last_action || ""}` : "–"],
      ["Heartbeat interval", duration(info.heartbeat_interval)],
      ["Queued CSMS calls", String(info.queue_depth)],
      ["Messages in / out", `${info.messages_in} / ${info.messages_out}`],
    );
    facts($("charger-facts"), pairs);

    const history = (info.history || []).slice().reverse();
    // Replies carry no action on the wire; name it after the call they answer, when that is still kept.
    const calls = new Map(history.filter((h) => h.type === "Call").map((h) => [h.unique_id, h.action]));
    for (const h of history) if (!h.action && calls.has(h.unique_id)) h.action = calls.get(h.unique_id);
    $("charger-payload-note").textContent = live
      ? (info.history_payloads ? "Payloads are kept (admin.history_payloads = true)."
        : "Payloads are not kept: set admin.history_payloads = true to see them (they may hold personal data).")
      : "Payloads of a disconnected charge point are not kept.";
    fill($("charger-history").tBodies[0], history.map((h) => el("tr", { class: h.gateway_error ? "gateway-error" : "" },
      el("td", {}, clock(h.ts)),
      el("td", {}, DIRECTIONS[h.direction] || h.direction),
      el("td", {}, h.type),
      el("td", {}, h.action || ""),
      el("td", { class: "mono" }, h.unique_id),
      el("td", { class: "num" }, h.size),
      el("td", { class: "mono payload" }, h.payload === null || h.payload === undefined ? "" : JSON.stringify(h.payload)),
    )));
    $("charger-history-empty").hidden = history.length > 0;
    const errors = history.filter((h) => h.gateway_error);
    fill($("charger-errors").tBodies[0], errors.map((h) => el("tr", {},
      el("td", {}, clock(h.ts)),
      el("td", {}, el("span", { class: "badge state-error" }, h.gateway_error)),
      el("td", { class: "mono" }, h.unique_id),
      el("td", {}, h.action || ""),
      el("td", {}, (h.payload && h.payload.ErrorDescription) || ""),
    )));
    $("charger-errors-empty").hidden = errors.length > 0;
  }

  // Credentials ---------------------------------------------------------------------------

  async function loadCredentials() {
    const data = await api("GET", "/api/v1/credentials");
    state.credentials = data;
    const form = $("credential-form");
    form.hidden = !data.editable;
    $("credentials-source").textContent = !data.editable
      ? `auth.backend = ${data.backend}: there is no credentials file to manage here.`
      : data.writable
        ? `Charge points allowed in, from ${data.file} (auth.backend = file). Passwords are stored hashed and never shown again.`
        : `Charge points allowed in, from ${data.file}. The gateway may not write that file (the packaged service sees /etc read-only): change credentials with "sudo ocpp-gw passwd" and "systemctl reload ocpp-gw".`;
    fill($("credentials").tBodies[0], data.credentials.map((c) => el("tr", { "data-cid": c.cid },
      el("td", {}, c.cid),
      el("td", {}, profileSelect(c)),
      el("td", {}, c.connected ? chargerLink(c.cid) : el("span", { class: "muted" }, "no")),
      el("td", { class: "actions" },
        el("button", { type: "button", class: "small", "data-reset": c.cid, onclick: () => resetPassword(c.cid) }, "New password"),
        " ",
        el("button", { type: "button", class: "danger small", "data-remove": c.cid, onclick: () => removeCredential(c.cid) }, "Remove")),
    )));
    $("credentials-empty").hidden = !data.editable || data.credentials.length > 0;
  }

  function profileSelect(credential) {
    const select = el("select", { "data-profile": credential.cid, "aria-label": `Security profile of ${credential.cid}` },
      [1, 2, 3].map((p) => el("option", { value: String(p), selected: p === credential.profile }, String(p))));
    select.addEventListener("change", async () => {
      try {
        await api("PATCH", `/api/v1/credentials/${encodeURIComponent(credential.cid)}`, { profile: Number(select.value) });
        credentialMessage(`${credential.cid}: security profile ${select.value}.`, false);
      } catch (err) {
        credentialMessage(`${credential.cid}: ${err.message}`, true);
      }
      await loadCredentials();
    });
    return select;
  }

  function credentialMessage(text, isError) {
    const node = $("credential-message");
    node.textContent = text;
    node.className = isError ? "error" : "ok";
  }

  function showSecret(cid, password) {
    $("credential-secret-cid").textContent = cid;
    $("credential-secret-password").textContent = password;
    $("credential-secret").hidden = false;
  }

  async function addCredential(event) {
    event.preventDefault();
    const cid = $("credential-cid").value.trim();
    const password = $("credential-password").value;
    const body = { cid, profile: Number($("credential-profile").value) };
    if (password) body.password = password;
    try {
      const made = await api("POST", "/api/v1/credentials", body);
      $("credential-form").reset();
      credentialMessage(`${cid} added.`, false);
      if (made.password) showSecret(cid, made.password);
      else $("credential-secret").hidden = true;
    } catch (err) {
      credentialMessage(`${cid}: ${err.message}`, true);
    }
    await loadCredentials();
  }

  async function resetPassword(cid) {
    if (!await confirmDialog(`Give ${cid} a new generated password? The old one stops working for new connections.`, "New password")) return;
    try {
      const changed = await api("PATCH", `/api/v1/credentials/${encodeURIComponent(cid)}`, { generate_password: true });
      showSecret(cid, changed.password);
      credentialMessage("", false);
    } catch (err) {
      credentialMessage(`${cid}: ${err.message}`, true);
    }
  }

  async function removeCredential(cid) {
    if (!await confirmDialog(`Remove ${cid} from the credentials file? It can no longer connect (a connected charge point stays connected until it reconnects).`, "Remove")) return;
    try {
      await api("DELETE", `/api/v1/credentials/${encodeURIComponent(cid)}`);
      credentialMessage(`${cid} removed.`, false);
    } catch (err) {
      credentialMessage(`${cid}: ${err.message}`, true);
    }
    await loadCredentials();
  }

  // Status ---------------------------------------------------------------------------------

  async function loadStatus() {
    const s = await api("GET", "/api/v1/status");
    const mqtt = s.mqtt;
    facts($("status-facts"), [
      ["MQTT broker", el("span", {},
        el("span", { class: `badge ${mqtt.connected ? "state-ok" : "state-error"}` }, mqtt.connected ? "connected" : "not connected"),
        ` ${mqtt.server} as ${mqtt.client_id} (MQTT ${mqtt.protocol})`,
        mqtt.servers && mqtt.servers.length > 1
          ? ` — ${mqtt.connected ? "in use" : "trying"} of ${mqtt.servers.join(", ")}` : "")],
      ["Charge points", `${s.connections} connected`],
      ["Uptime", `${uptime(s.uptime)} (since ${clock(s.started_at)})`],
      ["Version", `ocpp-gw ${s.version}`],
      ["Configuration file", s.config_file || "–"],
      ["Authentication", `auth.backend = ${s.auth_backend}`],
    ]);
    fill($("status-listeners").tBodies[0], s.listeners.map((l) => el("tr", {},
      el("td", {}, l.name), el("td", { class: "mono" }, l.address), el("td", { class: "mono" }, l.path),
      el("td", {}, el("span", { class: `badge ${l.alive ? "state-ok" : "state-error"}` }, l.alive ? "yes" : "no")),
    )));
    const filter = $("config-filter").value.trim().toLowerCase();
    fill($("status-config").tBodies[0], Object.entries(s.config)
      .filter(([key]) => !filter || key.includes(filter))
      .map(([key, value]) => el("tr", {}, el("td", { class: "mono" }, key), el("td", { class: "mono" }, value === "" ? "(unset)" : value))));
  }

  // -- login and start-up ---------------------------------------------------------------------

  function showLogin() {
    clearTimeout(state.timer);
    state.page = null;
    $("nav").hidden = true;
    $("logout").hidden = true;
    showOnly("view-login");
    $("login-token").focus();
  }

  async function login(event) {
    event.preventDefault();
    $("login-error").textContent = "";
    try {
      const session = await api("POST", "/api/v1/login", { token: $("login-token").value });
      $("login-token").value = "";
      await started(session);
    } catch (err) {
      $("login-error").textContent = err.status === 401 ? "Wrong token." : err.message;
    }
  }

  async function logout() {
    try { await api("POST", "/api/v1/logout"); } catch (err) { /* the cookie is gone either way */ }
    state.csrf = null;
    showLogin();
  }

  async function started(session) {
    state.csrf = session.csrf;
    state.tokenRequired = session.token_required;
    $("footer-version").textContent = `ocpp-gw ${session.version}`;
    if (!session.logged_in) { showLogin(); return; }
    $("nav").hidden = false;
    $("logout").hidden = !session.token_required;
    await render();
  }

  async function boot() {
    $("login-form").addEventListener("submit", login);
    $("logout").addEventListener("click", logout);
    $("credential-form").addEventListener("submit", addCredential);
    $("credential-secret-done").addEventListener("click", () => { $("credential-secret").hidden = true; });
    $("charger-filter").addEventListener("input", () => { if (state.page && state.page.name === "chargers") loadChargers(); });
    $("config-filter").addEventListener("input", () => { if (state.page && state.page.name === "status") loadStatus(); });
    window.addEventListener("hashchange", () => { if (state.csrf) render(); });
    try {
      await started(await api("GET", "/api/v1/session"));
    } catch (err) {
      banner(`The gateway does not answer (${err.message}).`);
    }
  }

  document.addEventListener("DOMContentLoaded", boot);
})();
