// Every user-facing string of the page, in English and German, and t() to
// look one up.
//
// The language: an override saved in localStorage ("hearth.lang", set in
// the settings), else the first of navigator.languages we have, else
// English. It is chosen once, when the page (or the service worker)
// starts; changing it in the settings reloads the page.
//
// Static HTML is translated by translatePage(): an element with
// data-i18n="key" gets t(key) as its text; data-i18n-attr="attr:key;..."
// sets attributes (aria-label, placeholder, title, or the data-* that CSS
// shows with attr()).
//
// Accessible names that tests and other programs rely on (the DOM
// contract in webclient/README.md) are the English strings here; keep
// them exactly.

export const LANGUAGES = { en: "English", de: "Deutsch" };

const LANG_KEY = "hearth.lang";

const en = {
  // ---- brand and login (index.html, main.js) ----
  "app.name": "hearth",
  "app.title.unread": "({n}) hearth",
  "login.tagline": "The family chat",
  "login.name": "Name",
  "login.password": "Password",
  "login.remember": "Stay logged in",
  "login.submit": "Log in",
  "login.missing": "Please enter your name and password.",
  "login.wrong": "Wrong name or password.",
  "login.bad": "Please check your name and password.",
  "login.tooMany": "Too many attempts. Please wait a moment and try again.",
  "login.serverError": "The server could not log you in ({error}). Please try again.",
  "login.unreachable": "Cannot reach hearth. Check your connection and try again.",
  "login.expired": "Your session has expired. Please log in again.",
  "login.revoked": "This device was logged out. Please log in again.",

  // ---- top bar and sidebar ----
  "menu.rooms": "Rooms",
  "top.logout": "Log out",
  "top.settings": "Settings",
  "side.label": "Rooms and people",
  "side.rooms": "Rooms",
  "side.people": "People",
  "side.loggedInAs": "Logged in as",
  "conn.connecting": "Connecting…",
  "conn.online": "Online",
  "conn.offline": "Offline — reconnecting…",
  "conn.offlineCached": "Offline — showing saved messages",

  // ---- rooms ----
  "room.readonly": "read-only",
  "room.labelReadonly": "{title}, read-only",
  "room.labelUnread": "{label}, {n} unread",
  "room.none": "No rooms",
  "room.noneNotice": "You cannot read any room yet. Ask the family's admin to add you to one.",
  "room.loadFailed": "Could not load the rooms. Trying again when the connection is back.",
  "room.mute": "Mute room",
  "room.muted": "Muted",
  "room.muteFailed": "Could not change the mute setting. Please try again.",

  // ---- people ----
  "people.you": " (you)",
  "people.online": "online",
  "people.onlineNow": "online now",
  "people.onlineNowSeen": "online now; {seen}",
  "people.lastSeen": "last seen {time}",
  "people.neverSeen": "never seen",
  "typing.one": "{name} is typing…",
  "typing.many": "{names} and {last} are typing…",

  // ---- messages and the composer ----
  "messages.label": "Messages",
  "messages.start": "This is the start of the room.",
  "messages.empty": "No messages yet. Say hello!",
  "messages.loadFailed": "Could not load the messages. They will load when the connection is back.",
  "readonly.note": "Read-only: you can read this room but not write in it",
  "composer.label": "Message",
  "composer.placeholder": "Message {room}",
  "composer.send": "Send",
  "composer.hint": "Enter sends, Shift+Enter adds a line",
  "composer.count": "{n} / {max}",
  "composer.tooLong": "A message can have at most {max} characters.",
  "status.sending": "sending",
  "status.sent": "sent",
  "status.saved": "saved",
  "status.failed": "failed",
  "status.title.sending": "Sending…",
  "status.title.sent": "Sent: the server has it",
  "status.title.saved": "Saved: stored in the family archive",
  "status.title.failed": "Not sent",
  "status.title.failedWhy": "Not sent: {reason}",
  "msg.retry": "Retry",
  "msg.discard": "Delete",
  "refused.0x87": "you may not write in this room",
  "refused.0x95": "the message is too large",
  "refused.0x99": "the server refused the message as invalid",
  "refused.0x9a": "the server refused the message",
  "refused.other": "refused by the server (0x{code})",

  // ---- conversation: photos, replies, reactions, edits, search ----
  "conv.attach": "Attach photo",
  "conv.reply": "Reply",
  "conv.react": "React",
  "conv.edit": "Edit",
  "conv.delete": "Delete",
  "conv.search": "Search",
  "conv.photo": "📷 Photo",
  "conv.edited": "edited",
  "conv.deleted": "Message deleted",
  "conv.originalNotLoaded": "original not loaded",
  "conv.quoteLabel": "Reply to {from}: {text}",
  "conv.replyingTo": "Reply to {from}:",
  "conv.editing": "Edit message:",
  "conv.cancelReply": "Cancel reply",
  "conv.cancelEdit": "Cancel edit",
  "conv.confirmDelete": "Delete this message for everyone?",
  "conv.openPhoto": "Open photo",
  "conv.photoAlt": "Photo",
  "conv.pending": "Photos to send",
  "conv.removePhoto": "Remove photo",
  "conv.uploading": "Uploading… {percent}%",
  "conv.uploadTooLarge": "This photo is too large.",
  "conv.uploadNotImage": "This is not a photo hearth takes (JPEG, PNG, WebP or GIF).",
  "conv.uploadRate": "Too many photos at once. Please wait a moment.",
  "conv.uploadFailed": "The photo could not be uploaded ({error}).",
  "conv.noConnection": "no connection",
  "conv.waitUpload": "Please wait until the photos are uploaded.",
  "conv.offline": "Offline: please try again when the connection is back.",
  "conv.eventFailed": "The server did not take that change.",
  "conv.seenBy": "Seen by {names}",
  "conv.close": "Close",
  "search.title": "Search in {room}",
  "search.label": "Search messages",
  "search.none": "Nothing found.",
  "search.count": "{n} found",
  "search.failed": "The search failed. Please try again.",

  // ---- settings ----
  "settings.title": "Settings",
  "settings.close": "Close",
  "settings.language": "Language",
  "settings.languageAuto": "Same as the browser",
  "settings.theme": "Appearance",
  "settings.themeSystem": "Same as the system",
  "settings.themeLight": "Light",
  "settings.themeDark": "Dark",
  "settings.devices": "Logged-in devices",
  "settings.devicesNone": "No devices stay logged in. Tick “Stay logged in” when you log in to keep a device logged in.",
  "settings.devicesFailed": "Could not load the devices.",
  "settings.thisDevice": "this device",
  "settings.deviceCreated": "logged in {time}",
  "settings.deviceUsed": "last used {time}",
  "settings.deviceUnnamed": "Browser",
  "settings.revoke": "Log out",
  "settings.revokeLabel": "Log out {name}",
  "settings.revokeFailed": "Could not log out that device. Please try again.",
  "settings.notifications": "Notifications",

  // ---- notifications ----
  "notify.on": "Turn on notifications",
  "notify.off": "Turn off notifications",
  "notify.enabled": "Notifications are on for this device.",
  "notify.disabled": "Notifications are off for this device.",
  "notify.denied": "Notifications are blocked for this site. Allow them in the browser's site settings.",
  "notify.unsupported": "This browser cannot show notifications from hearth here. On a phone, add hearth to the home screen; it needs HTTPS.",
  "notify.failed": "Could not turn on notifications ({error}).",
  "notify.title": "{from} in {title}",
};

