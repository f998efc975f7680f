// Turning user text and times into DOM. User text only ever becomes text
// nodes, or the text of an <a> whose href is a checked http(s) URL or a
// mailto: address: never HTML.

import { lang, t } from "./i18n.js";

// Candidate links, in one pass: an http:// or https:// URL, a www. host
// (linked as https://), or an e-mail address (linked as mailto:), each up
// to the next white space, angle bracket or quote. Trailing punctuation is
// trimmed in trimURL. A www. or an address must not follow a letter, digit
// or one of ./@ (so "x.www.a.org" or the host part of an address is no
// link of its own).
const LINK_RE =
  /\bhttps?:\/\/[^\s<>"]+|(?<![\p{L}\p{N}_.\/@-])www\.[^\s<>"]+|(?<![\p{L}\p{N}_.\/@+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}/giu;

// An e-mail address as LINK_RE finds it, whole.
const EMAIL_RE = /^[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}$/;

/**
 * Splits text into parts: {text} for plain text and {text, href} for a
 * link, in order; joined, the texts are the text again. Only http(s) and
 * mailto: hrefs come out.
 */
export function findLinks(text) {
  const parts = [];
  let last = 0;
  for (const match of text.matchAll(LINK_RE)) {
    const raw = trimURL(match[0]);
    const href = linkHref(raw);
    if (!href) continue;
    if (match.index > last) parts.push({ text: text.slice(last, match.index) });
    parts.push({ text: raw, href });
    last = match.index + raw.length;
  }
  if (last < text.length) parts.push({ text: text.slice(last) });
  return parts;
}

/** Renders text as a fragment of text nodes and safe links. */
export function linkify(text) {
  const frag = document.createDocumentFragment();
  for (const part of findLinks(text)) {
    if (!part.href) {
      frag.append(document.createTextNode(part.text));
      continue;
    }
    const a = document.createElement("a");
    a.href = part.href;
    if (!part.href.startsWith("mailto:")) {
      a.target = "_blank";
      a.rel = "noopener noreferrer";
    }
    a.textContent = part.text;
    frag.append(a);
  }
  return frag;
}

// linkHref is the href for a trimmed candidate: the checked URL, https://
// before a www. host, mailto: before an address; null for none.
function linkHref(raw) {
  if (/^https?:\/\//i.test(raw)) return safeHref(raw);
  if (/^www\./i.test(raw)) {
    const href = safeHref("https://" + raw);
    // "www." alone, or "www.x" without a dot after the host's first label.
    return href && /^www\.[^.]+\.[^.]/i.test(new URL(href).hostname) ? href : null;
  }
  if (EMAIL_RE.test(raw)) return "mailto:" + raw;
  return null;
}

// trimURL drops punctuation that ends a sentence rather than the URL:
// "see https://example.com/a." or "(https://example.com/a)".
function trimURL(url) {
  for (;;) {
    const end = url[url.length - 1];
    if (".,;:!?'*".includes(end)) {
      url = url.slice(0, -1);
    } else if (end === ")" && count(url, "(") < count(url, ")")) {
      url = url.slice(0, -1);
    } else {
      return url;
    }
  }
}

function count(s, ch) {
  return s.split(ch).length - 1;
}

// safeHref returns the normalized URL when it parses and is http or https.
function safeHref(raw) {
  try {
    const u = new URL(raw);
    return u.protocol === "http:" || u.protocol === "https:" ? u.href : null;
  } catch {
    return null;
  }
}

/** The number of characters (code points) of s, as the server counts them. */
export function charCount(s) {
  let n = 0;
  for (const _ of s) n++; // eslint-disable-line no-unused-vars
  return n;
}

// Dates in the page's language (the browser's regional format when it
// speaks the same language).
const locale = localeFor(lang);
const timeFmt = new Intl.DateTimeFormat(locale, { hour: "numeric", minute: "2-digit" });
const dayTimeFmt = new Intl.DateTimeFormat(locale, {
  day: "numeric",
  month: "short",
  hour: "numeric",
  minute: "2-digit",
});
const fullFmt = new Intl.DateTimeFormat(locale, { dateStyle: "full", timeStyle: "medium" });

/** A short local time: "14:05" today, "3 Mar, 14:05" on another day. */
export function shortTime(ms) {
  const d = new Date(ms);
  const today = new Date();
  return d.toDateString() === today.toDateString() ? timeFmt.format(d) : dayTimeFmt.format(d);
}

/** A <time> element for ms, with its full date as title. */
export function timeElement(ms, className = "time") {
  const el = document.createElement("time");
  el.className = className;
  setTime(el, ms);
  return el;
}

export function setTime(el, ms) {
  const d = new Date(ms);
  el.dateTime = d.toISOString();
  el.textContent = shortTime(ms);
  el.title = fullFmt.format(d);
}

/** "last seen 14:05", or "never seen" for 0. */
export function lastSeen(ms) {
  return ms > 0 ? t("people.lastSeen", { time: shortTime(ms) }) : t("people.neverSeen");
}

// localeFor picks the browser's first locale of language code (de-AT for
// de), else the bare code.
function localeFor(code) {
  const prefs = (globalThis.navigator && navigator.languages) || [];
  return prefs.find((l) => l.toLowerCase().split("-")[0] === code) || code;
}
