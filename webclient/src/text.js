// Turning user text and times into DOM. User text only ever becomes text
// nodes, or the text of an <a> whose href is a checked http(s) URL: never
// HTML.

import { lang, t } from "./i18n.js";

// Candidate links: http:// or https:// up to the next white space or angle
// bracket. Trailing punctuation is trimmed in trimURL.
const URL_RE = /\bhttps?:\/\/[^\s<>"]+/gi;

/** Renders text as a fragment of text nodes and safe links. */
export function linkify(text) {
  const frag = document.createDocumentFragment();
  let last = 0;
  for (const match of text.matchAll(URL_RE)) {
    const raw = trimURL(match[0]);
    const href = safeHref(raw);
    if (!href) continue;
    if (match.index > last) {
      frag.append(document.createTextNode(text.slice(last, match.index)));
    }
    const a = document.createElement("a");
    a.href = href;
    a.target = "_blank";
    a.rel = "noopener noreferrer";
    a.textContent = raw;
    frag.append(a);
    last = match.index + raw.length;
  }
  if (last < text.length) {
    frag.append(document.createTextNode(text.slice(last)));
  }
  return frag;
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
