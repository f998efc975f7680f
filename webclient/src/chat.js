// The chat of one logged-in user: the MQTT connection, rooms, messages,
// the outbox, presence and typing. A Chat lives from login to logout (or
// until its token is refused); destroy() ends everything it started.

import mqtt from "mqtt";
import { MessageList } from "./messagelist.js";
import { Conversation, isEvent, foldedState } from "./events.js";
import { Reads } from "./reads.js";
import { Search } from "./search.js";
import * as session from "./session.js";
import { ApiError } from "./session.js";
import { UserStore, clientIdFor, newMessageId } from "./storage.js";
import { charCount, lastSeen } from "./text.js";
import { t } from "./i18n.js";
import * as push from "./push.js";

const PAGE = 50; // history page when opening a room or scrolling back
const CATCH_UP_PAGE = 200; // history page when catching up after a reconnect
const CATCH_UP_MAX_PAGES = 25;
const MAX_TEXT = 4000; // characters, as the server counts them
const SHOW_COUNT_FROM = 3500;

const OUTBOX_EVERY_MS = 5000; // re-publish outbox entries without a receipt this often
const IN_FLIGHT_STALE_MS = 30000; // a publish without PUBACK for this long is tried again
const TOKEN_CHECK_EVERY_MS = 60000;
const SETTLE_MS = 2000; // after live messages, ask the archive for their seqs
const SETTLE_MAX_MS = 10000;

const TYPING_RENEW_MS = 3000; // send typing:true at most this often
const TYPING_IDLE_MS = 3000; // send typing:false after this long without input
const TYPING_SHOW_MS = 6000; // others' typing:true is shown this long without renewal

// PUBACK reason codes after which a message is tried again later. Any other
// code (0x87 not authorized, 0x99 payload format invalid, 0x95 packet too
// large, ...) fails the message until the user retries it.
const TEMPORARY = new Set([0x96, 0x97]);

// The refusals with a text of their own (i18n keys refused.0x..).
const REFUSAL_TEXT = new Set([0x87, 0x95, 0x99, 0x9a]);

function refusalText(code) {
  const hex = code.toString(16);
  return REFUSAL_TEXT.has(code) ? t(`refused.0x${hex}`) : t("refused.other", { code: hex });
}

const decoder = new TextDecoder();

// CONNACK reason codes.
const BAD_CREDENTIALS = 0x86;
const NOT_AUTHORIZED = 0x87;
const CLIENT_ID_NOT_VALID = 0x85;
// DISCONNECT reason code.
const SESSION_TAKEN_OVER = 0x8e;

export class Chat {
  /**
   * @param {object} sess the session from session.load() or session.login()
   * @param {{onExpired: () => void}} hooks onExpired runs once the token is refused
   */
  constructor(sess, { onExpired }) {
    this.session = sess;
    this.me = sess.user.name;
    this.onExpired = onExpired;
    this.store = new UserStore(this.me);
    this.dead = false;
    this.client = null;

    /** name -> {name, title, last_seq, can_write, unread, seen: Set, li, btn, badge} */
    this.rooms = new Map();
    this.roomOrder = [];
    this.current = null; // name of the open room
    this.view = null; // state of the open room, see openRoom

    this.people = new Map(); // name -> li
    this.typing = new Map(); // room -> Map(user -> timeout)
    this.receipts = new Map(); // id -> {seq, at}: recent receipts, for echoes that come later
    this.tries = new Map(); // outbox id -> {at, pending}: our last publish of it

    this.ownTyping = { room: null, sentAt: 0, idle: 0 };
    this.intervals = [];
    this.abort = new AbortController();

    const $ = (id) => document.getElementById(id);
    this.dom = {
      view: $("chat-view"),
      me: $("me"),
      menu: $("menu"),
      conn: $("conn-status"),
      title: $("room-title"),
      rooms: $("rooms"),
      people: $("people"),
      messages: $("messages"),
      typing: $("typing"),
      notice: $("notice"),
      readonly: $("readonly-note"),
      composer: $("composer"),
      text: $("text"),
      send: $("send"),
      count: $("count"),
      mute: $("mute"),
    };
    this.conv = new Conversation(this);
    this.reads = new Reads(this);
    this.search = new Search(this);
    // A deep link (/#room=NAME, from a notification) opens that room first.
    this.wantRoom = roomFromHash();
  }

  start() {
    const d = this.dom;
    d.me.textContent = this.me;
    d.title.textContent = "";
    d.rooms.textContent = "";
    d.people.textContent = "";
    d.messages.textContent = "";
    d.typing.textContent = "";
    d.text.value = "";
    this.updateCount();
    this.setComposer(null);
    this.setConn("connecting");
    this.bindEvents();
    this.conv.bind({ signal: this.abort.signal });
    this.search.bind({ signal: this.abort.signal });

    this.connect();
    this.refreshRooms();
    this.every(OUTBOX_EVERY_MS, () => this.flushOutbox(false));
    this.every(TOKEN_CHECK_EVERY_MS, () => this.refreshToken());
    this.refreshToken();
  }

