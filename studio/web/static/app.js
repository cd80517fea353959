// Studio home: the Server Details panel of the active server, the servers
// shared with me and the server switcher. Everything comes from the JSON
// API; nothing is kept that a reload would not rebuild.

import { api, ApiError } from "./api.js";
import {
  accessText, el, initial, personName, say, stateText, transitional, until,
} from "./dom.js";
import { setupShareDialog } from "./share.js";
import { mountSwitcher } from "./switcher.js";

const $ = (id) => document.getElementById(id);

const page = {
  me: null,
  servers: [],
  server: null, // the active server's details
  pending: null, // "start" or "stop" while such a call runs
  poll: 0,
};

const switcher = mountSwitcher($("switcher"), { onSelect: switchTo });
const shareDialog = setupShareDialog({ onChange: () => refreshServers() });

// notice shows a page-wide message; an empty text hides it.
function notice(text, kind = "info") {
  const n = $("notice");
  say(n, text, kind);
  n.hidden = !text;
}

// ---- the active server's details ----

function renderDetails() {
  const s = page.server;
  const card = $("details");
  card.setAttribute("aria-busy", "false");
  if (!s) return;

  const state = page.pending === "start" && s.state !== "running" ? "starting"
    : page.pending === "stop" && s.state !== "stopped" ? "stopping"
      : s.state;
  const badge = $("server-state");
  badge.dataset.state = state;
  badge.querySelector(".state-text").textContent = stateText(state);

  $("server-name").textContent = s.label;
  $("server-path").textContent = s.url;
  $("server-owner").textContent = s.mine ? "You"
    : personName(s.owner, s.owner_display_name) +
      (s.owner_display_name ? ` (${s.owner})` : "");
  $("server-access").textContent = accessText(s);
  $("server-expires-row").hidden = !s.expires;
  $("server-expires").textContent = s.expires ? until(s.expires) : "";

  const reason = $("server-reason");
  reason.hidden = !(state === "failed" && s.reason);
  reason.textContent = s.reason ? "It failed: " + s.reason : "";

  // Open works on a running server; Start and Stop exist only for those
  // who may use them; Share only for the owner and admins
  const open = $("open-link");
  open.href = s.url;
  const canOpen = state === "running";
  open.setAttribute("aria-disabled", canOpen ? "false" : "true");
  if (canOpen) open.removeAttribute("tabindex");
  else open.setAttribute("tabindex", "-1");

  const start = $("start-button");
  const stop = $("stop-button");
  start.hidden = stop.hidden = !s.can_start_stop;
  start.disabled = !!page.pending || !(state === "stopped" || state === "failed");
  stop.disabled = !!page.pending || state !== "running";
  $("share-button").hidden = !s.can_share;

  const hint = $("server-hint");
  let text = "";
  if (!s.can_start_stop && state !== "running") {
    text = `This server is ${stateText(state).toLowerCase().replace("…", "")}. ` +
      `Only ${s.owner} or someone they allowed can start it.`;
  } else if (!s.can_start_stop) {
    text = `You can use this server. ${s.owner} has not allowed you to start or stop it.`;
  } else if (state === "stopped") {
    text = "Start the server to open its notebooks, files and tools.";
  }
  hint.textContent = text;
  hint.hidden = !text;
}

// loadDetails fetches the active server's details, and keeps polling every
// second while it is starting or stopping.
async function loadDetails() {
  clearTimeout(page.poll);
  const id = activeId();
  if (!id) return;
  try {
    page.server = await api.server(id);
    renderDetails();
  } catch (e) {
    await lostAccess(e);
    return;
  }
  if (page.pending || transitional(page.server.state)) {
    page.poll = setTimeout(loadDetails, 1000);
  }
  // keep the switcher's state dots and the shared list true
  const entry = page.servers.find((s) => s.id === page.server.id);
  if (entry && entry.state !== page.server.state) {
    entry.state = page.server.state;
    switcher.update(page.servers);
    renderShared();
  }
}

function activeId() {
  const a = page.servers.find((s) => s.active);
  return a ? a.id : page.me && page.me.default_server;
}

// lostAccess handles a refusal of the active server: its share was
// removed, or it is gone. The page says so and falls back to the list the
// API now gives.
async function lostAccess(e) {
  const lostCodes = ["no_access", "not_allowed", "no_server"];
  if (!(e instanceof ApiError) || !lostCodes.includes(e.code)) {
    say($("details-message"), e.message, "error");
    return;
  }
  const lostId = page.server ? page.server.id : activeId();
  const lost = page.server ? page.server.label : "that server";
  page.server = null;
  await refreshServers();
  const now = page.servers.find((s) => s.active);
  notice(e.code === "no_server"
    ? `${lost} no longer exists. Studio now shows ${now ? now.label : "your server"}.`
    : `You no longer have access to ${lost}: its owner removed it, or the share ended. ` +
      `Studio now shows ${now ? now.label : "your server"}.`, "error");
  if (activeId() && activeId() !== lostId) await loadDetails();
}

