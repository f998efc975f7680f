// What the chat remembers in localStorage, per user: the outbox of
// messages not yet archived, the room last opened, and the room list and
// latest pages (to start offline). Read marks are not kept here: they
// are the server's (rooms/{room}/reads/{user}, read_seq in GET
// /api/rooms). localStorage is shared by the user's tabs, so every
// change reads the current value first instead of trusting a copy in
// memory.
//
// Storage can be unavailable or full; the chat then works without it.

function read(key, fallback) {
  try {
    const v = localStorage.getItem(key);
    return v ? JSON.parse(v) : fallback;
  } catch {
    return fallback;
  }
}

function write(key, value) {
  try {
    localStorage.setItem(key, JSON.stringify(value));
  } catch (err) {
    console.warn("hearth: cannot save to localStorage:", err);
  }
}

export class UserStore {
  constructor(user) {
    this.outboxKey = `hearth.outbox.${user}`;
    this.roomKey = `hearth.room.${user}`;
    this.cacheKey = `hearth.cache.${user}`;
  }

  // ---- outbox: {id: {id, room, text, ts, failed?, reason?}} ----

  /** The outbox entries, oldest first. */
  outbox() {
    const box = read(this.outboxKey, {});
    return Object.values(box)
      .filter((e) => e && typeof e.id === "string" && typeof e.room === "string" && typeof e.text === "string")
      .sort((a, b) => (a.ts || 0) - (b.ts || 0));
  }

  putOutbox(entry) {
    const box = read(this.outboxKey, {});
    box[entry.id] = entry;
    write(this.outboxKey, box);
  }

  /** Changes an entry that is still in the outbox; returns it, or null. */
  patchOutbox(id, patch) {
    const box = read(this.outboxKey, {});
    if (!box[id]) return null;
    box[id] = { ...box[id], ...patch };
    write(this.outboxKey, box);
    return box[id];
  }

  // removeOutbox removes entries by id, with one read and one write.
  removeOutbox(...ids) {
    const box = read(this.outboxKey, {});
    const had = ids.filter((id) => box[id]);
    for (const id of had) delete box[id];
    if (had.length > 0) write(this.outboxKey, box);
  }

  // ---- for a start without the server: the room list and the latest
  // page of each room, as the API gave them last ----

  cachedRooms() {
    const v = read(this.cacheKey, {}).rooms;
    return Array.isArray(v) ? v : null;
  }

  cacheRooms(list) {
    const c = read(this.cacheKey, {});
    c.rooms = list;
    write(this.cacheKey, c);
  }

  cachedPage(room) {
    const pages = read(this.cacheKey, {}).pages || {};
    return Array.isArray(pages[room]) ? pages[room] : [];
  }

  /** Saves the newest max messages of room: page replaces (fresh) or extends what is saved. */
  cachePage(room, messages, max, fresh) {
    const c = read(this.cacheKey, {});
    c.pages = c.pages || {};
    const old = fresh ? [] : c.pages[room] || [];
    const byId = new Map([...old, ...messages].map((m) => [m.id, m]));
    c.pages[room] = [...byId.values()].sort((a, b) => (a.seq || 0) - (b.seq || 0)).slice(-max);
    write(this.cacheKey, c);
  }

  /** Forgets the saved rooms and pages (at logout). */
  clearCache() {
    try {
      localStorage.removeItem(this.cacheKey);
    } catch {
      // Nothing saved then.
    }
  }

  // ---- the room opened last ----

  lastRoom() {
    return read(this.roomKey, null);
  }

  setLastRoom(room) {
    write(this.roomKey, room);
  }
}

/**
 * The MQTT client id of this tab for user. It lives in sessionStorage, so a
 * reload of the tab resumes its MQTT session; fresh makes a new one (after
 * the session was taken over by a duplicated tab that copied the id).
 */
export function clientIdFor(user, fresh = false) {
  const key = "hearth.clientId";
  let id = null;
  try {
    id = sessionStorage.getItem(key);
  } catch {
    id = null;
  }
  if (fresh || !id || !id.startsWith(`web-${user}-`)) {
    id = `web-${user}-${randomHex(6)}`;
    try {
      sessionStorage.setItem(key, id);
    } catch {
      // A client id for this page only.
    }
  }
  return id;
}

/** n random bytes as hex. crypto.getRandomValues works on plain http too, unlike crypto.randomUUID. */
export function randomHex(n) {
  const bytes = crypto.getRandomValues(new Uint8Array(n));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * A new message id: 12 hex digits of the time in ms, then 16 random hex
 * digits (the same form the server makes), so ids sort by time.
 */
export function newMessageId() {
  return Date.now().toString(16).padStart(12, "0") + randomHex(8);
}
