// The server switcher: a button at the bottom left that names the active
// server and opens a menu of every server the user may use, the active one
// checked. It follows the menu button pattern: arrow keys, Home and End
// move, Enter or Space chooses, Escape and Tab close, and focus returns to
// the button.

import { el, icon } from "./dom.js";

// mountSwitcher draws the switcher into root. onSelect(id) is called when
// the user chooses a server other than the active one; the switcher shows
// the choice once update() is called with the new list.
export function mountSwitcher(root, { onSelect }) {
  let servers = [];

  const label = el("span", { class: "switcher-label", id: "switcher-label" }, "…");
  const button = el("button", {
    type: "button",
    class: "switcher-button",
    id: "switcher-button",
    "aria-haspopup": "menu",
    "aria-expanded": "false",
    "aria-controls": "switcher-menu",
    "aria-describedby": "switcher-caption",
  },
  icon("server"),
  el("span", { class: "switcher-text" },
    el("span", { class: "switcher-caption", id: "switcher-caption" }, "Active server"),
    label),
  icon("chevron", "chevron"));

  const menu = el("div", {
    class: "switcher-menu",
    id: "switcher-menu",
    role: "menu",
    "aria-label": "Switch server",
    hidden: true,
  });
  root.replaceChildren(menu, button);

  const items = () => [...menu.querySelectorAll('[role="menuitemradio"]')];

  function render() {
    const active = servers.find((s) => s.active);
    label.textContent = active ? active.label : "No server";

    menu.replaceChildren(el("div", { class: "switcher-heading", "aria-hidden": "true" },
      "Switch server"));
    for (const s of servers) {
      const sub = s.mine ? "Yours" : "Shared by " + (s.owner_display_name || s.owner);
      menu.append(el("div", {
        role: "menuitemradio",
        class: "switcher-item",
        tabindex: "-1",
        "aria-checked": s.active ? "true" : "false",
        "data-id": s.id,
        onclick: () => choose(s.id),
      },
      icon("check", "check"),
      el("span", { class: "item-text" },
        el("span", { class: "item-label" }, s.label),
        el("span", { class: "item-sub" }, sub)),
      el("span", { class: "item-state", "data-state": s.state, title: s.state })));
    }
  }

  function open(focusLast = false) {
    if (!servers.length) return;
    menu.hidden = false;
    button.setAttribute("aria-expanded", "true");
    const all = items();
    const checked = all.find((i) => i.getAttribute("aria-checked") === "true");
    (focusLast ? all[all.length - 1] : checked || all[0]).focus();
  }

  function close(returnFocus = true) {
    if (menu.hidden) return;
    menu.hidden = true;
    button.setAttribute("aria-expanded", "false");
    if (returnFocus) button.focus();
  }

  async function choose(id) {
    close();
    const current = servers.find((s) => s.active);
    if (current && current.id === id) return;
    await onSelect(id);
  }

  button.addEventListener("click", () => (menu.hidden ? open() : close()));
  button.addEventListener("keydown", (e) => {
    if (e.key === "ArrowUp" || e.key === "ArrowDown") {
      e.preventDefault();
      open(e.key === "ArrowUp");
    }
  });

  menu.addEventListener("keydown", (e) => {
    const all = items();
    const i = all.indexOf(document.activeElement);
    switch (e.key) {
      case "ArrowDown":
        all[(i + 1) % all.length].focus();
        break;
      case "ArrowUp":
        all[(i - 1 + all.length) % all.length].focus();
        break;
      case "Home":
        all[0].focus();
        break;
      case "End":
        all[all.length - 1].focus();
        break;
      case "Enter":
      case " ":
        if (i >= 0) choose(all[i].dataset.id);
        break;
      case "Escape":
        close();
        break;
      case "Tab":
        close(false);
        return;
      default:
        return;
    }
    e.preventDefault();
  });

  // a click or focus anywhere else closes the menu
  document.addEventListener("pointerdown", (e) => {
    if (!root.contains(e.target)) close(false);
  });
  root.addEventListener("focusout", (e) => {
    if (e.relatedTarget && !root.contains(e.relatedTarget)) close(false);
  });

  return {
    // update shows a new list of servers (from GET servers).
    update(list) {
      servers = list;
      render();
    },
    close,
  };
}
