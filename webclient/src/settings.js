// The settings panel (the "Settings" button of the top bar): the devices
// that stay logged in (GET /api/devices, each with a button to log it out:
// DELETE /api/devices/{id}), notifications on or off, light or dark, and
// the language.

import { LANGUAGES, lang, saveLanguage, savedLanguage, t } from "./i18n.js";
import * as push from "./push.js";
import { savedTheme, saveTheme } from "./theme.js";
import { shortTime } from "./text.js";

const $ = (id) => document.getElementById(id);

export class Settings {
  /**
   * @param {{api: (path: string, opts?: object) => Promise<any>, onSelfRevoked: () => void}} hooks
   *   api calls the API with the chat's token; onSelfRevoked runs when
   *   this device's own login was revoked here.
   */
  constructor({ api, onSelfRevoked }) {
    this.api = api;
    this.onSelfRevoked = onSelfRevoked;
    this.abort = new AbortController();
    this.dialog = $("settings");
    this.devices = $("devices");
    this.devicesStatus = $("devices-status");
    this.notifyBtn = $("notify-toggle");
    this.notifyStatus = $("notify-status");
    const opts = { signal: this.abort.signal };
    $("settings-open").addEventListener("click", () => this.open(), opts);
    this.notifyBtn.addEventListener("click", () => this.toggleNotifications(), opts);
    this.devices.addEventListener("click", (e) => this.onDeviceClick(e), opts);
    for (const radio of this.dialog.querySelectorAll('input[name="theme"]')) {
      radio.addEventListener("change", () => radio.checked && saveTheme(radio.value), opts);
    }
    const select = $("language");
    select.textContent = "";
    for (const [code, name] of [["", t("settings.languageAuto")], ...Object.entries(LANGUAGES)]) {
      select.append(new Option(name, code, false, code === savedLanguage()));
    }
    select.addEventListener(
      "change",
      () => {
        saveLanguage(select.value);
        location.reload();
      },
      opts,
    );
    push.shareLanguage(lang);
  }

  destroy() {
    this.abort.abort();
    if (this.dialog.open) this.dialog.close();
  }

  open() {
    for (const radio of this.dialog.querySelectorAll('input[name="theme"]')) {
      radio.checked = radio.value === savedTheme();
    }
    if (!this.dialog.open) this.dialog.showModal();
    this.loadDevices();
    this.renderNotifications();
  }

  async loadDevices() {
    this.devicesStatus.textContent = "";
    let list;
    try {
      const data = await this.api("/api/devices");
      list = data && Array.isArray(data.devices) ? data.devices : [];
    } catch {
      this.devicesStatus.textContent = t("settings.devicesFailed");
      return;
    }
    this.devices.textContent = "";
    if (list.length === 0) this.devicesStatus.textContent = t("settings.devicesNone");
    for (const d of list) {
      if (!d || typeof d.id !== "string") continue;
      const li = document.createElement("li");
      li.className = "device";
      li.dataset.id = d.id;
      if (d.current) li.dataset.current = "true";
      const name = document.createElement("span");
      name.className = "name";
      name.textContent = d.name || t("settings.deviceUnnamed");
      if (d.current) {
        const mark = document.createElement("strong");
        mark.className = "this-device";
        mark.textContent = ` (${t("settings.thisDevice")})`;
        name.append(mark);
      }
      const when = document.createElement("span");
      when.className = "when";
      const parts = [];
      const created = Date.parse(d.created_at);
      const used = Date.parse(d.last_used);
      if (Number.isFinite(created)) parts.push(t("settings.deviceCreated", { time: shortTime(created) }));
      if (Number.isFinite(used)) parts.push(t("settings.deviceUsed", { time: shortTime(used) }));
      when.textContent = parts.join(" · ");
      const btn = document.createElement("button");
      btn.type = "button";
      btn.className = "revoke";
      btn.textContent = t("settings.revoke");
      btn.setAttribute("aria-label", t("settings.revokeLabel", { name: name.textContent }));
      li.append(name, when, btn);
      this.devices.append(li);
    }
  }

  async onDeviceClick(e) {
    const btn = e.target.closest("button.revoke");
    if (!btn) return;
    const li = btn.closest("li");
    btn.disabled = true;
    try {
      await this.api(`/api/devices/${encodeURIComponent(li.dataset.id)}`, { method: "DELETE" });
    } catch (err) {
      btn.disabled = false;
      if (err && err.status === 401) return; // this token was the one: the chat ends
      this.devicesStatus.textContent = t("settings.revokeFailed");
      return;
    }
    if (li.dataset.current === "true") {
      this.onSelfRevoked();
      return;
    }
    li.remove();
  }

  async renderNotifications() {
    const btn = this.notifyBtn;
    if (!push.supported()) {
      btn.disabled = true;
      this.notifyStatus.textContent = t("notify.unsupported");
      return;
    }
    let on = false;
    try {
      on = Notification.permission === "granted" && !!(await push.current());
    } catch {
      on = false;
    }
    btn.disabled = false;
    btn.dataset.on = String(on);
    btn.textContent = on ? t("notify.off") : t("notify.on");
    this.notifyStatus.textContent = on
      ? t("notify.enabled")
      : Notification.permission === "denied"
        ? t("notify.denied")
        : t("notify.disabled");
  }

  async toggleNotifications() {
    const btn = this.notifyBtn;
    btn.disabled = true;
    try {
      if (btn.dataset.on === "true") await push.disable(this.api);
      else await push.enable(this.api);
    } catch (err) {
      this.notifyStatus.textContent = err.message;
      btn.disabled = false;
      return;
    }
    this.renderNotifications();
  }
}
