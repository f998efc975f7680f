// Connects N MQTT.js clients over WebSocket, each subscribed to a topic
// filter; prints READY when all are, then for the first message with an
// id ending in "-all", ALL <missed> <unix ms of the last arrival> once
// every client has it (or after 10 s). Ends when stdin closes.
// node idle.js MQTT_JS_DIR URL USER PASSWORD FILTER N CLIENT_ID_PREFIX
const mqtt = require(process.argv[2]);
const [url, username, password, filter, nArg, prefix] = process.argv.slice(3);
const n = Number(nArg);
const clients = [];
let subscribed = 0, got = 0, last = 0, reported = false, next = 0;

function report() {
  if (reported) return;
  reported = true;
  console.log(`ALL ${n - got} ${last}`);
}

function connectOne() {
  if (next >= n) return;
  const i = next++;
  const c = mqtt.connect(url, { protocolVersion: 5, clientId: prefix + i, username, password, reconnectPeriod: 0, clean: true });
  let seen = false;
  c.on("connect", () => c.subscribe(filter, { qos: 1 }, (err, granted) => {
    if (err || !granted || granted[0].reasonCode >= 0x80) {
      console.log(`ERROR client ${i}: subscribe: ${err ? err.message : JSON.stringify(granted)}`);
      process.exit(1);
    }
    subscribed++;
    if (subscribed === n) console.log("READY");
    connectOne();
  }));
  c.on("message", (topic, payload) => {
    let m;
    try { m = JSON.parse(payload.toString()); } catch { return; }
    if (typeof m.id !== "string" || !m.id.endsWith("-all") || seen) return;
    seen = true;
    got++;
    last = Date.now();
    if (got === 1) setTimeout(report, 10000);
    if (got === n) report();
  });
  c.on("error", (e) => { console.log(`ERROR client ${i}: ${e.message}`); process.exit(1); });
  c.on("close", () => { if (!c.ending && subscribed < n) { console.log(`ERROR client ${i}: closed`); process.exit(1); } });
  clients.push(c);
}

for (let k = 0; k < Math.min(50, n); k++) connectOne();
process.stdin.on("end", () => { for (const c of clients) { c.ending = true; c.end(true); } setTimeout(() => process.exit(0), 200); });
process.stdin.resume();
