// The conversation around messages: replies, reactions, edits, deletes
// (events on rooms/{room}/events/{me}), photos in the composer, the photo
// view, and jumping to a message. A Chat owns one Conversation; chat.js
// calls its hooks.

import { t } from "./i18n.js";
import { newMessageId } from "./storage.js";
import { PendingPhotos, openPhoto, setTokenSource } from "./attachments.js";
import { Picker } from "./picker.js";
import { firstLine } from "./parts.js";

const EVENT_TYPES = new Set(["reaction", "edit", "delete"]);
const AROUND = 25; // messages before and after a message jumped to

export class Conversation {
  constructor(chat) {
    this.chat = chat;
    const $ = (id) => document.getElementById(id);
    this.dom = {
      attach: $("attach"),
      input: $("attach-input"),
      pending: $("pending"),
      bar: $("compose-bar"),
      barLabel: $("compose-bar-label"),
      barText: $("compose-bar-text"),
      barCancel: $("compose-bar-cancel"),
      photo: $("photo-view"),
      picker: $("picker"),
    };
    this.replyTo = null; // {id, from, text}
    this.editing = null; // {id, room}
    this.applied = new Set(); // "from/id" of events applied to the open room
    setTokenSource(() => chat.session.token);
    this.photos = new PendingPhotos(this.dom.pending, {
      room: () => chat.current,
      token: () => chat.session.token,
      onChange: () => {},
    });
    this.picker = new Picker(this.dom.picker, (emoji) => {
      if (this.reactTo) this.toggleReaction(this.reactTo, emoji);
    });
  }

  bind(opts) {
    const d = this.dom;
    d.attach.addEventListener("click", () => d.input.click(), opts);
    d.input.addEventListener(
      "change",
      () => {
        this.photos.add([...d.input.files]);
        d.input.value = "";
      },
      opts,
    );
    d.barCancel.addEventListener("click", () => this.cancelCompose(), opts);
    this.chat.dom.text.addEventListener(
      "keydown",
      (e) => {
        if (e.key === "Escape" && (this.editing || this.replyTo)) {
          e.preventDefault();
          this.cancelCompose();
        }
      },
      opts,
    );
    d.photo.addEventListener("click", () => d.photo.close(), opts);
  }

  /** A room was opened: what was being composed for another room goes. */
  onOpenRoom() {
    this.cancelCompose();
    this.photos.clear();
    this.applied.clear();
  }

  // ---- clicks in the message list ----

  /** Handles a click in #messages; reports whether it was one of ours. */
  onClick(e) {
    const list = this.chat.view && this.chat.view.list;
    if (!list) return false;
    const msgEl = e.target.closest(".msg");
    const id = msgEl && msgEl.dataset.id;
    const tool = e.target.closest("button.tool");
    if (tool && id) {
      const m = list.get(id);
      if (!m) return true;
      switch (tool.dataset.action) {
        case "reply":
          this.startReply(m);
          break;
        case "react":
          this.reactTo = m;
          this.picker.open();
          break;
        case "edit":
          this.startEdit(m);
          break;
        case "delete":
          if (confirm(t("conv.confirmDelete"))) this.publishEvent(m, { type: "delete" });
          break;
      }
      return true;
    }
    const reaction = e.target.closest("button.reaction");
    if (reaction && id) {
      this.toggleReaction(list.get(id), reaction.dataset.emoji);
      return true;
    }
    const quote = e.target.closest("button.quote");
    if (quote) {
      this.jumpTo(quote.dataset.replyTo);
      return true;
    }
    const photo = e.target.closest("button.photo");
    if (photo) {
      openPhoto(this.dom.photo, photo.dataset.attachment);
      return true;
    }
    return false;
  }

  // ---- composing: reply and edit ----

  startReply(m) {
    this.editing = null;
    this.replyTo = { id: m.id, from: m.from, text: firstLine(m) };
    this.showBar(t("conv.replyingTo", { from: m.from }), this.replyTo.text);
    this.chat.dom.text.focus();
  }

  startEdit(m) {
    this.replyTo = null;
    this.editing = { id: m.id, from: m.from, room: this.chat.current };
    this.showBar(t("conv.editing"), firstLine(m));
    const text = this.chat.dom.text;
    text.value = m.text || "";
    this.chat.updateCount();
    text.focus();
  }

  showBar(label, text) {
    const d = this.dom;
    d.barLabel.textContent = label;
    d.barText.textContent = text;
    d.bar.hidden = false;
    d.barCancel.setAttribute("aria-label", this.editing ? t("conv.cancelEdit") : t("conv.cancelReply"));
  }

  cancelCompose() {
    if (this.editing) {
      this.chat.dom.text.value = "";
      this.chat.updateCount();
    }
    this.editing = null;
    this.replyTo = null;
    this.dom.bar.hidden = true;
  }

  /**
   * What send() adds to a new message ({reply_to?, attachments?, sizes?}),
   * or null when photos still upload.
   */
  extras() {
    if (this.photos.busy()) {
      this.chat.notice(t("conv.waitUpload"));
      return null;
    }
    const out = {};
    if (this.replyTo) out.reply_to = this.replyTo.id;
    const ids = this.photos.ids();
    if (ids.length > 0) {
      out.attachments = ids;
      out.sizes = this.photos.sizes();
    }
    return out;
  }

  /** After a send: the composer's reply and photos are done. */
  sent() {
    this.cancelCompose();
    this.photos.clear();
  }