const de = {
  // ---- brand and login (index.html, main.js) ----
  "app.name": "hearth",
  "app.title.unread": "({n}) hearth",
  "login.tagline": "Der Familienchat",
  "login.name": "Name",
  "login.password": "Passwort",
  "login.remember": "Angemeldet bleiben",
  "login.submit": "Anmelden",
  "login.missing": "Bitte gib deinen Namen und dein Passwort ein.",
  "login.wrong": "Name oder Passwort falsch.",
  "login.bad": "Bitte prüfe deinen Namen und dein Passwort.",
  "login.tooMany": "Zu viele Versuche. Bitte warte kurz und versuche es noch einmal.",
  "login.serverError": "Der Server konnte dich nicht anmelden ({error}). Bitte versuche es noch einmal.",
  "login.unreachable": "hearth ist nicht erreichbar. Prüfe deine Verbindung und versuche es noch einmal.",
  "login.expired": "Deine Sitzung ist abgelaufen. Bitte melde dich wieder an.",
  "login.revoked": "Dieses Gerät wurde abgemeldet. Bitte melde dich wieder an.",

  // ---- top bar and sidebar ----
  "menu.rooms": "Räume",
  "top.logout": "Abmelden",
  "top.settings": "Einstellungen",
  "side.label": "Räume und Personen",
  "side.rooms": "Räume",
  "side.people": "Personen",
  "side.loggedInAs": "Angemeldet als",
  "conn.connecting": "Verbinde…",
  "conn.online": "Online",
  "conn.offline": "Offline — verbinde neu…",
  "conn.offlineCached": "Offline — gespeicherte Nachrichten",

  // ---- rooms ----
  "room.readonly": "nur lesen",
  "room.labelReadonly": "{title}, nur lesen",
  "room.labelUnread": "{label}, {n} ungelesen",
  "room.none": "Keine Räume",
  "room.noneNotice": "Du kannst noch keinen Raum lesen. Bitte die Admin-Person der Familie, dich hinzuzufügen.",
  "room.loadFailed": "Die Räume konnten nicht geladen werden. Neuer Versuch, sobald die Verbindung wieder da ist.",
  "room.mute": "Raum stummschalten",
  "room.muted": "Stumm",
  "room.muteFailed": "Die Stummschaltung konnte nicht geändert werden. Bitte versuche es noch einmal.",

  // ---- people ----
  "people.you": " (du)",
  "people.online": "online",
  "people.onlineNow": "gerade online",
  "people.onlineNowSeen": "gerade online; {seen}",
  "people.lastSeen": "zuletzt gesehen {time}",
  "people.neverSeen": "noch nie gesehen",
  "typing.one": "{name} schreibt…",
  "typing.many": "{names} und {last} schreiben…",

  // ---- messages and the composer ----
  "messages.label": "Nachrichten",
  "messages.start": "Hier beginnt der Raum.",
  "messages.empty": "Noch keine Nachrichten. Sag hallo!",
  "messages.loadFailed": "Die Nachrichten konnten nicht geladen werden. Sie kommen, sobald die Verbindung wieder da ist.",
  "readonly.note": "Nur lesen: Du kannst diesen Raum lesen, aber nicht darin schreiben",
  "composer.label": "Nachricht",
  "composer.placeholder": "Nachricht an {room}",
  "composer.send": "Senden",
  "composer.hint": "Enter sendet, Umschalt+Enter macht eine neue Zeile",
  "composer.count": "{n} / {max}",
  "composer.tooLong": "Eine Nachricht darf höchstens {max} Zeichen haben.",
  "status.sending": "wird gesendet",
  "status.sent": "gesendet",
  "status.saved": "gespeichert",
  "status.failed": "fehlgeschlagen",
  "status.title.sending": "Wird gesendet…",
  "status.title.sent": "Gesendet: der Server hat sie",
  "status.title.saved": "Gespeichert: im Familienarchiv abgelegt",
  "status.title.failed": "Nicht gesendet",
  "status.title.failedWhy": "Nicht gesendet: {reason}",
  "msg.retry": "Nochmal",
  "msg.discard": "Löschen",
  "refused.0x87": "du darfst in diesem Raum nicht schreiben",
  "refused.0x95": "die Nachricht ist zu groß",
  "refused.0x99": "der Server hat die Nachricht als ungültig abgelehnt",
  "refused.0x9a": "der Server hat die Nachricht abgelehnt",
  "refused.other": "vom Server abgelehnt (0x{code})",

  // ---- conversation: photos, replies, reactions, edits, search ----
  "conv.attach": "Foto anhängen",
  "conv.reply": "Antworten",
  "conv.react": "Reagieren",
  "conv.edit": "Bearbeiten",
  "conv.delete": "Löschen",
  "conv.search": "Suchen",
  "conv.photo": "📷 Foto",
  "conv.edited": "bearbeitet",
  "conv.deleted": "Nachricht gelöscht",
  "conv.originalNotLoaded": "Original nicht geladen",
  "conv.quoteLabel": "Antwort an {from}: {text}",
  "conv.replyingTo": "Antwort an {from}:",
  "conv.editing": "Nachricht bearbeiten:",
  "conv.cancelReply": "Antwort abbrechen",
  "conv.cancelEdit": "Bearbeiten abbrechen",
  "conv.confirmDelete": "Diese Nachricht für alle löschen?",
  "conv.openPhoto": "Foto öffnen",
  "conv.photoAlt": "Foto",
  "conv.pending": "Fotos zum Senden",
  "conv.removePhoto": "Foto entfernen",
  "conv.uploading": "Lädt hoch… {percent} %",
  "conv.uploadTooLarge": "Dieses Foto ist zu groß.",
  "conv.uploadNotImage": "Das ist kein Foto, das hearth annimmt (JPEG, PNG, WebP oder GIF).",
  "conv.uploadRate": "Zu viele Fotos auf einmal. Bitte einen Moment warten.",
  "conv.uploadFailed": "Das Foto konnte nicht hochgeladen werden ({error}).",
  "conv.noConnection": "keine Verbindung",
  "conv.waitUpload": "Bitte warten, bis die Fotos hochgeladen sind.",
  "conv.offline": "Offline: bitte noch einmal versuchen, wenn die Verbindung wieder da ist.",
  "conv.eventFailed": "Der Server hat diese Änderung nicht angenommen.",
  "conv.seenBy": "Gesehen von {names}",
  "conv.close": "Schließen",
  "search.title": "Suchen in {room}",
  "search.label": "Nachrichten suchen",
  "search.none": "Nichts gefunden.",
  "search.count": "{n} gefunden",
  "search.failed": "Die Suche ist fehlgeschlagen. Bitte noch einmal versuchen.",

  // ---- settings ----
  "settings.title": "Einstellungen",
  "settings.close": "Schließen",
  "settings.language": "Sprache",
  "settings.languageAuto": "Wie der Browser",
  "settings.theme": "Darstellung",
  "settings.themeSystem": "Wie das System",
  "settings.themeLight": "Hell",
  "settings.themeDark": "Dunkel",
  "settings.devices": "Angemeldete Geräte",
  "settings.devicesNone": "Kein Gerät bleibt angemeldet. Setze beim Anmelden den Haken bei „Angemeldet bleiben“, damit ein Gerät angemeldet bleibt.",
  "settings.devicesFailed": "Die Geräte konnten nicht geladen werden.",
  "settings.thisDevice": "dieses Gerät",
  "settings.deviceCreated": "angemeldet {time}",
  "settings.deviceUsed": "zuletzt benutzt {time}",
  "settings.deviceUnnamed": "Browser",
  "settings.revoke": "Abmelden",
  "settings.revokeLabel": "{name} abmelden",
  "settings.revokeFailed": "Das Gerät konnte nicht abgemeldet werden. Bitte versuche es noch einmal.",
  "settings.notifications": "Benachrichtigungen",

  // ---- notifications ----
  "notify.on": "Benachrichtigungen einschalten",
  "notify.off": "Benachrichtigungen ausschalten",
  "notify.enabled": "Benachrichtigungen sind für dieses Gerät an.",
  "notify.disabled": "Benachrichtigungen sind für dieses Gerät aus.",
  "notify.denied": "Benachrichtigungen sind für diese Seite blockiert. Erlaube sie in den Website-Einstellungen des Browsers.",
  "notify.unsupported": "Dieser Browser kann hier keine Benachrichtigungen von hearth zeigen. Auf dem Handy: hearth zum Startbildschirm hinzufügen; dafür braucht es HTTPS.",
  "notify.failed": "Benachrichtigungen konnten nicht eingeschaltet werden ({error}).",
  "notify.title": "{from} in {title}",
};

