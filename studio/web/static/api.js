// The Studio JSON API, as the page calls it. Every call that changes
// state carries the X-Studio-CSRF header; the proxy refuses those without.

const meta = document.querySelector('meta[name="studio-prefix"]');

// prefix is the proxy's reserved path prefix, such as "/studio/".
export const prefix = meta ? meta.content : "/studio/";

// ApiError is a refusal from the API: the HTTP status, the stable code and
// a sentence to show.
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

// signIn sends the browser to sign in, coming back to this page.
export function signIn() {
  const back = location.pathname + location.search;
  location.assign(prefix + "login?rd=" + encodeURIComponent(back));
}

async function call(method, path, { body, headers = {} } = {}) {
  const init = {
    method,
    credentials: "same-origin",
    cache: "no-store",
    headers: { Accept: "application/json", ...headers },
  };
  if (method !== "GET") init.headers["X-Studio-CSRF"] = "1";
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }

  let res;
  try {
    res = await fetch(prefix + "api/" + path, init);
  } catch {
    throw new ApiError(0, "network",
      "Studio cannot be reached. Check your connection and try again.");
  }
  if (res.status === 401) {
    signIn();
    throw new ApiError(401, "signed_out", "You are signed out. Taking you to sign in…");
  }
  if (res.status === 204) return null;

  let data = null;
  try {
    data = await res.json();
  } catch {
    // not JSON: a proxy or load balancer in between answered
  }
  if (!res.ok) {
    const e = (data && data.error) || {};
    throw new ApiError(res.status, e.code || "http_" + res.status,
      e.message || `Studio answered ${res.status}. Try again in a moment.`);
  }
  return data;
}

const seg = encodeURIComponent;

export const api = {
  me: () => call("GET", "me"),
  servers: () => call("GET", "servers"),
  server: (id) => call("GET", `servers/${seg(id)}`),
  start: (id) => call("POST", `servers/${seg(id)}/start`),
  stop: (id) => call("POST", `servers/${seg(id)}/stop`),
  setActive: (id) => call("PUT", "active-server", { body: { server: id } }),
  shares: (id) => call("GET", `servers/${seg(id)}/shares`),
  // share grants a new share only: an existing one answers already_shared
  share: (id, user, startStop, expiresIn) =>
    call("PUT", `servers/${seg(id)}/shares/${seg(user)}`, {
      body: { start_stop: startStop, expires_in: expiresIn },
      headers: { "If-None-Match": "*" },
    }),
  setStartStop: (id, user, startStop) =>
    call("PUT", `servers/${seg(id)}/shares/${seg(user)}`, { body: { start_stop: startStop } }),
  revoke: (id, user) => call("DELETE", `servers/${seg(id)}/shares/${seg(user)}`),
  leave: (id) => call("DELETE", `shared-with-me/${seg(id)}`),
  users: (q) => call("GET", "users?q=" + encodeURIComponent(q)),
};
