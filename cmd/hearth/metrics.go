package main

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/hearth-home/hearth"
	"github.com/hearth-home/hearth/broker"
	"github.com/hearth-home/hearth/push"
)

// metrics is hearth's own Prometheus registry (not the library's global
// one): the Go runtime and the process, hearth_build_info, what the broker
// and the bridge count, and three histograms observed as things happen.
// No metric has a room, a user or a raw path as a label: GET /metrics
// tells an admin how busy hearth is, not who talks where.
type metrics struct {
	reg      *prometheus.Registry
	delivery prometheus.Histogram     // accepted PUBLISH to written to a subscriber
	commit   prometheus.Histogram     // one archive transaction
	http     *prometheus.HistogramVec // by route pattern and status class
	handler  http.Handler             // the text format of reg
}

func newMetrics() *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	m.delivery = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "hearth_mqtt_delivery_seconds",
		Help:    "Time from the broker accepting a PUBLISH to writing it to a subscriber's connection, per delivery (sessions offline at the publish are left out).",
		Buckets: prometheus.ExponentialBuckets(0.0001, 4, 9), // 100 µs to 6.5 s
	})
	m.commit = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "hearth_archive_commit_seconds",
		Help:    "Time one archive transaction (a batch of messages) took to commit to history.db.",
		Buckets: prometheus.ExponentialBuckets(0.0005, 3, 9), // 500 µs to 3.3 s
	})
	m.http = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "hearth_http_request_duration_seconds",
		Help:    "Time to answer an HTTP request, by route pattern and status class (2xx, 4xx, ...). /mqtt (WebSocket connections) is not measured.",
		Buckets: prometheus.ExponentialBuckets(0.0005, 4, 8), // 500 µs to 8 s
	}, []string{"route", "status"})
	b := hearth.Build()
	build := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "hearth_build_info",
		Help:        "Always 1; the labels say which hearth this is.",
		ConstLabels: prometheus.Labels{"version": b.Version, "commit": b.Commit, "goversion": b.GoVersion},
	})
	build.Set(1)
	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		build, m.delivery, m.commit, m.http,
	)
	m.handler = promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
	return m
}

// register adds what a's broker and bridge count; they must exist.
func (m *metrics) register(a *App) {
	counter := func(name, help string, f func() int64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, func() float64 { return float64(f()) })
	}
	gauge := func(name, help string, f func() int64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, func() float64 { return float64(f()) })
	}
	bs, st := &a.broker.Stats, &a.bridge.Stats
	m.reg.MustRegister(
		gauge("hearth_mqtt_clients_connected", "MQTT connections now open.", func() int64 { return a.broker.Info().ClientsConnected }),
		counter("hearth_mqtt_messages_received_total", "PUBLISH packets received.", func() int64 { return a.broker.Info().MessagesReceived }),
		counter("hearth_mqtt_messages_sent_total", "PUBLISH packets sent.", func() int64 { return a.broker.Info().MessagesSent }),
		counter("hearth_mqtt_messages_dropped_total", "QoS 1 and 2 messages dropped because a session's queue bound (mqtt.max_queued_bytes, mqtt.max_offline_bytes) was reached.", bs.QueueDropped.Load),
		counter("hearth_mqtt_messages_expired_total", "Queued messages dropped when their Message Expiry Interval passed.", bs.Expired.Load),
		counter("hearth_mqtt_messages_too_large_total", "Messages not sent because they exceed the client's Maximum Packet Size.", bs.TooLargeForClient.Load),
		gauge("hearth_mqtt_inflight", "QoS 1 and 2 messages sent and awaiting acknowledgement.", func() int64 { n, _ := a.broker.Inflight(); return n }),
		gauge("hearth_mqtt_queued", "QoS 1 and 2 messages waiting in sessions' queues.", func() int64 { _, n := a.broker.Inflight(); return n }),
		refusedCollector{a.broker},
		pushCollector{a.notifier},
		counter("hearth_mqtt_flood_disconnects_total", "Connections closed for publishing over the rate limit.", bs.FloodDisconnects.Load),
		counter("hearth_mqtt_users_held_off_total", "Times a user was held off because their connections kept flooding.", bs.UsersHeldOff.Load),
		counter("hearth_mqtt_stuck_closed_total", "Connections closed because the client stopped reading.", bs.StuckClosed.Load),
		counter("hearth_mqtt_sessions_capped_total", "Offline sessions ended because their user had too many.", bs.SessionsCapped.Load),
		gauge("hearth_session_writes_pending", "Changes to persistent sessions not yet committed to sessions.db.", func() int64 { return int64(a.broker.SessionWritesPending()) }),
		counter("hearth_archive_messages_total", "Messages archived.", st.Archived.Load),
		counter("hearth_archive_duplicates_total", "Deliveries already archived (receipt sent again).", st.Duplicates.Load),
		counter("hearth_archive_rejected_total", "Deliveries that were not valid messages.", st.Rejected.Load),
		counter("hearth_archive_commits_total", "Archive transactions.", st.Commits.Load),
		counter("hearth_receipts_total", "Receipts published.", st.Receipts.Load),
		counter("hearth_receipt_errors_total", "Receipts that could not be published.", st.ReceiptErr.Load),
		gauge("hearth_ready", "1 when the broker serves, the bridge is subscribed and the store is open.", func() int64 {
			if a.Ready() {
				return 1
			}
			return 0
		}),
	)
}

