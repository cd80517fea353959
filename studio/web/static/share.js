// The Share Server dialog: grant a colleague access, change each person's
// Start/Stop permission, remove access. Every change takes effect at once.
//
// The username field is a combobox (ARIA 1.2): suggestions appear in a
// listbox below it as you type; ArrowDown and ArrowUp move through them,
// Enter takes one, Escape closes the list (and, with the list closed, the
// dialog). Focus returns to the Share button when the dialog closes.

import { api, ApiError } from "./api.js";
import { el, icon, initial, personName, say, until } from "./dom.js";

const $ = (id) => document.getElementById(id);

export function setupShareDialog({ onChange }) {
  const dialog = $("share-dialog");
  const title = $("share-title");
  const intro = $("share-intro");
  const form = $("share-form");
  const input = $("share-user");
  const listbox = $("share-suggestions");
  const permission = $("share-permission");
  const expiry = $("share-expiry");
  const submit = $("share-submit");
  const success = $("share-success");
  const error = $("share-error");
  const people = $("people");

  let server = null; // the server being shared
  let opener = null; // the element focus returns to
  let current = []; // people with access, owner first
  let suggestions = [];
  let activeOption = -1;
  let searchSeq = 0;
  let searchTimer = 0;

  function tell(text) {
    say(error, "");
    say(success, text);
  }
  function refuse(text) {
    say(success, "");
    say(error, text);
  }

  // ---- people with access ----

  async function loadPeople() {
    try {
      const data = await api.shares(server.id);
      current = data.people;
      renderPeople();
    } catch (e) {
      refuse(e.message);
    }
  }

  function renderPeople() {
    people.replaceChildren(...current.map((p) => {
      const name = personName(p.user, p.display_name);
      const sub = [p.display_name ? p.user : null,
        p.role === "grantee" && p.expires ? "until " + until(p.expires) : null]
        .filter(Boolean).join(" · ");
      const text = el("span", { class: "person-text" },
        el("span", { class: "person-name" }, name),
        sub ? el("span", { class: "person-sub" }, sub) : null);
      const avatar = el("span", { class: "avatar", "aria-hidden": "true" },
        initial({ name: p.user, display_name: p.display_name }));

      if (p.role === "owner") {
        return el("li", { class: "person", "data-user": p.user },
          avatar, text, el("span", { class: "pill role" }, "Owner"));
      }

      const select = el("select", {
        "aria-label": `Start/Stop permission for ${p.user}`,
        onchange: () => changePermission(p, select),
      },
      el("option", { value: "on", selected: p.start_stop }, "Start/Stop Enabled"),
      el("option", { value: "off", selected: !p.start_stop }, "Start/Stop Disabled"));

      const remove = el("button", {
        type: "button",
        class: "icon-button danger",
        "aria-label": `Remove access for ${p.user}`,
        title: `Remove access for ${p.user}`,
        onclick: () => revoke(p, remove),
      }, icon("trash"));

      return el("li", { class: "person", "data-user": p.user }, avatar, text, select, remove);
    }));
  }

  async function changePermission(p, select) {
    const on = select.value === "on";
    select.disabled = true;
    try {
      await api.setStartStop(server.id, p.user, on);
      p.start_stop = on;
      tell(on
        ? `${p.user} can now start and stop ${server.label}.`
        : `${p.user} can no longer start or stop ${server.label}.`);
      onChange();
    } catch (e) {
      select.value = p.start_stop ? "on" : "off";
      refuse(e.message);
      if (e instanceof ApiError && e.code === "no_grant") loadPeople();
    } finally {
      select.disabled = false;
      select.focus();
    }
  }

  async function revoke(p, button) {
    button.disabled = true;
    try {
      await api.revoke(server.id, p.user);
      tell(`Removed access for ${p.user}.`);
      onChange();
    } catch (e) {
      refuse(e.message);
    }

    // keep focus in the list: on the next person's remove button, or the
    // username field when nobody is left
    const i = current.indexOf(p);
    await loadPeople();
    const buttons = people.querySelectorAll("button");
    const next = buttons[Math.min(Math.max(i - 1, 0), buttons.length - 1)];
    (next || input).focus();
  }

  // ---- granting ----

  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    closeList();
    const user = input.value.trim().toLowerCase();
    if (!user) {
      refuse("Type the username of the person you want to share with.");
      input.focus();
      return;
    }
    const known = current.find((p) => p.user === user);
    if (known && known.role === "owner") {
      refuse(user === server.owner && server.mine
        ? "You cannot share a server with yourself: you already have access to it."
        : `${user} owns ${server.label} and always has full access to it.`);
      input.focus();
      return;
    }
    if (known) {
      refuse(`${server.label} is already shared with ${user}. ` +
        "Change their permission under People With Access.");
      input.focus();
      return;
    }

    submit.disabled = true;
    submit.setAttribute("aria-busy", "true");
    try {
      const g = await api.share(server.id, user, permission.value === "on", expiry.value);
      const who = g.display_name ? `${g.display_name} (${g.user})` : g.user;
      tell(`Shared ${server.label} with ${who}.` +
        (g.start_stop ? " They can also start and stop it." : ""));
      input.value = "";
      await loadPeople();
      onChange();
    } catch (err) {
      refuse(err.message);
      if (err instanceof ApiError && err.code === "already_shared") loadPeople();
    } finally {
      submit.disabled = false;
      submit.removeAttribute("aria-busy");
      input.focus();
    }
  });

  // ---- suggestions (combobox with a listbox) ----

  input.addEventListener("input", () => {
    clearTimeout(searchTimer);
    const q = input.value.trim();
    if (!q) {
      closeList();
      return;
    }
    searchTimer = setTimeout(() => search(q), 120);
  });

  async function search(q) {
    const seq = ++searchSeq;
    let found;
    try {
      found = (await api.users(q)).users;
    } catch {
      // suggestions are a help, not a need: typing the name still works
      found = [];
    }
    if (seq !== searchSeq || input.value.trim() !== q) return;
    suggestions = found;
    renderList();
  }

  function renderList() {
    activeOption = -1;
    input.removeAttribute("aria-activedescendant");
    if (!suggestions.length) {
      closeList();
      return;
    }
    listbox.replaceChildren(...suggestions.map((u, i) => {
      const has = current.some((p) => p.user === u.name);
      return el("li", {
        role: "option",
        id: "share-option-" + i,
        "aria-selected": "false",
        // pointerdown keeps the focus in the field
        onpointerdown: (e) => e.preventDefault(),
        onclick: () => pick(i),
      },
      el("span", { class: "avatar", "aria-hidden": "true" }, initial(u)),
      el("span", {},
        el("span", { class: "option-name" }, u.display_name || u.name),
        " ",
        el("span", { class: "option-sub" },
          (u.display_name ? u.name : "") + (has ? " · has access" : ""))));
    }));
    listbox.hidden = false;
    input.setAttribute("aria-expanded", "true");
  }

  function closeList() {
    listbox.hidden = true;
    input.setAttribute("aria-expanded", "false");
    input.removeAttribute("aria-activedescendant");
    activeOption = -1;
  }

  function highlight(i) {
    const options = listbox.querySelectorAll('[role="option"]');
    options.forEach((o, j) => o.setAttribute("aria-selected", j === i ? "true" : "false"));
    activeOption = i;
    input.setAttribute("aria-activedescendant", options[i].id);
    options[i].scrollIntoView({ block: "nearest" });
  }

  function pick(i) {
    input.value = suggestions[i].name;
    closeList();
    input.focus();
  }

  input.addEventListener("keydown", (e) => {
    const open = !listbox.hidden;
    const n = suggestions.length;
    if (e.key === "ArrowDown" && n) {
      e.preventDefault();
      if (!open) renderList();
      highlight((activeOption + 1) % n);
    } else if (e.key === "ArrowUp" && open) {
      e.preventDefault();
      highlight((activeOption - 1 + n) % n);
    } else if (e.key === "Enter" && open && activeOption >= 0) {
      e.preventDefault();
      pick(activeOption);
      pickedByEnter = true;
    } else if (e.key === "Escape" && open) {
      // close the list only; a second Escape closes the dialog
      e.preventDefault();
      e.stopPropagation();
      closeList();
    }
  });
  // Enter on a suggestion takes it and does not share yet: the keypress
  // that some clients send despite the prevented keydown must not submit
  let pickedByEnter = false;
  input.addEventListener("keypress", (e) => {
    if (e.key === "Enter" && pickedByEnter) e.preventDefault();
  });
  input.addEventListener("keyup", () => {
    pickedByEnter = false;
  });
  input.addEventListener("blur", () => setTimeout(closeList, 0));

  // ---- opening and closing ----

  $("share-close").addEventListener("click", () => dialog.close());
  dialog.addEventListener("close", () => {
    closeList();
    if (opener) opener.focus();
  });
  // a click on the backdrop (outside the dialog's box) closes it
  dialog.addEventListener("click", (e) => {
    if (e.target !== dialog) return;
    const r = dialog.getBoundingClientRect();
    const inside = e.clientX >= r.left && e.clientX <= r.right &&
      e.clientY >= r.top && e.clientY <= r.bottom;
    if (!inside) dialog.close();
  });

  return {
    // open shows the dialog for a server; focus returns to from on close.
    open(s, from) {
      server = s;
      opener = from;
      title.textContent = "Share " + s.label;
      intro.textContent = `People you share ${s.label} with can open its notebooks, ` +
        "files and tools. Only colleagues of your organization can be added.";
      form.reset();
      say(success, "");
      say(error, "");
      current = [];
      people.replaceChildren();
      suggestions = [];
      closeList();
      dialog.showModal();
      input.focus();
      loadPeople();
    },
  };
}
