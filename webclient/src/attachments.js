// Photos: uploading them from the composer, their URLs (the token goes in
// ?access_token=, as <img> cannot send an Authorization header), the
// sizes known of them, and the full view.

import { t } from "./i18n.js";

let tokenOf = () => "";

/** Sets where the URLs take the token from. */
export function setTokenSource(fn) {
  tokenOf = fn;
}

const enc = encodeURIComponent;

/** The thumbnail URL of attachment id. */
export function thumbURL(id) {
  return `/api/attachments/${enc(id)}/thumb?access_token=${enc(tokenOf())}`;
}

/** The URL of the file itself. */
export function fileURL(id) {
  return `/api/attachments/${enc(id)}?access_token=${enc(tokenOf())}`;
}

// Sizes of attachments this browser has seen (uploads and loaded
// thumbnails), so that a reload lays photos out at their size at once.
const SIZES_KEY = "hearth.photoSizes";
const MAX_SIZES = 500;
let sizes = null;

function loadSizes() {
  if (sizes) return sizes;
  try {
    sizes = new Map(Object.entries(JSON.parse(localStorage.getItem(SIZES_KEY)) || {}));
  } catch {
    sizes = new Map();
  }
  return sizes;
}

/** The width and height known of attachment id, or null. */
export function knownSize(id) {
  return loadSizes().get(id) || null;
}

/** Remembers the size of attachment id. */
export function rememberSize(id, width, height) {
  if (!(width > 0 && height > 0)) return;
  const m = loadSizes();
  m.delete(id);
  m.set(id, { width, height });
  while (m.size > MAX_SIZES) m.delete(m.keys().next().value);
  try {
    localStorage.setItem(SIZES_KEY, JSON.stringify(Object.fromEntries(m)));
  } catch {
    // Without storage, sizes last as long as the page.
  }
}

/**
 * Uploads file to room; resolves with the server's answer {id,
 * content_type, bytes, width, height}, rejects with an Error whose
 * message is for the user. onProgress gets 0..1.
 */
export function upload(room, file, token, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", `/api/rooms/${enc(room)}/attachments`);
    xhr.setRequestHeader("Authorization", `Bearer ${token}`);
    xhr.responseType = "json";
    xhr.upload.onprogress = (e) => {
      if (e.lengthComputable) onProgress(e.loaded / e.total);
    };
    xhr.onload = () => {
      const data = xhr.response;
      if (xhr.status === 201 && data && typeof data.id === "string") {
        rememberSize(data.id, data.width, data.height);
        resolve(data);
        return;
      }
      const err = new Error(
        xhr.status === 413
          ? t("conv.uploadTooLarge")
          : xhr.status === 400
            ? t("conv.uploadNotImage")
            : xhr.status === 429
              ? t("conv.uploadRate")
              : t("conv.uploadFailed", { error: (data && data.error) || xhr.status }),
      );
      err.status = xhr.status;
      reject(err);
    };
    xhr.onerror = () => reject(new Error(t("conv.uploadFailed", { error: t("conv.noConnection") })));
    xhr.send(file);
  });
}

/**
 * The photos waiting in the composer: each uploads as soon as it is
 * chosen; ids() are the finished ones, busy() tells whether one still
 * uploads.
 */
export class PendingPhotos {
  constructor(ul, { room, token, onChange }) {
    this.ul = ul;
    this.room = room;
    this.token = token;
    this.onChange = onChange;
    this.items = [];
    ul.addEventListener("click", (e) => {
      const b = e.target.closest("button.remove-photo");
      if (!b) return;
      const li = b.closest("li");
      this.items = this.items.filter((it) => it.li !== li);
      li.remove();
      this.render();
    });
  }

  add(files) {
    for (const file of files) {
      if (this.items.length >= 10) break;
      const li = document.createElement("li");
      li.className = "pending-photo";
      const it = { file, li, state: "uploading", progress: 0, id: null, size: null, error: "" };
      this.items.push(it);
      this.ul.append(li);
      this.draw(it);
      upload(this.room(), file, this.token(), (p) => {
        it.progress = p;
        this.draw(it);
      })
        .then((data) => {
          it.state = "done";
          it.id = data.id;
          it.size = { width: data.width, height: data.height };
          this.draw(it);
        })
        .catch((err) => {
          it.state = "failed";
          it.error = err.message;
          this.draw(it);
        })
        .finally(() => this.render());
    }
    this.render();
  }

  draw(it) {
    const li = it.li;
    li.textContent = "";
    li.dataset.state = it.state;
    if (it.state === "done") {
      const img = document.createElement("img");
      img.src = thumbURL(it.id);
      img.alt = it.file.name || t("conv.photoAlt");
      img.width = 64;
      img.height = 64;
      li.append(img);
    } else {
      const p = document.createElement("span");
      p.className = "pending-state";
      p.textContent =
        it.state === "failed" ? it.error : t("conv.uploading", { percent: Math.round(it.progress * 100) });
      if (it.state === "failed") p.setAttribute("role", "alert");
      li.append(p);
    }
    const rm = document.createElement("button");
    rm.type = "button";
    rm.className = "remove-photo";
    rm.textContent = "×";
    rm.setAttribute("aria-label", t("conv.removePhoto"));
    li.append(rm);
  }

  render() {
    this.ul.hidden = this.items.length === 0;
    this.onChange();
  }

  busy() {
    return this.items.some((it) => it.state === "uploading");
  }

  ids() {
    return this.items.filter((it) => it.state === "done").map((it) => it.id);
  }

  sizes() {
    const out = {};
    for (const it of this.items) if (it.state === "done") out[it.id] = it.size;
    return out;
  }

  clear() {
    this.items = [];
    this.ul.textContent = "";
    this.render();
  }
}

/** Opens the full view of attachment id in dialog. */
export function openPhoto(dialog, id) {
  const img = dialog.querySelector("img");
  img.src = fileURL(id);
  img.alt = t("conv.photoAlt");
  if (!dialog.open) dialog.showModal();
}