// refusedDesc is hearth_mqtt_refused_total.
var refusedDesc = prometheus.NewDesc("hearth_mqtt_refused_total",
	"Connections, publishes (and wills) and subscriptions the broker refused, by reason.", []string{"reason"}, nil)

// refusedCollector reports every reason, refused or not yet, so that a
// dashboard sees each one from the start.
type refusedCollector struct{ b *broker.Broker }

func (c refusedCollector) Describe(ch chan<- *prometheus.Desc) { ch <- refusedDesc }

func (c refusedCollector) Collect(ch chan<- prometheus.Metric) {
	for _, r := range broker.Reasons() {
		ch <- prometheus.MustNewConstMetric(refusedDesc, prometheus.CounterValue, float64(c.b.Refused(r)), r.String())
	}
}

// pushDesc is hearth_push_sent_total.
var pushDesc = prometheus.NewDesc("hearth_push_sent_total",
	"Web Push notifications by result: ok (accepted by the push service), gone (404 or 410: the subscription was deleted), error (any other answer, or none), dropped (a message not notified because the push queue was full; counted once per message).",
	[]string{"result"}, nil)

// pushCollector reports every result from the start.
type pushCollector struct{ n *push.Notifier }

func (c pushCollector) Describe(ch chan<- *prometheus.Desc) { ch <- pushDesc }

func (c pushCollector) Collect(ch chan<- prometheus.Metric) {
	st := &c.n.Stats
	for _, r := range []struct {
		name string
		v    int64
	}{{"ok", st.OK.Load()}, {"gone", st.Gone.Load()}, {"error", st.Error.Load()}, {"dropped", st.Dropped.Load()}} {
		ch <- prometheus.MustNewConstMetric(pushDesc, prometheus.CounterValue, float64(r.v), r.name)
	}
}

// adminMetrics serves the metrics on the HTTP port: only to a bearer
// token of an admin (hearth token -user NAME for a scraper). 401 without
// a valid token, 403 for anyone else's.
func (a *App) adminMetrics(w http.ResponseWriter, r *http.Request) {
	tok, ok := hearth.BearerToken(r.Header.Get("Authorization"))
	if !ok {
		hearth.WriteError(w, http.StatusUnauthorized, "missing bearer token: /metrics needs an admin's token (hearth token -user NAME)")
		return
	}
	u, err := a.auth.Verify(tok)
	if err != nil {
		hearth.WriteError(w, http.StatusUnauthorized, "invalid or expired token")
		return
	}
	if u.Role != hearth.RoleAdmin {
		hearth.WriteError(w, http.StatusForbidden, "/metrics is for admins")
		return
	}
	a.metrics.handler.ServeHTTP(w, r)
}

// metricsOnly is the handler of metrics.addr: GET /metrics without a
// token, and nothing else.
func (m *metrics) metricsOnly() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", m.handler)
	return mux
}

// instrument times every request but those to /mqtt, whose WebSocket
// lives as long as the connection. The route is the pattern that
// matched ("GET /api/rooms/{room}/messages"), never the raw path, so the
// labels are bounded; "unmatched" for a request no pattern took.
func (m *metrics) instrument(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/mqtt" {
			h.ServeHTTP(w, r)
			return
		}
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		h.ServeHTTP(sw, r)
		route := r.Pattern
		if route == "" {
			route = "unmatched"
		}
		m.http.WithLabelValues(route, statusClass(sw.status)).Observe(time.Since(start).Seconds())
	})
}

// statusClass is "2xx" for 200 to 299, and so on.
func statusClass(code int) string {
	if code == 0 {
		code = http.StatusOK
	}
	return strconv.Itoa(code/100) + "xx"
}

// statusWriter remembers the status written.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(p)
}

// Unwrap lets http.ResponseController reach the connection.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
