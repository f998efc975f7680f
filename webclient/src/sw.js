// hearth's service worker, served at /sw.js (scope /).
//
// - The app shell of this build (index.html as "/", the hashed script,
//   style sheet, favicon and boot script, the manifest and the icons) is
//   precached on install into a cache named after the build; activating a
//   new build deletes the caches of older ones. build.mjs writes the list
//   and the version into this file (SHELL, VERSION), so every build makes
//   a different sw.js and browsers install it.
// - Navigations go to the network first (a new build's index.html), and
//   to the cached "/" when the network fails or is slower than 4 s.
// - Files of the shell come from the cache. /api/ and /mqtt are never
//   cached or answered here (the page keeps what it needs offline in
//   localStorage).
// - Push: shows {"room","title","from","id","seq","text"} as the
//   notification "{from} in {title}" with tag "{room}:{id}"; a click
//   focuses an open page (and opens the room there) or opens /#room=NAME.

import { STRINGS, chooseLanguage, tIn } from "./i18n.js";

/* global __SHELL__, __VERSION__ */
const SHELL = __SHELL__;
const VERSION = __VERSION__;
const CACHE = `hearth-shell-${VERSION}`;
const NAV_TIMEOUT_MS = 4000;

self.addEventListener("install", (event) => {
  event.waitUntil(
    (async () => {
      const cache = await caches.open(CACHE);
      await cache.addAll(SHELL.map((u) => new Request(u, { cache: "reload" })));
      await self.skipWaiting();
    })(),
  );
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    (async () => {
      for (const name of await caches.keys()) {
        if (name.startsWith("hearth-shell-") && name !== CACHE) await caches.delete(name);
      }
      await self.clients.claim();
    })(),
  );
});

self.addEventListener("fetch", (event) => {
  const req = event.request;
  if (req.method !== "GET") return;
  const url = new URL(req.url);
  if (url.origin !== self.location.origin) return;
  if (url.pathname.startsWith("/api/") || url.pathname === "/mqtt") return;
  if (req.mode === "navigate") {
    event.respondWith(navigation(req));
    return;
  }
  event.respondWith(
    (async () => {
      const hit = await caches.match(req, { cacheName: CACHE });
      return hit || fetch(req);
    })(),
  );
});

// navigation answers a page load: the network's answer, or the cached
// page when the server cannot be reached (or is too slow).
async function navigation(req) {
  const fromNet = fetch(req);
  const timeout = new Promise((resolve) => setTimeout(resolve, NAV_TIMEOUT_MS, null));
  try {
    const res = await Promise.race([fromNet, timeout]);
    if (res) return res;
  } catch {
    // Offline, or the server is down: the cached page below.
  }
  const cached = await caches.match("/", { cacheName: CACHE });
  return cached || fromNet;
}

// language: the page saves its choice in the cache "hearth-settings"
// (the service worker has no localStorage).
async function language() {
  try {
    const res = await caches.match("/lang", { cacheName: "hearth-settings" });
    const v = res ? await res.text() : "";
    return chooseLanguage(STRINGS[v] ? v : "");
  } catch {
    return chooseLanguage("");
  }
}

self.addEventListener("push", (event) => {
  let data = null;
  try {
    data = event.data ? event.data.json() : null;
  } catch {
    data = null;
  }
  if (!data || typeof data.room !== "string") return;
  event.waitUntil(
    (async () => {
      const lang = await language();
      const title = tIn(lang, "notify.title", { from: data.from || "", title: data.title || data.room });
      await self.registration.showNotification(title, {
        body: typeof data.text === "string" ? data.text : "",
        tag: `${data.room}:${data.id}`,
        data: { room: data.room },
        icon: "/icon-192.png",
        badge: "/maskable-192.png",
      });
    })(),
  );
});

self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  const room = event.notification.data && event.notification.data.room;
  const target = room ? `/#room=${encodeURIComponent(room)}` : "/";
  event.waitUntil(
    (async () => {
      const pages = await self.clients.matchAll({ type: "window", includeUncontrolled: true });
      for (const page of pages) {
        if (new URL(page.url).origin !== self.location.origin) continue;
        page.postMessage({ type: "open-room", room });
        return page.focus();
      }
      return self.clients.openWindow(target);
    })(),
  );
});
