package main

import (
	"fmt"
	"net/http"
	"strings"
)

// metrics writes the Prometheus text format by hand: a few counters and
// gauges do not need a client library.
func (a *App) metrics(w http.ResponseWriter, r *http.Request) {
	var b strings.Builder
	put := func(name, kind, help string, v int64) {
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s %s\n%s %d\n", name, help, name, kind, name, v)
	}
	bs, info := &a.broker.Stats, a.broker.Info()
	put("hearth_mqtt_clients_connected", "gauge", "MQTT connections now open.", info.ClientsConnected)
	put("hearth_mqtt_messages_received_total", "counter", "PUBLISH packets received.", info.MessagesReceived)
	put("hearth_mqtt_messages_sent_total", "counter", "PUBLISH packets sent.", info.MessagesSent)
	inflight, queued := a.broker.Inflight()
	put("hearth_mqtt_messages_dropped_total", "counter", "QoS 1 and 2 messages dropped because a session's queue bound (mqtt.max_queued_bytes, mqtt.max_offline_bytes) was reached.", bs.QueueDropped.Load())
	put("hearth_mqtt_messages_expired_total", "counter", "Queued messages dropped when their Message Expiry Interval passed.", bs.Expired.Load())
	put("hearth_mqtt_messages_too_large_total", "counter", "Messages not sent because they exceed the client's Maximum Packet Size.", bs.TooLargeForClient.Load())
	put("hearth_mqtt_inflight", "gauge", "QoS 1 and 2 messages sent and awaiting acknowledgement.", inflight)
	put("hearth_mqtt_queued", "gauge", "QoS 1 and 2 messages waiting in sessions' queues.", queued)
	put("hearth_mqtt_auth_failures_total", "counter", "Connections refused for bad credentials.", bs.AuthFailures.Load())
	put("hearth_mqtt_client_id_refused_total", "counter", "Connections refused because another user holds the client id.", bs.ClientIDRefused.Load())
	put("hearth_mqtt_too_many_connections_total", "counter", "Connections refused over a user's connection limit.", bs.TooMany.Load())
	put("hearth_mqtt_acl_denied_total", "counter", "Publishes refused by the access policy.", bs.ACLDenied.Load())
	put("hearth_mqtt_invalid_publishes_total", "counter", "Publishes refused by validation.", bs.InvalidPublishes.Load())
	put("hearth_mqtt_rate_limited_total", "counter", "Publishes refused by the per-connection rate limit.", bs.RateLimited.Load())
	put("hearth_mqtt_flood_disconnects_total", "counter", "Connections closed for publishing over the rate limit.", bs.FloodDisconnects.Load())
	put("hearth_mqtt_users_held_off_total", "counter", "Times a user was held off because their connections kept flooding.", bs.UsersHeldOff.Load())
	put("hearth_mqtt_held_off_total", "counter", "Connections refused while their user was held off.", bs.HeldOff.Load())
	put("hearth_mqtt_stuck_closed_total", "counter", "Connections closed because the client stopped reading.", bs.StuckClosed.Load())
	put("hearth_mqtt_sessions_capped_total", "counter", "Offline sessions ended because their user had too many.", bs.SessionsCapped.Load())
	put("hearth_mqtt_connect_rate_refused_total", "counter", "Connections refused over the connect rate of their address or user (mqtt.connect_rate).", bs.ConnectRate.Load())
	put("hearth_mqtt_archive_busy_total", "counter", "Publishes refused because the archive stayed behind.", bs.ArchiveBusy.Load())
	put("hearth_session_writes_pending", "gauge", "Changes to persistent sessions not yet committed to sessions.db.", int64(a.broker.SessionWritesPending()))
	st := &a.bridge.Stats
	put("hearth_archive_messages_total", "counter", "Messages archived.", st.Archived.Load())
	put("hearth_archive_duplicates_total", "counter", "Deliveries already archived (receipt sent again).", st.Duplicates.Load())
	put("hearth_archive_rejected_total", "counter", "Deliveries that were not valid messages.", st.Rejected.Load())
	put("hearth_archive_commits_total", "counter", "Archive transactions.", st.Commits.Load())
	put("hearth_receipts_total", "counter", "Receipts published.", st.Receipts.Load())
	put("hearth_receipt_errors_total", "counter", "Receipts that could not be published.", st.ReceiptErr.Load())
	ready := int64(0)
	if a.Ready() {
		ready = 1
	}
	put("hearth_ready", "gauge", "1 when the broker serves, the bridge is subscribed and the store is open.", ready)
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	fmt.Fprint(w, b.String())
}
