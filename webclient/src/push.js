// Notifications: the page's push subscription (Web Push through the
// service worker), and notifications the page shows itself while it is
// open but hidden.
//
// Turning on: Notification.requestPermission, then pushManager.subscribe
// with the server's VAPID key (GET /api/push/key) and POST
// /api/push/subscriptions with the subscription. Turning off:
// unsubscribe, and DELETE /api/push/subscriptions {endpoint}.
//
// A page notification uses the tag a push would ("{room}:{id}"), so a
// message that comes both ways is shown once.

import { t } from "./i18n.js";

/** Whether this browser can take push notifications here (a secure context with a service worker). */
export function supported() {
  return typeof window !== "undefined" && window.isSecureContext && "serviceWorker" in navigator && "PushManager" in window && "Notification" in window;
}

async function registration() {
  return navigator.serviceWorker.ready;
}

/** The current push subscription of this browser, or null. */
export async function current() {
  if (!supported()) return null;
  const reg = await registration();
  return reg.pushManager.getSubscription();
}

/**
 * Turns notifications on. api(path, opts) is the chat's API call (with
 * the token). Resolves with the subscription; rejects with an Error
 * whose message is for the user.
 */
export async function enable(api) {
  if (!supported()) throw new Error(t("notify.unsupported"));
  const permission = await Notification.requestPermission();
  if (permission !== "granted") throw new Error(t("notify.denied"));
  const { key } = await api("/api/push/key");
  const reg = await registration();
  let sub = await reg.pushManager.getSubscription();
  if (!sub) {
    try {
      sub = await reg.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: base64url(key) });
    } catch (err) {
      throw new Error(t("notify.failed", { error: err.message }));
    }
  }
  await api("/api/push/subscriptions", { method: "POST", body: sub.toJSON() });
  return sub;
}

/** Turns notifications off for this browser. */
export async function disable(api) {
  const sub = await current();
  if (!sub) return;
  const endpoint = sub.endpoint;
  await sub.unsubscribe();
  try {
    await api("/api/push/subscriptions", { method: "DELETE", body: { endpoint } });
  } catch (err) {
    // Unknown to the server already (404): off either way.
    if (!(err && err.status === 404)) throw err;
  }
}

/**
 * Shows a message as a notification from the page (while it is hidden),
 * if the user allowed notifications: {room, title, from, id, text}.
 */
export async function showMessage({ room, title, from, id, text }) {
  if (!supported() || Notification.permission !== "granted") return;
  const reg = await registration();
  await reg.showNotification(t("notify.title", { from, title }), {
    body: text,
    tag: `${room}:${id}`,
    data: { room },
    icon: "/icon-192.png",
    badge: "/maskable-192.png",
  });
}

/** Tells the service worker the page's language (it has no localStorage). */
export async function shareLanguage(lang) {
  try {
    const cache = await caches.open("hearth-settings");
    await cache.put("/lang", new Response(lang));
  } catch {
    // Without Cache Storage the worker follows the browser's language.
  }
}

function base64url(s) {
  const b64 = s.replace(/-/g, "+").replace(/_/g, "/");
  const bin = atob(b64 + "===".slice((b64.length + 3) % 4));
  return Uint8Array.from(bin, (c) => c.charCodeAt(0));
}
