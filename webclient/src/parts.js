// The parts of a message beyond its text: the quote of the message it
// replies to, its photos, "edited" / "Message deleted", its reactions,
// "Seen by", and the buttons to reply, react, edit and delete. The
// MessageList calls renderParts whenever a message's state changes; the
// chat handles the buttons' clicks (events.js).

import { t } from "./i18n.js";
import { thumbURL, knownSize } from "./attachments.js";

/** The reactions shown first in the picker and kept in this order. */
export const QUICK = ["👍", "❤️", "😂", "😮", "😢"];

const OWN_SENT = new Set(["sent", "saved"]);

/** Renders the parts of record r (see MessageList) from r.msg. */
export function renderParts(list, r) {
  const m = r.msg;
  const el = r.el;
  const own = m.from === list.me;
  el.classList.toggle("deleted", !!m.deleted);
  el.querySelector(".text").classList.toggle("gone", !!m.deleted);
  if (m.deleted) el.querySelector(".text").textContent = t("conv.deleted");

  // The quote of the message replied to, before the text.
  let quote = el.querySelector(".quote");
  if (m.reply_to && !m.deleted) {
    if (!quote) {
      quote = document.createElement("button");
      quote.type = "button";
      quote.className = "quote";
      el.querySelector(".text").before(quote);
    }
    quote.dataset.replyTo = m.reply_to;
    fillQuote(list, quote, m.reply_to);
  } else if (quote) {
    quote.remove();
  }

  // Photos, after the text.
  let photos = el.querySelector(".photos");
  const atts = Array.isArray(m.attachments) ? m.attachments : [];
  if (atts.length > 0) {
    if (!photos || photos.dataset.ids !== atts.join(",")) {
      photos?.remove();
      photos = document.createElement("div");
      photos.className = "photos";
      photos.dataset.ids = atts.join(",");
      for (const id of atts) photos.append(photoButton(id, m.sizes && m.sizes[id]));
      el.querySelector(".text").after(photos);
    }
  } else if (photos) {
    photos.remove();
  }

  // Reactions: one button per emoji, "👍 2", the quick ones first.
  let reactions = el.querySelector(".reactions");
  const entries = Object.entries(m.reactions || {}).filter(([, users]) => Array.isArray(users) && users.length > 0);
  entries.sort(([a], [b]) => rank(a) - rank(b));
  if (entries.length > 0) {
    if (!reactions) {
      reactions = document.createElement("div");
      reactions.className = "reactions";
      el.querySelector(".foot").before(reactions);
    }
    reactions.textContent = "";
    for (const [emoji, users] of entries) {
      const b = document.createElement("button");
      b.type = "button";
      b.className = "reaction";
      b.dataset.emoji = emoji;
      b.textContent = `${emoji} ${users.length}`;
      b.title = users.join(", ");
      b.setAttribute("aria-pressed", String(users.includes(list.me)));
      reactions.append(b);
    }
  } else if (reactions) {
    reactions.remove();
  }

  // "edited" in the foot.
  const foot = el.querySelector(".foot");
  let edited = foot.querySelector(".edited");
  if (m.edited_at && !m.deleted) {
    if (!edited) {
      edited = document.createElement("span");
      edited.className = "edited";
      edited.textContent = t("conv.edited");
      foot.querySelector(".time").after(edited);
    }
  } else if (edited) {
    edited.remove();
  }

  // The buttons, for messages that are not deleted (own ones once the
  // server has them, so that an event never comes before its message).
  let tools = el.querySelector(".tools");
  const canAct = !m.deleted && (!own || OWN_SENT.has(r.status));
  if (!canAct) {
    tools?.remove();
    return;
  }
  const want = own ? ["reply", "react", "edit", "delete"] : ["reply", "react"];
  if (tools && tools.dataset.kinds === want.join(",")) return;
  tools?.remove();
  tools = document.createElement("div");
  tools.className = "tools";
  tools.dataset.kinds = want.join(",");
  for (const kind of want) {
    const b = document.createElement("button");
    b.type = "button";
    b.className = `tool ${kind}`;
    b.dataset.action = kind;
    b.textContent = t(`conv.${kind}`);
    tools.append(b);
  }
  el.append(tools);
}

// rank orders reactions: the quick ones in their order, then the others.
function rank(emoji) {
  const i = QUICK.indexOf(emoji);
  return i < 0 ? QUICK.length : i;
}

// fillQuote writes "author: first line" of the original into quote, or
// "original not loaded".
function fillQuote(list, quote, id) {
  const orig = list.get(id);
  quote.textContent = "";
  const who = document.createElement("span");
  who.className = "quote-from";
  const line = document.createElement("span");
  line.className = "quote-text";
  if (orig) {
    who.textContent = orig.from;
    line.textContent = orig.deleted ? t("conv.deleted") : firstLine(orig);
    quote.classList.remove("unknown");
  } else {
    line.textContent = t("conv.originalNotLoaded");
    quote.classList.add("unknown");
  }
  quote.append(who, line);
  quote.setAttribute("aria-label", t("conv.quoteLabel", { from: orig ? orig.from : "?", text: line.textContent }));
}

/** The first line of a message's text, or "📷 Photo" for a photo alone. */
export function firstLine(m) {
  const line = (m.text || "").split("\n")[0];
  if (line) return line.length > 120 ? line.slice(0, 119) + "…" : line;
  return Array.isArray(m.attachments) && m.attachments.length > 0 ? t("conv.photo") : "";
}

/** Updates the quotes that refer to id, now that it is shown or changed. */
export function refreshQuotes(list, id) {
  for (const q of list.el.querySelectorAll(`.quote[data-reply-to="${CSS.escape(id)}"]`)) fillQuote(list, q, id);
}

// photoButton is a thumbnail that opens the full view. Its size is set
// before it loads (the upload's, or one seen before; else a square), so
// the list does not jump while images load.
function photoButton(id, size) {
  const b = document.createElement("button");
  b.type = "button";
  b.className = "photo";
  b.dataset.attachment = id;
  b.setAttribute("aria-label", t("conv.openPhoto"));
  const img = document.createElement("img");
  img.alt = t("conv.photoAlt");
  img.decoding = "async";
  img.loading = "lazy";
  const s = size || knownSize(id);
  const MAX = 240;
  if (s && s.width > 0 && s.height > 0) {
    const k = Math.min(1, MAX / Math.max(s.width, s.height));
    img.width = Math.max(1, Math.round(s.width * k));
    img.height = Math.max(1, Math.round(s.height * k));
  } else {
    img.width = MAX;
    img.height = MAX;
    img.classList.add("square");
  }
  img.src = thumbURL(id);
  b.append(img);
  return b;
}

/** Shows "Seen by …" under the message el (or removes it with names empty). */
export function renderSeen(el, names) {
  let seen = el.querySelector(".seen");
  if (names.length === 0) {
    seen?.remove();
    return;
  }
  if (!seen) {
    seen = document.createElement("div");
    seen.className = "seen";
    el.append(seen);
  }
  seen.textContent = t("conv.seenBy", { names: names.join(", ") });
}
