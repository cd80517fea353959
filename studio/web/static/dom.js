// Small helpers to build the page's elements without innerHTML.

const SVG = "http://www.w3.org/2000/svg";

// el builds an element: el("button", {class: "button", onclick: f}, "Text").
// Attributes named on... become listeners; others are set as attributes
// (true sets an empty attribute, false and null leave it out).
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (name.startsWith("on") && typeof value === "function") {
      node.addEventListener(name.slice(2), value);
    } else if (value === true) {
      node.setAttribute(name, "");
    } else if (value !== false && value != null) {
      node.setAttribute(name, String(value));
    }
  }
  node.append(...children.flat().filter((c) => c != null && c !== false));
  return node;
}

// Paths of the icons the scripts draw (24x24, stroked).
const icons = {
  check: ["M5 12.5l4.5 4.5L19 7.5"],
  chevron: ["M7 14.5l5-5 5 5"],
  server: ["M4 4h16v7H4z", "M4 13h16v7H4z", "M8 7.5h.01", "M8 16.5h.01"],
  trash: ["M4 7h16", "M10 11v6", "M14 11v6", "M6 7l1 12a1 1 0 0 0 1 1h8a1 1 0 0 0 1-1l1-12",
          "M9 7V4.5A.5.5 0 0 1 9.5 4h5a.5.5 0 0 1 .5.5V7"],
  open: ["M14 5h5v5", "M19 5l-8 8", "M17 14v4a1 1 0 0 1-1 1H6a1 1 0 0 1-1-1V8a1 1 0 0 1 1-1h4"],
};

// icon returns a decorative SVG icon, hidden from assistive technology.
export function icon(name, cls) {
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("aria-hidden", "true");
  svg.setAttribute("focusable", "false");
  if (cls) svg.setAttribute("class", cls);
  for (const d of icons[name]) {
    const path = document.createElementNS(SVG, "path");
    path.setAttribute("d", d);
    svg.append(path);
  }
  return svg;
}

// initial is the letter shown in a person's avatar.
export function initial(user) {
  return (user.display_name || user.name || user.user || "?").trim().charAt(0) || "?";
}

// personName is "Bob Builder" or "bob" when no display name is known.
export function personName(name, displayName) {
  return displayName || name;
}

const dateFormat = new Intl.DateTimeFormat(undefined, {
  weekday: "short", day: "numeric", month: "short", hour: "2-digit", minute: "2-digit",
});

// until says when a share ends, for people.
export function until(expires) {
  if (!expires) return "Never";
  return dateFormat.format(new Date(expires));
}

// stateText is how a server state reads on the page.
export function stateText(state) {
  return {
    running: "Running",
    starting: "Starting…",
    stopping: "Stopping…",
    stopped: "Stopped",
    failed: "Failed",
  }[state] || "Unknown";
}

// transitional reports whether a state is on its way to another.
export function transitional(state) {
  return state === "starting" || state === "stopping";
}

// accessText says what the signed-in user may do with a server.
export function accessText(server) {
  return {
    owner: "Owner",
    admin: "Admin of this organization",
    start_stop: "Shared with you · Start/Stop Enabled",
    use: "Shared with you · Start/Stop Disabled",
  }[server.access] || "None";
}

// say sets a message element's text and kind ("success", "error", "info").
export function say(node, text, kind) {
  node.textContent = text || "";
  if (kind) node.dataset.kind = kind;
  else delete node.dataset.kind;
}
