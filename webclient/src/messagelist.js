// The message list of the open room: one .msg element per message id,
// whatever way it came (history page, live MQTT message, own echo,
// catch-up after a reconnect, the outbox).
//
// Order: messages with a known seq are kept in seq order; messages without
// one (live ones: MQTT payloads carry no seq; own ones not yet archived)
// stay where they arrived, after the known ones. A message that learns its
// seq later moves only if it would otherwise break the seq order.

import { linkify, setTime, timeElement } from "./text.js";
import { t } from "./i18n.js";
import { renderParts, refreshQuotes } from "./parts.js";

// Consecutive messages of one sender are grouped (.cont hides the repeated
// name) unless this much time lies between them.
const GROUP_GAP_MS = 10 * 60 * 1000;

// Own message status. A status never goes back (a late PUBACK of a retry
// does not turn "saved" into "sent"), except failed -> sending on a retry.
const STATUS_RANK = { sending: 0, failed: 0, sent: 1, saved: 2 };

export class MessageList {
  /**
   * @param {HTMLElement} el the #messages container
   * @param {string} me the logged-in user
   */
  constructor(el, me) {
    this.el = el;
    this.me = me;
    /** id -> {el, from, time, seq, status} */
    this.byId = new Map();
    this.minSeq = null;
    this.maxSeq = null;
    el.textContent = "";
  }

  get size() {
    return this.byId.size;
  }

  /**
   * Adds a message, or merges what is new about one already shown (its seq,
   * archive time, status). msg: {id, from, text, ts?, at?, seq?, status?}.
   * Returns true when it was new.
   */
  add(msg) {
    const rec = this.byId.get(msg.id);
    if (rec) {
      this.update(msg.id, msg);
      return false;
    }
    const own = msg.from === this.me;
    const el = document.createElement("div");
    el.className = own ? "msg own" : "msg";
    el.dataset.id = msg.id;
    el.dataset.from = msg.from;

    const from = document.createElement("span");
    from.className = "from";
    from.textContent = msg.from;

    const text = document.createElement("div");
    text.className = "text";
    text.append(linkify(msg.text || ""));

    const time = msg.at || msg.ts || Date.now();
    const foot = document.createElement("div");
    foot.className = "foot";
    foot.append(timeElement(time));

    el.append(from, text, foot);

    const r = { el, from: msg.from, time, seq: null, status: null, reason: "", msg: { ...msg } };
    this.byId.set(msg.id, r);
    if (Number.isInteger(msg.seq)) {
      this._setSeq(r, msg.seq);
      this._insertBySeq(el, msg.seq);
    } else {
      this.el.append(el);
    }
    if (own) {
      const status = document.createElement("span");
      status.className = "status";
      foot.append(status);
      this.setStatus(msg.id, msg.status || "sent", msg.reason);
    }
    renderParts(this, r);
    this._regroupAround(el);
    refreshQuotes(this, msg.id);
    return true;
  }

  /** The message data of a shown id, or null. */
  get(id) {
    const r = this.byId.get(id);
    return r ? r.msg : null;
  }

  /**
   * Changes the folded state of a shown message ({text?, edited_at?,
   * deleted?, reactions?, attachments?}) and renders it again.
   */
  setState(id, patch) {
    const r = this.byId.get(id);
    if (!r) return;
    Object.assign(r.msg, patch);
    if (r.msg.deleted) {
      r.msg.text = "";
      r.msg.attachments = [];
      r.msg.reactions = {};
    }
    const text = r.el.querySelector(".text");
    text.textContent = "";
    text.append(linkify(r.msg.text || ""));
    renderParts(this, r);
    refreshQuotes(this, id);
  }

  /** The shown message ids in order. */
  ids() {
    return [...this.el.querySelectorAll(".msg")].map((el) => el.dataset.id);
  }