export const STRINGS = { en, de };

/** The language override saved in the settings, or "" for the browser's. */
export function savedLanguage() {
  try {
    const v = globalThis.localStorage && localStorage.getItem(LANG_KEY);
    return v && STRINGS[v] ? v : "";
  } catch {
    return "";
  }
}

/** Saves the override ("" = follow the browser). The page reloads to apply it. */
export function saveLanguage(code) {
  try {
    if (code && STRINGS[code]) localStorage.setItem(LANG_KEY, code);
    else localStorage.removeItem(LANG_KEY);
  } catch {
    // Without storage the browser's language stays.
  }
}

/** The language to use: the override, else the first of the browser's we have. */
export function chooseLanguage(override = savedLanguage(), preferred = browserLanguages()) {
  if (override && STRINGS[override]) return override;
  for (const tag of preferred) {
    const base = String(tag).toLowerCase().split("-")[0];
    if (STRINGS[base]) return base;
  }
  return "en";
}

function browserLanguages() {
  const nav = globalThis.navigator;
  if (!nav) return [];
  if (Array.isArray(nav.languages) && nav.languages.length > 0) return nav.languages;
  return nav.language ? [nav.language] : [];
}

/** The language of this page: "en" or "de". */
export const lang = chooseLanguage();

/**
 * The string for key in the page's language (English when it has none),
 * with {name} placeholders filled from params. An unknown key is returned
 * as it is, so a missing string shows rather than breaks.
 */
export function t(key, params) {
  return tIn(lang, key, params);
}

/** t in a given language. */
export function tIn(code, key, params) {
  const table = STRINGS[code] || en;
  let s = table[key] ?? en[key];
  if (s === undefined) return key;
  if (params) {
    s = s.replace(/\{(\w+)\}/g, (m, name) => (params[name] === undefined ? m : String(params[name])));
  }
  return s;
}

/**
 * Translates the static HTML under root: data-i18n="key" sets the text,
 * data-i18n-attr="attr:key;attr2:key2" sets attributes. It also sets the
 * document's lang.
 */
export function translatePage(root = document) {
  if (root === document) document.documentElement.lang = lang;
  for (const el of root.querySelectorAll("[data-i18n]")) {
    el.textContent = t(el.dataset.i18n);
  }
  for (const el of root.querySelectorAll("[data-i18n-attr]")) {
    for (const pair of el.dataset.i18nAttr.split(";")) {
      const [attr, key] = pair.split(":").map((s) => s.trim());
      if (attr && key) el.setAttribute(attr, t(key));
    }
  }
}