  /** In edit mode, sends the edit; reports whether it did. */
  sendEdit(text) {
    if (!this.editing) return false;
    const m = { id: this.editing.id, from: this.editing.from };
    if (text) this.publishEvent(m, { type: "edit", text });
    this.cancelCompose();
    this.chat.dom.text.value = "";
    this.chat.updateCount();
    return true;
  }

  // ---- events ----

  toggleReaction(m, emoji) {
    if (m && emoji) this.publishEvent(m, { type: "reaction", emoji });
  }

  publishEvent(target, ev) {
    const chat = this.chat;
    const room = chat.current;
    if (!room || !chat.client || !chat.client.connected) {
      chat.notice(t("conv.offline"));
      return;
    }
    const payload = JSON.stringify({ id: newMessageId(), ...ev, target: { from: target.from, id: target.id } });
    chat.client.publish(`rooms/${room}/events/${chat.me}`, payload, { qos: 1 }, (err) => {
      if (err && !chat.dead) chat.notice(t("conv.eventFailed"));
    });
  }

  /** A live event from MQTT. */
  onLiveEvent(room, from, data) {
    const chat = this.chat;
    if (room !== chat.current || !chat.view || !validEvent(data)) return;
    const key = `${from}/${data.id}`;
    const list = chat.view.list;
    const m = list.get(data.target.id);
    if (!m || m.from !== data.target.from) {
      // Not shown (yet): the next catch-up or page brings its state.
      chat.settleSoon();
      return;
    }
    if (this.applied.has(key)) return;
    this.applied.add(key);
    apply(list, m, from, data, Date.now());
  }

  /**
   * Events of an after= page. An event seen live was applied then; for
   * the others, the message's folded state is fetched again (a page of
   * one), which is right however many of them came.
   */
  async onPageEvents(view, events) {
    const targets = new Set();
    for (const e of events) {
      if (!validEvent(e)) continue;
      if (Number.isInteger(e.seq)) view.eventSeq = Math.max(view.eventSeq || 0, e.seq);
      const key = `${e.from}/${e.id}`;
      if (this.applied.has(key)) continue;
      this.applied.add(key);
      const m = view.list.get(e.target.id);
      if (m && Number.isInteger(m.seq)) targets.add(m.seq);
    }
    for (const seq of targets) {
      try {
        const data = await this.chat.api(
          `/api/rooms/${encodeURIComponent(view.room)}/messages?limit=1&before=${seq + 1}`,
        );
        if (view !== this.chat.view) return;
        const m = (data && data.messages && data.messages[0]) || null;
        if (m && m.seq === seq) view.list.setState(m.id, foldedState(m));
      } catch (err) {
        console.warn("hearth: message state:", err.message);
      }
    }
  }

  // ---- jumping to a message ----

  /**
   * Shows message id (with seq, when known) highlighted: at once when it
   * is shown; else older pages are loaded until it is (with seq: the
   * page around it, then everything newer).
   */
  async jumpTo(id, seq) {
    const chat = this.chat;
    let view = chat.view;
    if (!view) return;
    if (!view.list.get(id) && Number.isInteger(seq) && (view.list.minSeq === null || seq < view.list.minSeq)) {
      view = await chat.showAround(seq, AROUND);
      if (!view) return;
    }
    for (let i = 0; i < 20 && view === chat.view && !view.list.get(id) && view.hasOlder; i++) {
      await chat.loadOlder();
    }
    if (view !== chat.view) return;
    const el = [...chat.dom.messages.querySelectorAll(".msg")].find((e) => e.dataset.id === id);
    if (!el) {
      chat.notice(t("conv.originalNotLoaded"));
      return;
    }
    for (const old of chat.dom.messages.querySelectorAll(".msg.highlight")) old.classList.remove("highlight");
    el.classList.add("highlight");
    el.scrollIntoView({ block: "center" });
    el.tabIndex = -1;
    el.focus({ preventScroll: true });
    setTimeout(() => el.classList.remove("highlight"), 4000);
  }
}

// validEvent checks the shape FAMILY's events have.
function validEvent(e) {
  return (
    e &&
    typeof e.id === "string" &&
    EVENT_TYPES.has(e.type) &&
    e.target &&
    typeof e.target.id === "string" &&
    typeof e.target.from === "string"
  );
}

/** Whether an archived entry is an event (of a type known or not). */
export function isEvent(m) {
  return !!m && typeof m.type === "string" && m.type !== "message";
}

/** The folded state of an archived message, as MessageList.setState takes it. */
export function foldedState(m) {
  return {
    text: typeof m.text === "string" ? m.text : "",
    edited_at: Number.isInteger(m.edited_at) ? m.edited_at : 0,
    deleted: m.deleted === true,
    reactions: m.reactions && typeof m.reactions === "object" ? m.reactions : {},
    attachments: Array.isArray(m.attachments) ? m.attachments : [],
  };
}

// apply folds one event into a shown message, as the archive does.
function apply(list, m, from, e, now) {
  if (e.type === "reaction") {
    if (typeof e.emoji !== "string" || !e.emoji) return;
    const reactions = { ...(m.reactions || {}) };
    const users = [...(reactions[e.emoji] || [])];
    const i = users.indexOf(from);
    if (i >= 0) users.splice(i, 1);
    else users.push(from);
    if (users.length > 0) reactions[e.emoji] = users;
    else delete reactions[e.emoji];
    list.setState(m.id, { reactions });
  } else if (e.type === "edit") {
    if (from !== m.from || typeof e.text !== "string" || m.deleted) return;
    list.setState(m.id, { text: e.text, edited_at: Number.isInteger(e.at) ? e.at : now });
  } else if (e.type === "delete") {
    if (from !== m.from) return;
    list.setState(m.id, { deleted: true });
  }
}