  /** Merges {seq?, at?, status?, reason?} into a shown message; no-op for an unknown id. */
  update(id, patch) {
    const r = this.byId.get(id);
    if (!r) return;
    if (Number.isInteger(patch.at) && patch.at > 0 && patch.at !== r.time) {
      r.time = patch.at;
      setTime(r.el.querySelector(".time"), patch.at);
    }
    if (Number.isInteger(patch.seq) && r.seq === null) {
      this._setSeq(r, patch.seq);
      if (!this._inOrder(r.el, patch.seq)) {
        const next = r.el.nextElementSibling;
        r.el.remove();
        if (next) this._regroup(next);
        this._insertBySeq(r.el, patch.seq);
      }
      this._regroupAround(r.el);
    }
    if (patch.status) {
      this.setStatus(id, patch.status, patch.reason);
    }
    if (patch.status === "saved" || Number.isInteger(patch.seq)) renderParts(this, r);
  }

  /** Sets an own message's status; see STATUS_RANK for the allowed moves. */
  setStatus(id, status, reason = "") {
    const r = this.byId.get(id);
    if (!r || r.from !== this.me) return;
    const from = r.status;
    const allowed =
      from === null ||
      (from !== "saved" && STATUS_RANK[status] > STATUS_RANK[from]) ||
      (from === "failed" && status === "sending") ||
      (status === "failed" && (from === "sending" || from === "sent"));
    if (!allowed || from === status) return;
    r.status = status;
    r.el.dataset.status = status;
    const el = r.el.querySelector(".status");
    el.textContent = t(`status.${status}`);
    el.title = status === "failed" && reason ? t("status.title.failedWhy", { reason }) : t(`status.title.${status}`);

    // A failed message gets buttons to send it again or to drop it.
    const foot = r.el.querySelector(".foot");
    let actions = foot.querySelector(".actions");
    if (status === "failed" && !actions) {
      actions = document.createElement("span");
      actions.className = "actions";
      const retry = document.createElement("button");
      retry.type = "button";
      retry.className = "retry";
      retry.textContent = t("msg.retry");
      const discard = document.createElement("button");
      discard.type = "button";
      discard.className = "discard";
      discard.textContent = t("msg.discard");
      actions.append(retry, discard);
      foot.append(actions);
    } else if (status !== "failed" && actions) {
      actions.remove();
    }
  }

  /** The text of a shown message (for a retry whose outbox entry is gone). */
  textOf(id) {
    const r = this.byId.get(id);
    return r ? r.el.querySelector(".text").textContent : null;
  }

  remove(id) {
    const r = this.byId.get(id);
    if (!r) return;
    const next = r.el.nextElementSibling;
    r.el.remove();
    this.byId.delete(id);
    if (next) this._regroup(next);
  }

  _setSeq(r, seq) {
    r.seq = seq;
    r.msg.seq = seq;
    r.el.dataset.seq = String(seq);
    if (this.minSeq === null || seq < this.minSeq) this.minSeq = seq;
    if (this.maxSeq === null || seq > this.maxSeq) this.maxSeq = seq;
  }

  // _insertBySeq puts el right after the last element with a smaller seq,
  // so it lands before any unsequenced messages that follow that one.
  _insertBySeq(el, seq) {
    let node = this.el.lastElementChild;
    while (node) {
      const s = seqOf(node);
      if (s !== null && s < seq) break;
      node = node.previousElementSibling;
    }
    if (node) node.after(el);
    else this.el.prepend(el);
  }

  // _inOrder reports whether el, with seq, sits between its nearest
  // sequenced neighbours.
  _inOrder(el, seq) {
    for (let n = el.previousElementSibling; n; n = n.previousElementSibling) {
      const s = seqOf(n);
      if (s !== null) {
        if (s > seq) return false;
        break;
      }
    }
    for (let n = el.nextElementSibling; n; n = n.nextElementSibling) {
      const s = seqOf(n);
      if (s !== null) return s > seq;
    }
    return true;
  }

  _regroupAround(el) {
    this._regroup(el);
    if (el.nextElementSibling) this._regroup(el.nextElementSibling);
  }

  // _regroup marks el .cont when it follows a message of the same sender
  // closely enough.
  _regroup(el) {
    const prev = el.previousElementSibling;
    const a = this.byId.get(el.dataset.id);
    const b = prev && this.byId.get(prev.dataset.id);
    const cont = !!(a && b && a.from === b.from && Math.abs(a.time - b.time) < GROUP_GAP_MS);
    el.classList.toggle("cont", cont);
  }
}

function seqOf(el) {
  const s = el.dataset.seq;
  return s === undefined ? null : Number(s);
}
