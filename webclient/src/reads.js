// Read marks from the server: this page publishes rooms/{room}/reads/{me}
// {"seq":N} (retained, QoS 1) once it has shown a room up to N in a
// visible tab, and hears everyone's marks on rooms/+/reads/+: its own
// from other devices clear unread badges here; others' say who has seen
// the newest own message ("Seen by mum, dad").

import { renderSeen } from "./parts.js";

export class Reads {
  constructor(chat) {
    this.chat = chat;
    this.marks = new Map(); // room -> Map(user -> seq)
    this.refreshTimer = 0;
  }

  /** Publishes the own mark of room when seq is higher than the last one. */
  publish(room, seq) {
    const client = this.chat.client;
    if (!Number.isInteger(seq) || seq <= (room.read_seq || 0) || !client || !client.connected) return;
    room.read_seq = seq;
    client.publish(`rooms/${room.name}/reads/${this.chat.me}`, JSON.stringify({ seq }), { qos: 1, retain: true });
  }

  onMark(roomName, user, data) {
    const seq = data && Number.isInteger(data.seq) ? data.seq : 0;
    let users = this.marks.get(roomName);
    if (!users) {
      users = new Map();
      this.marks.set(roomName, users);
    }
    if (seq <= (users.get(user) || 0)) return;
    users.set(user, seq);
    const chat = this.chat;
    if (user === chat.me) {
      const room = chat.rooms.get(roomName);
      if (!room) return;
      room.read_seq = Math.max(room.read_seq || 0, seq);
      if (room.unread > 0) {
        if (seq >= (room.last_seq || 0)) {
          room.unread = 0;
          room.seen.clear();
          chat.renderUnread(room);
        } else {
          // Read up to somewhere: the server counts what is left.
          clearTimeout(this.refreshTimer);
          this.refreshTimer = setTimeout(() => chat.refreshRooms(), 300);
        }
      }
      return;
    }
    if (roomName === chat.current) this.renderSeen();
  }

  /** Shows "Seen by" under the newest own archived message of the open room. */
  renderSeen() {
    const chat = this.chat;
    const view = chat.view;
    if (!view) return;
    const el = chat.dom.messages;
    let latest = null;
    const own = el.querySelectorAll(".msg.own[data-seq]");
    for (let i = own.length - 1; i >= 0; i--) {
      if (!own[i].classList.contains("deleted")) {
        latest = own[i];
        break;
      }
    }
    for (const s of el.querySelectorAll(".msg .seen")) {
      if (s.parentElement !== latest) s.remove();
    }
    if (!latest) return;
    const seq = Number(latest.dataset.seq);
    const names = [];
    for (const [user, mark] of this.marks.get(view.room) || []) {
      if (user !== chat.me && mark >= seq) names.push(user);
    }
    names.sort();
    renderSeen(latest, names);
  }
}
