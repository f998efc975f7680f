// hearth's web chat: the login form, and the switch between it and the chat.
//
// Page flow: a stored, unexpired token goes straight to the chat; otherwise
// the login form. Logging out, or the server refusing the token (API 401,
// MQTT CONNACK 0x86/0x87), brings the form back.

import { Chat } from "./chat.js";
import { Settings } from "./settings.js";
import * as session from "./session.js";
import { ApiError } from "./session.js";
import { t, translatePage } from "./i18n.js";

translatePage();

const EXPIRED = t("login.expired");

const $ = (id) => document.getElementById(id);
const loginView = $("login-view");
const chatView = $("chat-view");
const form = $("login-form");
const username = $("username");
const password = $("password");
const loginError = $("login-error");
const loginButton = form.querySelector("button[type=submit]");
const remember = $("remember");

let chat = null;
let settings = null;

// The service worker: the page offline, installing it as an app, and
// notifications. Registered once the page has loaded (it precaches the
// files the page just got).
if ("serviceWorker" in navigator) {
  window.addEventListener("load", () => {
    navigator.serviceWorker.register("/sw.js", { scope: "/" }).catch((err) => {
      console.warn("hearth: service worker:", err.message);
    });
  });
  // A click on a notification while this page is open: open its room.
  navigator.serviceWorker.addEventListener("message", (e) => {
    const d = e.data;
    if (chat && d && d.type === "open-room" && typeof d.room === "string") {
      location.hash = `room=${encodeURIComponent(d.room)}`;
    }
  });
}

function endChat(opts) {
  if (settings) settings.destroy();
  settings = null;
  if (chat) chat.destroy(opts);
  chat = null;
}

function showLogin(message = "", name = "") {
  chatView.hidden = true;
  loginView.hidden = false;
  loginError.textContent = message;
  password.value = "";
  if (name) username.value = name;
  (username.value ? password : username).focus();
}

function showChat(sess) {
  loginView.hidden = true;
  chatView.hidden = false;
  loginError.textContent = "";
  const current = new Chat(sess, {
    onExpired: () => {
      endChat();
      session.clear();
      showLogin(EXPIRED, sess.user.name);
    },
  });
  chat = current;
  settings = new Settings({
    api: (path, opts) => current.api(path, opts),
    onSelfRevoked: () => {
      endChat({ logout: true });
      session.clear();
      showLogin(t("login.revoked"), sess.user.name);
    },
  });
  current.start();
}

form.addEventListener("submit", async (e) => {
  e.preventDefault();
  const name = username.value.trim();
  if (!name || !password.value) {
    loginError.textContent = t("login.missing");
    return;
  }
  loginButton.disabled = true;
  loginError.textContent = "";
  try {
    const sess = await session.login(name, password.value, remember.checked);
    password.value = "";
    showChat(sess);
  } catch (err) {
    password.value = "";
    password.focus();
    loginError.textContent = loginErrorText(err);
  } finally {
    loginButton.disabled = false;
  }
});

function loginErrorText(err) {
  if (err instanceof ApiError) {
    if (err.status === 401) return t("login.wrong");
    if (err.status === 400) return t("login.bad");
    if (err.status === 429) return t("login.tooMany");
    return t("login.serverError", { error: err.message });
  }
  return t("login.unreachable");
}

$("logout").addEventListener("click", () => {
  endChat({ logout: true });
  session.clear();
  showLogin();
});

const stored = session.load();
if (stored) {
  showChat(stored);
} else {
  // A token that ran out while the tab was closed or asleep.
  const name = session.storedUser();
  session.clear();
  showLogin(name ? EXPIRED : "", name);
}