  /**
   * Ends the chat: the MQTT connection, timers and listeners. With logout,
   * the MQTT session is ended too (session expiry 0), so the broker does not
   * keep queueing messages for a tab that logged out.
   */
  destroy({ logout = false } = {}) {
    if (this.dead) return;
    this.stopTyping();
    this.dead = true;
    if (logout) this.store.clearCache();
    this.dom.mute.hidden = true;
    this.abort.abort();
    this.intervals.forEach(clearInterval);
    clearTimeout(this.ownTyping.idle);
    clearTimeout(this.noticeTimer);
    clearTimeout(this.settleTimer);
    for (const users of this.typing.values()) users.forEach(clearTimeout);
    if (this.client) {
      if (logout && this.client.connected) {
        this.client.end(false, { reasonCode: 0, properties: { sessionExpiryInterval: 0 } });
      } else {
        this.client.end(true);
      }
    }
    const d = this.dom;
    d.view.classList.remove("sidebar-open");
    d.rooms.textContent = "";
    d.people.textContent = "";
    d.messages.textContent = "";
    delete d.messages.dataset.more;
    delete d.messages.dataset.empty;
    d.typing.textContent = "";
    d.notice.textContent = "";
    d.text.value = "";
    document.title = t("app.name");
  }

  // expire ends the chat because the server no longer takes the token.
  expire() {
    if (this.dead) return;
    this.destroy();
    this.onExpired();
  }

  every(ms, fn) {
    this.intervals.push(setInterval(fn, ms));
  }

  bindEvents() {
    const d = this.dom;
    const opts = { signal: this.abort.signal };
    d.rooms.addEventListener(
      "click",
      (e) => {
        const btn = e.target.closest("button.room");
        if (btn) this.openRoom(btn.dataset.room);
      },
      opts,
    );
    d.menu.addEventListener("click", () => this.toggleSidebar(), opts);
    document.addEventListener(
      "keydown",
      (e) => {
        if (e.key === "Escape" && d.view.classList.contains("sidebar-open")) {
          this.toggleSidebar(false);
          d.menu.focus();
        }
      },
      opts,
    );
    d.messages.addEventListener("scroll", () => this.onScroll(), { ...opts, passive: true });
    d.messages.addEventListener("click", (e) => this.onMessageClick(e), opts);
    d.composer.addEventListener(
      "submit",
      (e) => {
        e.preventDefault();
        this.send();
      },
      opts,
    );
    d.text.addEventListener(
      "keydown",
      (e) => {
        // Enter sends, Shift+Enter is a new line; not while an IME composes.
        if (e.key === "Enter" && !e.shiftKey && !e.isComposing && e.keyCode !== 229) {
          e.preventDefault();
          this.send();
        }
      },
      opts,
    );
    d.text.addEventListener(
      "keypress",
      (e) => {
        // The keydown above already sent; some synthetic key sequences (CDP
        // "char" events) still deliver the Enter as a keypress: no new line.
        if (e.key === "Enter" && !e.shiftKey) e.preventDefault();
      },
      opts,
    );
    d.text.addEventListener("input", () => this.onInput(), opts);
    document.addEventListener(
      "visibilitychange",
      () => {
        if (!document.hidden) this.markRead();
        this.publishFocus();
      },
      opts,
    );
    window.addEventListener("focus", () => this.publishFocus(), opts);
    window.addEventListener("blur", () => this.publishFocus(), opts);
    window.addEventListener(
      "hashchange",
      () => {
        const room = roomFromHash();
        if (room && this.rooms.has(room)) this.openRoom(room);
        else if (room) this.wantRoom = room;
      },
      opts,
    );
    d.mute.addEventListener("click", () => this.toggleMute(), opts);
  }

  // publishFocus tells the server which room this tab shows to the user
  // (visible and focused), or none: no push for a room being read here.
  publishFocus() {
    if (this.dead || !this.client || !this.client.connected) return;
    const room = !document.hidden && document.hasFocus() && this.current ? this.current : "";
    this.client.publish(`users/${this.me}/focus`, JSON.stringify({ room }), { qos: 0 });
  }

  // toggleMute mutes or unmutes the open room for this user (no pushes).
  async toggleMute() {
    const room = this.current && this.rooms.get(this.current);
    if (!room) return;
    const want = !room.muted;
    this.dom.mute.disabled = true;
    try {
      const data = await this.api(`/api/rooms/${encodeURIComponent(room.name)}/mute`, {
        method: "PUT",
        body: { muted: want },
      });
      room.muted = data && typeof data.muted === "boolean" ? data.muted : want;
    } catch (err) {
      if (!this.dead) this.notice(t("room.muteFailed"));
    } finally {
      this.dom.mute.disabled = false;
      this.renderMute();
    }
  }

  renderMute() {
    const room = this.current && this.rooms.get(this.current);
    const btn = this.dom.mute;
    btn.hidden = !room;
    btn.setAttribute("aria-pressed", String(!!(room && room.muted)));
  }

  // ------------------------------------------------------------------
  // HTTP API

