// Searching the open room: a dialog with a search box; the results
// (author, time, text with the words found marked) open the message in
// its history.

import { t } from "./i18n.js";
import { timeElement } from "./text.js";

const DEBOUNCE_MS = 250;

export class Search {
  constructor(chat) {
    this.chat = chat;
    const $ = (id) => document.getElementById(id);
    this.dom = { open: $("search-open"), dialog: $("search"), input: $("search-input"), results: $("search-results"), status: $("search-status") };
    this.timer = 0;
    this.seq = 0; // of the latest query, so that older answers are dropped
  }

  bind(opts) {
    const d = this.dom;
    d.open.addEventListener("click", () => this.open(), opts);
    d.input.addEventListener(
      "input",
      () => {
        clearTimeout(this.timer);
        this.timer = setTimeout(() => this.run(), DEBOUNCE_MS);
      },
      opts,
    );
    d.input.addEventListener(
      "keydown",
      (e) => {
        if (e.key === "Enter") {
          e.preventDefault();
          clearTimeout(this.timer);
          this.run();
        }
      },
      opts,
    );
    d.dialog.querySelector(".close-search").addEventListener("click", () => d.dialog.close(), opts);
    d.results.addEventListener(
      "click",
      (e) => {
        const b = e.target.closest("button.result");
        if (!b) return;
        d.dialog.close();
        this.chat.conv.jumpTo(b.dataset.id, Number(b.dataset.seq));
      },
      opts,
    );
  }

  open() {
    if (!this.chat.current) return;
    const room = this.chat.rooms.get(this.chat.current);
    this.dom.dialog.querySelector(".search-title").textContent = t("search.title", { room: room ? room.title : "" });
    this.dom.dialog.showModal();
    this.dom.input.select();
  }

  async run() {
    const q = this.dom.input.value.trim();
    const d = this.dom;
    const n = ++this.seq;
    if (!q) {
      d.results.textContent = "";
      d.status.textContent = "";
      return;
    }
    const room = this.chat.current;
    try {
      const data = await this.chat.api(`/api/rooms/${encodeURIComponent(room)}/search?q=${encodeURIComponent(q)}&limit=50`);
      if (n !== this.seq) return;
      const list = data && Array.isArray(data.messages) ? data.messages : [];
      d.results.textContent = "";
      for (const m of list) {
        if (!m || typeof m.id !== "string" || !Number.isInteger(m.seq)) continue;
        const li = document.createElement("li");
        const b = document.createElement("button");
        b.type = "button";
        b.className = "result";
        b.dataset.id = m.id;
        b.dataset.seq = String(m.seq);
        const from = document.createElement("span");
        from.className = "from";
        from.textContent = m.from;
        const text = document.createElement("span");
        text.className = "text";
        text.append(highlight(m.text || "", q));
        b.append(from, timeElement(m.at || m.ts || 0), text);
        li.append(b);
        d.results.append(li);
      }
      d.status.textContent = list.length === 0 ? t("search.none") : t("search.count", { n: list.length });
    } catch (err) {
      if (n === this.seq) d.status.textContent = t("search.failed");
    }
  }
}

/** text as text nodes, with the words of q marked (<mark>) where a word starts with one. */
export function highlight(text, q) {
  const words = (q.toLowerCase().match(/[\p{L}\p{N}]+/gu) || []).map((w) => w.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"));
  const frag = document.createDocumentFragment();
  if (words.length === 0) {
    frag.append(text);
    return frag;
  }
  const re = new RegExp(`(?<![\\p{L}\\p{N}])(?:${words.join("|")})[\\p{L}\\p{N}]*`, "giu");
  let last = 0;
  for (const m of text.matchAll(re)) {
    if (m.index > last) frag.append(text.slice(last, m.index));
    const mark = document.createElement("mark");
    mark.textContent = m[0];
    frag.append(mark);
    last = m.index + m[0].length;
  }
  if (last < text.length) frag.append(text.slice(last));
  return frag;
}
