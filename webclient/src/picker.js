// The emoji picker for reactions: a dialog with the quick reactions first,
// then the full emoji-picker-element. Its emoji data is built into dist/
// (build.mjs) and fetched from the page's own origin; it never goes to a
// CDN.

import "emoji-picker-element";
import { lang } from "./i18n.js";
import de from "emoji-picker-element/i18n/de.js";
import { QUICK } from "./parts.js";

// Set by build.mjs: {"en": "emoji-en-HASH.json", "de": "emoji-de-HASH.json"}.
/* global HEARTH_EMOJI_DATA */
const DATA = typeof HEARTH_EMOJI_DATA === "object" ? HEARTH_EMOJI_DATA : {};

// The page's CSP allows no inline <style>: the picker's own style sheet
// is adopted as a constructed one instead, with a few rules for what its
// inline style attributes would have done.
const EXTRA = ".nav{grid-auto-flow:column;grid-template-columns:none}.indicator-wrapper{display:none}";

export class Picker {
  /** dialog: the <dialog>; onPick(emoji) runs with the chosen emoji. */
  constructor(dialog, onPick) {
    this.dialog = dialog;
    this.onPick = onPick;
    this.el = null;
    const quick = dialog.querySelector(".quick");
    for (const emoji of QUICK) {
      const b = document.createElement("button");
      b.type = "button";
      b.className = "quick-emoji";
      b.textContent = emoji;
      b.setAttribute("aria-label", emoji);
      b.addEventListener("click", () => this.pick(emoji));
      quick.append(b);
    }
    dialog.querySelector(".close-picker").addEventListener("click", () => dialog.close());
    dialog.addEventListener("click", (e) => {
      if (e.target === dialog) dialog.close(); // a tap beside the box
    });
  }

  open() {
    if (!this.el) {
      const el = document.createElement("emoji-picker");
      const code = DATA[lang] ? lang : "en";
      el.locale = code;
      if (DATA[code]) el.dataSource = "/" + DATA[code];
      if (code === "de") el.i18n = de;
      const root = el.shadowRoot;
      const style = root && root.querySelector("style");
      if (style && "adoptedStyleSheets" in root) {
        const sheet = new CSSStyleSheet();
        sheet.replaceSync(style.textContent + EXTRA);
        root.adoptedStyleSheets = [sheet];
      }
      el.addEventListener("emoji-click", (e) => this.pick(e.detail.unicode));
      this.dialog.querySelector(".full").append(el);
      this.el = el;
    }
    this.dialog.showModal();
    this.dialog.querySelector(".quick-emoji")?.focus();
  }

  pick(emoji) {
    this.dialog.close();
    if (emoji) this.onPick(emoji);
  }
}