async function startStop(what) {
  const s = page.server;
  const button = $(what + "-button");
  say($("details-message"), "");
  page.pending = what;
  renderDetails();
  page.poll = setTimeout(loadDetails, 1000);
  try {
    await (what === "start" ? api.start(s.id) : api.stop(s.id));
    say($("details-message"), what === "start"
      ? `${s.label} is running.` : `${s.label} is stopped.`, "success");
  } catch (e) {
    page.pending = null;
    if (e.status === 403 || e.status === 404) {
      await lostOrDenied(e);
    } else {
      say($("details-message"), e.message, "error");
    }
  } finally {
    page.pending = null;
    await loadDetails();
    if (!button.hidden && !button.disabled) button.focus();
  }
}

// lostOrDenied decides, after a refused start or stop, whether the user
// lost the server or only the permission, and shows which.
async function lostOrDenied(e) {
  try {
    page.server = await api.server(page.server.id);
    say($("details-message"), e.message, "error");
  } catch (err) {
    await lostAccess(err);
  }
}

$("start-button").addEventListener("click", () => startStop("start"));
$("stop-button").addEventListener("click", () => startStop("stop"));
$("share-button").addEventListener("click", (e) => {
  if (page.server) shareDialog.open(page.server, e.currentTarget);
});
$("open-link").addEventListener("click", (e) => {
  if (e.currentTarget.getAttribute("aria-disabled") === "true") e.preventDefault();
});

// ---- servers: the switcher and Shared with me ----

async function refreshServers() {
  let list;
  try {
    list = await api.servers();
  } catch (e) {
    notice(e.message, "error");
    return;
  }
  page.servers = list.servers;
  switcher.update(page.servers);
  renderShared();

  // the cookie named a server this user may no longer use: point it back
  // at the one the API chose, so that notebooks open there too
  if (list.requested) {
    api.setActive(list.active).catch(() => {});
  }
}

function renderShared() {
  const shared = page.servers.filter((s) => !s.mine);
  $("shared-empty").hidden = shared.length > 0;
  $("shared-table").hidden = shared.length === 0;
  $("shared-rows").replaceChildren(...shared.map((s) => {
    const permission = s.access === "start_stop" ? "Start/Stop Enabled"
      : s.access === "use" ? "Start/Stop Disabled" : "Admin";
    const leave = s.access === "start_stop" || s.access === "use"
      ? el("button", {
        type: "button",
        class: "button small",
        "aria-label": `Leave ${s.label}`,
        onclick: (e) => leaveServer(s, e.currentTarget),
      }, "Leave")
      : null;
    const use = el("button", {
      type: "button",
      class: "button small",
      "aria-label": s.active ? `${s.label} is the active server` : `Switch to ${s.label}`,
      disabled: s.active,
      onclick: () => switchTo(s.id),
    }, s.active ? "Active" : "Switch");
    return el("tr", { "data-id": s.id },
      el("td", {},
        el("div", { class: "cell-main" }, s.label),
        el("div", { class: "cell-sub" }, stateText(s.state))),
      el("td", {}, personName(s.owner, s.owner_display_name),
        s.owner_display_name ? el("div", { class: "cell-sub" }, s.owner) : null),
      el("td", {}, el("span", { class: "pill" + (s.can_start_stop ? " on" : "") }, permission)),
      el("td", {}, until(s.expires)),
      el("td", {}, use, leave));
  }));
}

async function leaveServer(s, button) {
  button.disabled = true;
  try {
    await api.leave(s.id);
    say($("shared-message"), `You left ${s.label}. Ask ${s.owner} if you need it again.`,
      "success");
  } catch (e) {
    say($("shared-message"), e.message, "error");
  }
  await refreshServers();
  if (page.server && page.server.id === s.id) await loadDetails();
  $("shared-title").focus();
}

// switchTo makes a server the active one: notebooks, files and tools then
// open in it, and Studio home shows its details.
async function switchTo(id) {
  const target = page.servers.find((s) => s.id === id);
  try {
    await api.setActive(id);
  } catch (e) {
    notice(e.message, "error");
    await refreshServers();
    return;
  }
  notice(target ? `Switched to ${target.label}. Notebooks, files and tools now open in it.` : "");
  say($("details-message"), "");
  await refreshServers();
  await loadDetails();
}

// ---- start ----

function renderMe() {
  const me = page.me;
  $("me-name").textContent = personName(me.name, me.display_name);
  $("me-name").title = personName(me.name, me.display_name);
  $("me-org").textContent = me.display_name ? `${me.name} · ${me.org}` : me.org;
  $("me-initial").textContent = initial(me);
  $("greeting").textContent = `Welcome, ${personName(me.name, me.display_name)}. ` +
    "Your server and the servers colleagues share with you.";
}

async function main() {
  $("shared-title").setAttribute("tabindex", "-1");
  try {
    page.me = await api.me();
  } catch (e) {
    notice(e.message, "error");
    return;
  }
  renderMe();
  await refreshServers();
  await loadDetails();

  // coming back to the tab: the world may have changed meanwhile
  document.addEventListener("visibilitychange", async () => {
    if (document.visibilityState === "visible") {
      await refreshServers();
      await loadDetails();
    }
  });
}

main();
