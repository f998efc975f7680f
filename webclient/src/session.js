// The login session and the HTTP API.
//
// The token from POST /api/login is kept in sessionStorage: a reload of the
// tab stays logged in, a new tab or a closed browser asks again. With
// "Stay logged in" the login is a device login (remember: true, a token
// for a long time that can be revoked in the settings), kept in
// localStorage: new tabs and a restarted browser stay logged in. The same
// token is the MQTT password and the API's Bearer token.

const KEY = "hearth.session";

/** An HTTP API answer with an error status. */
export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.name = "ApiError";
    this.status = status;
  }
}

/**
 * Calls the JSON API. Resolves with the decoded answer; rejects with an
 * ApiError for an error status, or a TypeError when the network fails.
 */
export async function api(path, { method = "GET", token, body } = {}) {
  const headers = { Accept: "application/json" };
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const res = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    cache: "no-store",
    credentials: "same-origin",
  });
  let data = null;
  try {
    data = await res.json();
  } catch {
    // An empty or non-JSON body: the status says enough.
  }
  if (!res.ok) {
    throw new ApiError(res.status, (data && data.error) || res.statusText || `HTTP ${res.status}`);
  }
  return data;
}

/** Logs in with a password; resolves with the stored session. */
export async function login(username, password, remember = false) {
  const body = remember ? { username, password, remember: true } : { username, password };
  const data = await api("/api/login", { method: "POST", body });
  return save(data, remember);
}

/** Trades a still valid token for a fresh one; resolves with the stored session. */
export async function refresh(session) {
  const data = await api("/api/token", { method: "POST", token: session.token });
  return save(data, session.remember === true, session.device);
}

/** The stored session, or null when there is none or its token has expired. */
export function load() {
  const s = stored();
  if (!valid(s) || isExpired(s)) {
    return null;
  }
  return s;
}

/** The user name of a stored session, expired or not (to greet them again). */
export function storedUser() {
  const s = stored();
  return s && s.user && typeof s.user.name === "string" ? s.user.name : "";
}

// stored reads the session of this tab (sessionStorage), else the
// device login (localStorage).
function stored() {
  for (const area of ["sessionStorage", "localStorage"]) {
    try {
      const s = JSON.parse(globalThis[area].getItem(KEY));
      if (s) return s;
    } catch {
      // Unavailable storage or bad JSON: the next one.
    }
  }
  return null;
}

/** Forgets the session, and everything else of this tab (its MQTT client id too). */
export function clear() {
  try {
    sessionStorage.clear();
    localStorage.removeItem(KEY);
  } catch {
    // Storage can be unavailable (privacy modes); nothing to clear then.
  }
}

function valid(s) {
  return (
    s &&
    typeof s.token === "string" &&
    typeof s.expires_at === "string" &&
    s.user &&
    typeof s.user.name === "string" &&
    typeof s.received_at === "number"
  );
}

// save stores an answer of /api/login or /api/token. received_at (our
// clock) lets the token's lifetime be measured without trusting that the
// browser's clock agrees with the server's.
function save(data, remember = false, device = null) {
  if (!data || typeof data.token !== "string" || !data.user || typeof data.user.name !== "string") {
    throw new Error("unexpected answer from the server");
  }
  const s = {
    token: data.token,
    expires_at: data.expires_at,
    user: { name: data.user.name, role: data.user.role },
    received_at: Date.now(),
    remember,
    device: data.device && typeof data.device.id === "string" ? data.device : device,
  };
  try {
    (remember ? localStorage : sessionStorage).setItem(KEY, JSON.stringify(s));
    (remember ? sessionStorage : localStorage).removeItem(KEY);
  } catch {
    // Without storage the session lasts as long as the page.
  }
  return s;
}

// lifetime returns when the token expires on our clock and how long it was
// issued for, in ms. The JWT's own iat/exp give the lifetime; expires_at is
// the fallback for a token that is not a JWT.
function lifetime(s) {
  const claims = jwtClaims(s.token);
  if (claims && Number.isFinite(claims.exp) && Number.isFinite(claims.iat) && claims.exp > claims.iat) {
    const ms = (claims.exp - claims.iat) * 1000;
    return { expires: s.received_at + ms, total: ms };
  }
  const expires = Date.parse(s.expires_at);
  if (Number.isFinite(expires)) {
    return { expires, total: Math.max(expires - s.received_at, 0) };
  }
  return { expires: Infinity, total: Infinity };
}

/** Whether the token has expired. */
export function isExpired(s, now = Date.now()) {
  return lifetime(s).expires <= now;
}

/** Whether less than half of the token's lifetime remains. */
export function needsRefresh(s, now = Date.now()) {
  const { expires, total } = lifetime(s);
  return expires - now < total / 2;
}

function jwtClaims(token) {
  const part = token.split(".")[1];
  if (!part) return null;
  try {
    const b64 = part.replace(/-/g, "+").replace(/_/g, "/");
    return JSON.parse(atob(b64 + "===".slice((b64.length + 3) % 4)));
  } catch {
    return null;
  }
}