  // api calls the API with the token; a 401 ends the chat (the token is no
  // longer valid). Errors are passed on to the caller.
  async api(path, opts = {}) {
    try {
      return await session.api(path, { ...opts, token: this.session.token });
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) this.expire();
      throw err;
    }
  }

  // refreshToken trades the token for a fresh one once less than half of
  // its lifetime remains. It runs every minute and whenever the connection
  // drops, so a reconnect uses a fresh token (see transformWsUrl).
  refreshToken() {
    if (this.dead || this.refreshing) return this.refreshing;
    if (session.isExpired(this.session)) {
      this.expire();
      return null;
    }
    if (!session.needsRefresh(this.session)) return null;
    this.refreshing = session
      .refresh(this.session)
      .then((fresh) => {
        if (this.dead) return;
        this.session = fresh;
        if (this.client) this.client.options.password = fresh.token;
      })
      .catch((err) => {
        if (err instanceof ApiError && err.status === 401) this.expire();
        else console.warn("hearth: token refresh failed, will try again:", err.message);
      })
      .finally(() => {
        this.refreshing = null;
      });
    return this.refreshing;
  }

  // ------------------------------------------------------------------
  // MQTT

  connect() {
    const proto = location.protocol === "https:" ? "wss" : "ws";
    const url = `${proto}://${location.host}/mqtt`;
    const client = mqtt.connect(url, {
      protocolVersion: 5,
      clientId: clientIdFor(this.me),
      clean: false,
      properties: { sessionExpiryInterval: 3600 },
      username: this.me,
      password: this.session.token,
      reconnectPeriod: 2000,
      connectTimeout: 10000,
      keepalive: 30,
      // Web Worker timers keep the keepalive going in throttled background
      // tabs (MQTT.js issue #1257); the CSP allows worker-src blob:.
      timerVariant: "auto",
      // We subscribe ourselves on every connect whose session is not
      // present, and never queue typing events while offline.
      resubscribe: false,
      queueQoSZero: false,
      // Keep trying after a refused CONNACK (server busy, client id taken);
      // onMqttError stops for good when the token is refused.
      reconnectOnConnackError: true,
      // Runs before every (re)connect: use the freshest token.
      transformWsUrl: (u, options) => {
        options.password = this.session.token;
        return u;
      },
    });
    this.client = client;
    client.on("connect", (connack) => this.onConnect(connack));
    client.on("message", (topic, payload) => this.onMessage(topic, payload));
    client.on("reconnect", () => this.setConn("offline"));
    client.on("close", () => this.onOffline()); // every drop, and a failed connect
    client.on("error", (err) => this.onMqttError(err));
    client.on("disconnect", (packet) => this.onServerDisconnect(packet));
  }

  onConnect(connack) {
    if (this.dead) return;
    this.setConn("online");
    // Presence is retained: subscribing again every time brings the current
    // state of everyone, also when the session was resumed.
    // Read marks too: they are retained.
    const topics = { "presence/+": { qos: 1 }, "rooms/+/reads/+": { qos: 1 } };
    if (!connack.sessionPresent) {
      topics["rooms/+/messages/+"] = { qos: 1 };
      topics["rooms/+/typing/+"] = { qos: 0 };
      topics[`users/${this.me}/receipts`] = { qos: 1 };
      topics["rooms/+/events/+"] = { qos: 1 };
    }
    this.client.subscribe(topics, (err) => {
      if (err) console.warn("hearth: subscribe:", err.message);
      if (this.dead) return;
      // Whatever was archived while we were away (or before the
      // subscription took effect): room counts and the open room.
      this.refreshRooms();
      this.catchUp();
    });
    this.tries.clear();
    this.flushOutbox(true);
    this.publishFocus();
  }

  onOffline() {
    if (this.dead) return;
    this.setConn("offline");
    this.refreshToken();
    // Others' typing will not be cancelled while we cannot hear it.
    for (const room of this.typing.keys()) this.clearTyping(room);
  }

  onMqttError(err) {
    if (this.dead) return;
    const code = err && err.code;
    if (code === BAD_CREDENTIALS || code === NOT_AUTHORIZED) {
      // CONNACK refused the token: expired, or no longer valid.
      this.expire();
      return;
    }
    if (code === CLIENT_ID_NOT_VALID) {
      // The client id is held by another user's session: take a new one;
      // MQTT.js reconnects with it.
      this.client.options.clientId = clientIdFor(this.me, true);
    }
    console.warn("hearth: mqtt:", err && err.message);
  }

  onServerDisconnect(packet) {
    if (this.dead) return;
    if (packet && packet.reasonCode === SESSION_TAKEN_OVER) {
      // Another connection took our client id: a duplicated tab copies
      // sessionStorage. Leave the session to it and start one of our own.
      this.client.options.clientId = clientIdFor(this.me, true);
    }
  }

  onMessage(topic, payload) {
    if (this.dead) return;
    const parts = topic.split("/");
    let data = null;
    if (payload && payload.length > 0) {
      try {
        data = JSON.parse(decoder.decode(payload));
      } catch {
        return;
      }
      if (!data || typeof data !== "object") return;
    }
    if (parts[0] === "rooms" && parts.length === 4 && data) {
      const [, room, kind, user] = parts;
      if (kind === "messages") this.onRoomMessage(room, user, data);
      else if (kind === "events") this.conv.onLiveEvent(room, user, data);
      else if (kind === "reads") this.reads.onMark(room, user, data);
      else if (kind === "typing") this.onTyping(room, user, data);
    } else if (parts[0] === "presence" && parts.length === 2) {
      this.onPresence(parts[1], data);
    } else if (parts[0] === "users" && parts[1] === this.me && parts[2] === "receipts" && data) {
      this.onReceipt(data);
    }
  }

  setConn(state) {
    const text = t(`conn.${state}`);
    const el = this.dom.conn;
    if (el.dataset.state === state && el.textContent === text) return;
    el.dataset.state = state;
    el.textContent = text;
  }

  // ------------------------------------------------------------------
  // Rooms

  // refreshRooms loads the room list (and so the unread counts). Calls
  // while one runs make it run once more afterwards.
  refreshRooms() {
    if (this.roomsBusy) {
      this.roomsAgain = true;
      return this.roomsBusy;
    }
    this.roomsBusy = (async () => {
      do {
        this.roomsAgain = false;
        try {
          await this.loadRooms();
        } catch (err) {
          if (this.dead) return;
          console.warn("hearth: rooms:", err.message);
          this.notice(t("room.loadFailed"));
        }
      } while (this.roomsAgain && !this.dead);
    })().finally(() => {
      this.roomsBusy = null;
    });
    return this.roomsBusy;
  }

  async loadRooms() {
    let list;
    try {
      list = await this.api("/api/rooms");
      if (Array.isArray(list)) this.store.cacheRooms(list);
    } catch (err) {
      // The server cannot be reached: start from the rooms saved last time
      // (the MQTT connect refreshes them once it is back).
      list = err instanceof ApiError || this.rooms.size > 0 ? null : this.store.cachedRooms();
      if (!list) throw err;
    }
    if (this.dead || !Array.isArray(list)) return;
    const seen = new Set();
    for (const r of list) {
      if (!r || typeof r.name !== "string") continue;
      seen.add(r.name);
      let room = this.rooms.get(r.name);
      if (!room) {
        room = { name: r.name, unread: 0, seen: new Set() };
        this.rooms.set(r.name, room);
      }
      room.title = typeof r.title === "string" && r.title ? r.title : r.name;
      room.last_seq = Number.isInteger(r.last_seq) ? r.last_seq : 0;
      room.can_write = r.can_write === true;
      room.read_seq = Math.max(room.read_seq || 0, Number.isInteger(r.read_seq) ? r.read_seq : 0);
      room.unread = Number.isInteger(r.unread) ? r.unread : Math.max(0, room.last_seq - room.read_seq);
      room.muted = r.muted === true;
      room.seen.clear();
    }
    for (const name of [...this.rooms.keys()]) {
      if (!seen.has(name)) this.rooms.delete(name);
    }
    this.roomOrder = list.filter((r) => r && seen.has(r.name)).map((r) => r.name);
    this.renderRooms();

    if (this.current && !this.rooms.has(this.current)) {
      // The open room is gone (config changed): open another.
      this.current = null;
      this.view = null;
    }
    if (this.wantRoom && this.rooms.has(this.wantRoom) && this.current !== this.wantRoom) {
      this.current = null;
      this.view = null;
      this.openRoom(this.wantRoom, { focus: false });
      this.wantRoom = null;
    } else if (!this.current) {
      const last = this.store.lastRoom();
      const first = this.rooms.has(last) ? last : this.roomOrder[0];
      if (first) this.openRoom(first, { focus: false });
      else this.showNoRooms();
    } else {
      const room = this.rooms.get(this.current);
      this.dom.title.textContent = room.title;
      this.setComposer(room);
      this.markRead();
    }
  }

  renderRooms() {
    const ul = this.dom.rooms;
    const same =
      ul.children.length === this.roomOrder.length &&
      this.roomOrder.every((name, i) => ul.children[i].dataset.room === name);
    if (!same) ul.textContent = "";
    for (const name of this.roomOrder) {
      const room = this.rooms.get(name);
      if (!room.li || !same) {
        room.li = document.createElement("li");
        room.li.dataset.room = name;
        room.btn = document.createElement("button");
        room.btn.type = "button";
        room.btn.className = "room";
        room.btn.dataset.room = name;
        room.titleEl = document.createElement("span");
        room.titleEl.className = "title";
        room.readonlyEl = document.createElement("span");
        room.readonlyEl.className = "readonly";
        room.readonlyEl.textContent = t("room.readonly");
        room.badge = document.createElement("span");
        room.badge.className = "unread";
        room.btn.append(room.titleEl, room.readonlyEl, room.badge);
        room.li.append(room.btn);
        ul.append(room.li);
      }
      room.titleEl.textContent = room.title;
      room.readonlyEl.hidden = room.can_write;
      room.btn.setAttribute("aria-current", String(name === this.current));
      this.renderUnread(room);
    }
  }

  renderUnread(room) {
    if (!room.badge) return;
    room.badge.hidden = room.unread === 0;
    room.badge.textContent = room.unread > 99 ? "99+" : String(room.unread);
    let label = room.title;
    if (!room.can_write) label = t("room.labelReadonly", { title: label });
    if (room.unread > 0) label = t("room.labelUnread", { label, n: room.unread });
    room.btn.setAttribute("aria-label", label);
    // The tab title counts unread messages in all rooms.
    let total = 0;
    for (const r of this.rooms.values()) total += r.unread;
    document.title = total > 0 ? t("app.title.unread", { n: total }) : t("app.name");
  }

  showNoRooms() {
    this.dom.title.textContent = t("room.none");
    this.dom.messages.textContent = "";
    this.setComposer(null);
    this.notice(t("room.noneNotice"), 0);
  }

  /**
   * Opens a room: shows its outbox entries, loads its latest history page,
   * marks it read. View state:
   * {room, list, loaded, loading, hasOlder, loadingOlder, catchingUp, ...}.
   */
  openRoom(name, { focus = true, around = 0 } = {}) {
    const room = this.rooms.get(name);
    if (!room) return;
    this.toggleSidebar(false);
    if (this.current === name && this.view && !around) return;
    this.stopTyping();
    this.current = name;
    this.store.setLastRoom(name);
    for (const r of this.rooms.values()) {
      if (r.btn) r.btn.setAttribute("aria-current", String(r.name === name));
    }
    this.dom.title.textContent = room.title;
    this.setComposer(room);
    this.renderMute();
    this.publishFocus();
    this.dom.notice.textContent = "";

    const view = {
      room: name,
      list: new MessageList(this.dom.messages, this.me),
      loaded: false,
      loading: false,
      hasOlder: false,
      loadingOlder: false,
      catchingUp: false,
      catchUpAgain: false,
      catchUpAfterLoad: false,
    };
    this.view = view;
    this.conv.onOpenRoom();
    this.dom.messages.dataset.more = "unknown";
    this.dom.messages.dataset.empty = "false";

    for (const e of this.store.outbox()) {
      if (e.room !== name) continue;
      view.list.add({
        ...e,
        from: this.me,
        status: e.failed ? "failed" : "sending",
        reason: e.reason,
      });
    }
    this.renderTyping();
    this.markRead();
    if (around) view.around = this.loadAround(view, around);
    else this.loadLatest(view);
    if (focus && room.can_write && matchMedia("(min-width: 48rem)").matches) {
      this.dom.text.focus();
    }
  }

  async loadLatest(view) {
    view.loading = true;
    this.dom.messages.setAttribute("aria-busy", "true");
    try {
      const data = await this.api(`/api/rooms/${encodeURIComponent(view.room)}/messages?limit=${PAGE}`);
      if (view !== this.view) return;
      this.store.cachePage(view.room, pageOf(data), PAGE, true);
      this.addPage(view, pageOf(data));
      view.loaded = true;
      view.hasOlder = data.has_more === true;
      this.dom.messages.dataset.more = String(view.hasOlder);
      this.scrollToBottom();
      this.markRead();
      this.fillViewport(view);
      if (view.catchUpAfterLoad) this.catchUp();
    } catch (err) {
      if (this.dead || view !== this.view) return;
      // Offline: the page saved last time, until the server is back.
      if (!(err instanceof ApiError)) this.addPage(view, this.store.cachedPage(view.room));
      this.notice(t("messages.loadFailed"));
      console.warn("hearth: history:", err.message);
    } finally {
      view.loading = false;
      if (view === this.view) {
        this.dom.messages.removeAttribute("aria-busy");
        this.dom.messages.dataset.empty = String(view.loaded && view.list.size === 0);
      }
    }
  }

  /**
   * Shows the open room anew around seq (n messages each side), then
   * everything newer; resolves with the new view.
   */
  async showAround(seq, n) {
    if (!this.current) return null;
    this.openRoom(this.current, { focus: false, around: seq + n + 1 });
    const view = this.view;
    await view.around;
    return view === this.view ? view : null;
  }

  async loadAround(view, before) {
    view.loading = true;
    try {
      const data = await this.api(
        `/api/rooms/${encodeURIComponent(view.room)}/messages?limit=${PAGE}&before=${before}`,
      );
      if (view !== this.view) return;
      this.addPage(view, pageOf(data));
      view.loaded = true;
      view.hasOlder = data.has_more === true;
      this.dom.messages.dataset.more = String(view.hasOlder);
    } catch (err) {
      if (!this.dead) this.notice(t("messages.loadFailed"));
      return;
    } finally {
      view.loading = false;
    }
    await this.catchUp();
  }

  // loadOlder loads the page before the oldest message shown, keeping what
  // is on screen where it is.
  async loadOlder() {
    const view = this.view;
    if (!view || !view.loaded || !view.hasOlder || view.loadingOlder || view.list.minSeq === null) return;
    view.loadingOlder = true;
    const el = this.dom.messages;
    try {
      const data = await this.api(
        `/api/rooms/${encodeURIComponent(view.room)}/messages?limit=${PAGE}&before=${view.list.minSeq}`,
      );
      if (view !== this.view) return;
      const messages = pageOf(data);
      const height = el.scrollHeight;
      const top = el.scrollTop;
      this.addPage(view, messages);
      el.scrollTop = top + (el.scrollHeight - height);
      view.hasOlder = data.has_more === true && messages.length > 0;
      el.dataset.more = String(view.hasOlder);
    } catch (err) {
      if (!this.dead) console.warn("hearth: older messages:", err.message);
    } finally {
      view.loadingOlder = false;
    }
    this.fillViewport(view);
  }

  // fillViewport loads older pages while the list is too short to scroll
  // (there would be no scrolling to the top to ask for them).
  fillViewport(view) {
    const el = this.dom.messages;
    if (view === this.view && view.hasOlder && !view.loadingOlder && el.scrollHeight <= el.clientHeight + 80) {
      this.loadOlder();
    }
  }

  onScroll() {
    if (this.dom.messages.scrollTop < 80) this.loadOlder();
  }

  // catchUp fetches what the open room got while we were not listening:
  // after=<newest seq shown>, page by page while has_more.
  async catchUp() {
    const view = this.view;
    if (!view || this.dead) return;
    if (!view.loaded) {
      if (view.loading) view.catchUpAfterLoad = true;
      else this.loadLatest(view);
      return;
    }
    if (view.catchingUp) {
      view.catchUpAgain = true;
      return;
    }
    view.catchingUp = true;
    try {
      let after = Math.max(view.list.maxSeq || 0, view.eventSeq || 0);
      for (let i = 0; i < CATCH_UP_MAX_PAGES; i++) {
        const data = await this.api(
          `/api/rooms/${encodeURIComponent(view.room)}/messages?limit=${CATCH_UP_PAGE}&after=${after}`,
        );
        if (view !== this.view) return;
        const messages = pageOf(data);
        this.store.cachePage(view.room, messages.filter((m) => !m.type || m.type === "message"), PAGE, false);
        const stick = this.nearBottom();
        this.addPage(view, messages);
        if (stick) this.scrollToBottom();
        this.dom.messages.dataset.empty = String(view.list.size === 0);
        const last = messages[messages.length - 1];
        if (!data.has_more || !last || !(last.seq > after)) break;
        after = last.seq;
      }
      this.markRead();
    } catch (err) {
      if (!this.dead) console.warn("hearth: catch up:", err.message);
    } finally {
      view.catchingUp = false;
      if (view.catchUpAgain && view === this.view) {
        view.catchUpAgain = false;
        this.catchUp();
      }
    }
  }

  // settleSoon runs a catch-up shortly after live messages from others
  // stop coming into the open room. Live payloads carry no seq; the
  // catch-up gives them theirs, so the read mark covers what was seen here
  // (otherwise the next room list would count them unread).
  settleSoon() {
    // Debounced, but a steady stream still settles every SETTLE_MAX_MS.
    const now = Date.now();
    if (this.settleTimer && now - this.settleSince >= SETTLE_MAX_MS) return;
    if (!this.settleTimer) this.settleSince = now;
    clearTimeout(this.settleTimer);
    this.settleTimer = setTimeout(() => {
      this.settleTimer = 0;
      this.catchUp();
    }, SETTLE_MS);
  }

  // addPage shows a page from the history API. Own messages there are
  // archived: they leave the outbox (in one storage write).
  addPage(view, messages) {
    const own = [];
    const events = [];
    for (const m of messages) {
      if (isEvent(m)) events.push(m);
      else if (this.addArchived(view, m)) own.push(m.id);
    }
    this.store.removeOutbox(...own);
    for (const id of own) this.tries.delete(id);
    if (events.length > 0) this.conv.onPageEvents(view, events);
    this.reads.renderSeen();
  }

  // addArchived shows a message from the history API, and reports whether
  // it is the user's own.
  addArchived(view, m) {
    if (!m || typeof m.id !== "string" || typeof m.from !== "string") return false;
    const own = m.from === this.me;
    const state = foldedState(m);
    if (view.list.get(m.id)) view.list.setState(m.id, state);
    view.list.add({
      id: m.id,
      from: m.from,
      ts: m.ts,
      at: m.at,
      seq: m.seq,
      reply_to: typeof m.reply_to === "string" ? m.reply_to : undefined,
      ...state,
      status: own ? "saved" : undefined,
    });
    return own;
  }

  // markRead marks everything of the open room read: its newest seq known
  // from the room list and from the messages shown.
  markRead() {
    const room = this.current && this.rooms.get(this.current);
    if (!room || this.dead) return;
    const seq = Math.max(room.last_seq || 0, (this.view && this.view.list.maxSeq) || 0);
    if (seq > room.last_seq) room.last_seq = seq;
    // Only what a person can see counts as read.
    if (document.hidden) return;
    this.reads.publish(room, seq);
    room.unread = 0;
    room.seen.clear();
    this.renderUnread(room);
  }

  toggleSidebar(open) {
    const v = this.dom.view;
    const want = open === undefined ? !v.classList.contains("sidebar-open") : open;
    v.classList.toggle("sidebar-open", want);
    this.dom.menu.setAttribute("aria-expanded", String(want));
    if (want) {
      const cur = this.current && this.rooms.get(this.current);
      (cur && cur.btn ? cur.btn : this.dom.rooms.querySelector("button"))?.focus();
    }
  }

  // ------------------------------------------------------------------
  // Live messages and receipts

  onRoomMessage(room, from, data) {
    const atts = Array.isArray(data.attachments) ? data.attachments.filter((a) => typeof a === "string") : [];
    if (typeof data.id !== "string" || (typeof data.text !== "string" && atts.length === 0)) return;
    this.clearTyping(room, from);
    const own = from === this.me;
    if (room === this.current && !own && document.hidden) this.notifyHidden(room, from, data);
    if (room === this.current && this.view) {
      const receipt = own ? this.receipts.get(data.id) : null;
      const stick = this.nearBottom();
      this.view.list.add({
        id: data.id,
        from,
        text: typeof data.text === "string" ? data.text : "",
        attachments: atts,
        reply_to: typeof data.reply_to === "string" ? data.reply_to : undefined,
        ts: Number.isInteger(data.ts) ? data.ts : undefined,
        seq: receipt ? receipt.seq : undefined,
        at: receipt ? receipt.at : undefined,
        // Our own message came back through the broker: it was accepted.
        status: own ? (receipt ? "saved" : "sent") : undefined,
      });
      if (stick || own) this.scrollToBottom();
      this.dom.messages.dataset.empty = "false";
      if (!own) this.settleSoon();
      return;
    }
    const r = this.rooms.get(room);
    if (!own && r && document.hidden && !r.seen.has(data.id)) this.notifyHidden(room, from, data);
    if (!own && r && !r.seen.has(data.id)) {
      // A message in another room: count it once, even if it comes again
      // (a sender's retry reuses the id).
      r.seen.add(data.id);
      if (r.seen.size > 1000) r.seen.delete(r.seen.values().next().value);
      r.unread++;
      this.renderUnread(r);
    }
  }

  // notifyHidden shows a message of another user as a notification while
  // this tab is open but hidden, with the tag a push of it has, so that a
  // push of the same message replaces it instead of doubling it.
  notifyHidden(room, from, data) {
    const r = this.rooms.get(room);
    if (!r || r.muted) return;
    const text = data.text.slice(0, 200) || t("conv.photo");
    push.showMessage({ room, title: r.title, from, id: data.id, text }).catch(() => {});
  }

  // A receipt lists the messages of ours that one commit archived in one
  // room: {"room":..,"items":[{"id":..,"seq":..,"at":..}]}.
  onReceipt(data) {
    const { room, items } = data;
    if (typeof room !== "string" || !Array.isArray(items)) return;
    const r = this.rooms.get(room);
    let shown = false;
    for (const item of items) {
      const { id, seq, at } = item || {};
      if (typeof id !== "string" || !Number.isInteger(seq)) continue;
      this.receipts.set(id, { seq, at });
      if (this.receipts.size > 500) this.receipts.delete(this.receipts.keys().next().value);
      this.store.removeOutbox(id);
      this.tries.delete(id);
      if (r && seq > (r.last_seq || 0)) r.last_seq = seq;
      if (room === this.current && this.view) {
        this.view.list.update(id, { seq, at, status: "saved" });
        shown = true;
      }
    }
    if (shown) {
      this.markRead();
      this.reads.renderSeen();
    }
  }


  // ------------------------------------------------------------------
  // Sending and the outbox

  send() {
    const room = this.current && this.rooms.get(this.current);
    if (!room || !room.can_write || !this.view) return;
    const text = cleanText(this.dom.text.value);
    if (charCount(text) > MAX_TEXT) {
      this.notice(t("composer.tooLong", { max: MAX_TEXT }));
      return;
    }
    if (this.conv.sendEdit(text)) return;
    const extras = this.conv.extras();
    if (!extras || (!text && !extras.attachments)) return;
    const entry = { id: newMessageId(), room: room.name, text, ts: Date.now(), ...extras };
    this.conv.sent();
    // The outbox first: if the tab dies now, the message is sent after a reload.
    this.store.putOutbox(entry);
    this.dom.text.value = "";
    this.updateCount();
    this.stopTyping();
    this.view.list.add({ ...entry, from: this.me, status: "sending" });
    this.dom.messages.dataset.empty = "false";
    this.scrollToBottom();
    this.publish(entry);
  }

  // publish sends an outbox entry at QoS 1 (when connected; otherwise the
  // next connect does). PUBACK -> "sent"; the receipt -> "saved" (onReceipt).
  publish(entry) {
    const client = this.client;
    if (!client || !client.connected) return;
    const tries = { at: Date.now(), pending: true };
    this.tries.set(entry.id, tries);
    const body = { id: entry.id, text: entry.text, ts: entry.ts };
    if (entry.reply_to) body.reply_to = entry.reply_to;
    if (Array.isArray(entry.attachments) && entry.attachments.length > 0) body.attachments = entry.attachments;
    const payload = JSON.stringify(body);
    client.publish(`rooms/${entry.room}/messages/${this.me}`, payload, { qos: 1 }, (err) => {
      if (this.dead) return;
      tries.pending = false;
      const list = this.view && this.view.room === entry.room ? this.view.list : null;
      if (!err) {
        if (list) list.setStatus(entry.id, "sent");
        return;
      }
      const code = err.code;
      if (typeof code === "number" && code >= 0x80 && !TEMPORARY.has(code)) {
        // Refused for good: keep it (so it survives a reload), marked failed,
        // until the user retries or deletes it.
        const reason = refusalText(code);
        if (this.store.patchOutbox(entry.id, { failed: true, reason }) && list) {
          list.setStatus(entry.id, "failed", reason);
        }
      } else {
        // Busy, rate limited, or the connection went: the outbox loop tries again.
        console.info("hearth: publish will be retried:", err.message);
      }
    });
  }

  // flushOutbox re-publishes outbox entries (same id, so the archive keeps
  // one). all: every entry (after a connect); otherwise those whose last
  // try is more than OUTBOX_EVERY_MS old and got no receipt.
  flushOutbox(all) {
    if (this.dead || !this.client || !this.client.connected) return;
    const now = Date.now();
    for (const e of this.store.outbox()) {
      if (e.failed) continue;
      if (!all) {
        const t = this.tries.get(e.id);
        const last = t ? t.at : e.ts || 0;
        if (now - last < OUTBOX_EVERY_MS) continue;
        if (t && t.pending && now - t.at < IN_FLIGHT_STALE_MS) continue;
      }
      this.publish(e);
    }
  }

  onMessageClick(e) {
    if (this.conv.onClick(e)) return;
    const btn = e.target.closest("button.retry, button.discard");
    if (!btn || !this.view) return;
    const id = btn.closest(".msg").dataset.id;
    if (btn.classList.contains("discard")) {
      this.store.removeOutbox(id);
      this.view.list.remove(id);
      this.dom.messages.dataset.empty = String(this.view.list.size === 0);
      this.dom.text.focus();
      return;
    }
    let entry = this.store.patchOutbox(id, { failed: false, reason: "" });
    if (!entry) {
      const text = this.view.list.textOf(id);
      if (text === null) return;
      entry = { id, room: this.view.room, text, ts: Date.now() };
      this.store.putOutbox(entry);
    }
    this.view.list.setStatus(id, "sending");
    this.publish(entry);
  }

  // ------------------------------------------------------------------
  // Composer and own typing

  setComposer(room) {
    const d = this.dom;
    const writable = !!(room && room.can_write);
    d.text.disabled = !writable;
    d.send.disabled = !writable;
    d.readonly.hidden = !room || writable;
    d.text.placeholder = writable ? t("composer.placeholder", { room: room.title }) : "";
  }

  updateCount() {
    const n = charCount(this.dom.text.value);
    const el = this.dom.count;
    el.hidden = n < SHOW_COUNT_FROM;
    el.textContent = t("composer.count", { n, max: MAX_TEXT });
    el.classList.toggle("over", n > MAX_TEXT);
    this.dom.text.setAttribute("aria-invalid", String(n > MAX_TEXT));
  }

  onInput() {
    this.updateCount();
    const room = this.current && this.rooms.get(this.current);
    if (!room || !room.can_write) return;
    if (!this.dom.text.value.trim()) {
      this.stopTyping();
      return;
    }
    const t = this.ownTyping;
    const now = Date.now();
    if (t.room !== room.name || now - t.sentAt >= TYPING_RENEW_MS) {
      if (t.room && t.room !== room.name) this.stopTyping();
      this.publishTyping(room.name, true);
      t.room = room.name;
      t.sentAt = now;
    }
    clearTimeout(t.idle);
    t.idle = setTimeout(() => this.stopTyping(), TYPING_IDLE_MS);
  }

  // stopTyping sends typing:false once, if typing:true was sent.
  stopTyping() {
    const t = this.ownTyping;
    clearTimeout(t.idle);
    if (t.room) {
      this.publishTyping(t.room, false);
      t.room = null;
      t.sentAt = 0;
    }
  }

  publishTyping(room, typing) {
    if (this.dead || !this.client || !this.client.connected) return;
    this.client.publish(`rooms/${room}/typing/${this.me}`, JSON.stringify({ typing }), { qos: 0 });
  }

  // ------------------------------------------------------------------
  // Others' typing

  onTyping(room, user, data) {
    if (user === this.me) return;
    if (data.typing === true) {
      let users = this.typing.get(room);
      if (!users) {
        users = new Map();
        this.typing.set(room, users);
      }
      clearTimeout(users.get(user));
      users.set(
        user,
        setTimeout(() => this.clearTyping(room, user), TYPING_SHOW_MS),
      );
      if (room === this.current) this.renderTyping();
    } else {
      this.clearTyping(room, user);
    }
  }

  // clearTyping forgets that user (or everyone, without user) types in room.
  clearTyping(room, user) {
    const users = this.typing.get(room);
    if (!users) return;
    for (const [u, timer] of users) {
      if (user === undefined || u === user) {
        clearTimeout(timer);
        users.delete(u);
      }
    }
    if (room === this.current) this.renderTyping();
  }

  renderTyping() {
    const users = [...(this.typing.get(this.current) || new Map()).keys()].sort();
    let text = "";
    if (users.length === 1) text = t("typing.one", { name: users[0] });
    else if (users.length > 1) text = t("typing.many", { names: users.slice(0, -1).join(", "), last: users[users.length - 1] });
    if (this.dom.typing.textContent !== text) this.dom.typing.textContent = text;
  }

  // ------------------------------------------------------------------
  // Presence

  onPresence(user, data) {
    let li = this.people.get(user);
    if (!data) {
      // An empty retained payload: this user is gone.
      if (li) li.remove();
      this.people.delete(user);
      return;
    }
    if (!li) {
      li = document.createElement("li");
      li.className = "person";
      li.dataset.user = user;
      const dot = document.createElement("span");
      dot.className = "dot";
      dot.setAttribute("aria-hidden", "true");
      const name = document.createElement("span");
      name.className = "name";
      name.textContent = user;
      if (user === this.me) {
        const you = document.createElement("span");
        you.className = "you";
        you.textContent = t("people.you");
        name.append(you);
      }
      const state = document.createElement("span");
      state.className = "state";
      li.append(dot, name, state);
      // Keep the list in name order.
      let before = null;
      for (const [other, el] of this.people) {
        if (other > user && (!before || other < before.dataset.user)) before = el;
      }
      this.dom.people.insertBefore(li, before);
      this.people.set(user, li);
    }
    const online = data.online === true;
    const seen = Number.isFinite(data.last_seen) ? data.last_seen : 0;
    li.dataset.online = String(online);
    const text = online ? t("people.online") : lastSeen(seen);
    li.title = online ? (seen ? t("people.onlineNowSeen", { seen: lastSeen(seen) }) : t("people.onlineNow")) : text;
    li.querySelector(".state").textContent = text;
  }

  // ------------------------------------------------------------------
  // Small things

  nearBottom() {
    const el = this.dom.messages;
    return el.scrollHeight - el.scrollTop - el.clientHeight < 80;
  }

  scrollToBottom() {
    const el = this.dom.messages;
    el.scrollTop = el.scrollHeight;
  }

  /** Shows a short note to the user; ms 0 keeps it until the next one. */
  notice(text, ms = 8000) {
    const el = this.dom.notice;
    el.textContent = text;
    clearTimeout(this.noticeTimer);
    if (ms > 0) {
      this.noticeTimer = setTimeout(() => {
        if (el.textContent === text) el.textContent = "";
      }, ms);
    }
  }
}

// roomFromHash reads a deep link, /#room=NAME, and clears it so that the
// same link works again later.
function roomFromHash() {
  const m = /^#room=(.+)$/.exec(location.hash);
  if (!m) return null;
  history.replaceState(null, "", location.pathname + location.search);
  try {
    return decodeURIComponent(m[1]);
  } catch {
    return null;
  }
}

// pageOf returns the messages of a history page answer.
function pageOf(data) {
  return data && Array.isArray(data.messages) ? data.messages : [];
}

// cleanText drops blank lines at the start and white space at the end; a
// message of only white space comes out empty.
function cleanText(s) {
  return s.replace(/^(?:[ \t]*\r?\n)+/, "").trimEnd();
}
