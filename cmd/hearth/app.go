package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/hearth-home/hearth"
	httpapi "github.com/hearth-home/hearth/api"
	"github.com/hearth-home/hearth/attachments"
	"github.com/hearth-home/hearth/bridge"
	"github.com/hearth-home/hearth/broker"
	"github.com/hearth-home/hearth/history"
	"github.com/hearth-home/hearth/push"
	"github.com/hearth-home/hearth/webclient"
)

// App is hearth running: the store, the broker, the bridge and the HTTP
// server, wired together. Start it with Start and stop it with Close.
type App struct {
	cfg    hearth.Config
	log    *slog.Logger
	store  *history.Store
	broker *broker.Broker
	bridge *bridge.Bridge
	http   *http.Server
	httpLn net.Listener

	metrics     *metrics
	metricsSrv  *http.Server // on metrics.addr; nil when it is off
	metricsLn   net.Listener
	metricsDone chan error

	// What a reload replaces (reload.go); reloadMu orders reloads, and
	// the retention's restarts with Close.
	auth     *hearth.Authenticator
	policy   *hearth.Policy
	api      *httpapi.API
	devices  *httpapi.Devices // device logins; a reload revokes those of users removed or with a new password
	reloadMu sync.Mutex

	attachments    *attachments.Store
	retentionEvery time.Duration  // how often retention and the photos' sweep run
	notifier       *push.Notifier // Web Push of new messages
	focus          brokerFocus    // who has which room open, for the notifier

	bridgeCancel context.CancelFunc
	bridgeDone   chan error
	retention    context.CancelFunc
	retentionEnd chan struct{}
	httpDone     chan error
	closeOnce    sync.Once
	closeErr     error
}

// Start opens the store, binds every listener and starts serving. On an
// error, whatever was started is stopped again.
// tune, if given, adjusts the broker's settings (tests use it to reach
// limits quickly).
func Start(cfg hearth.Config, log *slog.Logger, tune ...func(*broker.Config)) (app *App, err error) {
	a := &App{cfg: cfg, log: log, metrics: newMetrics(), retentionEvery: time.Minute}
	defer func() {
		if err != nil {
			a.Close(context.Background())
		}
	}()
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data_dir: %w", err)
	}
	auth, err := newAuthenticator(cfg)
	if err != nil {
		return nil, err
	}
	policy := hearth.NewPolicy(&cfg)
	a.auth, a.policy = auth, policy
	logins := hearth.NewLoginLimiter() // MQTT and HTTP count failed logins together

	a.store, err = history.Open(filepath.Join(cfg.DataDir, "history.db"))
	if err != nil {
		return nil, err
	}
	a.attachments, err = attachments.New(filepath.Join(cfg.DataDir, "attachments"), a.store)
	if err != nil {
		return nil, err
	}
	a.devices, err = httpapi.NewDevices(a.store, log.With("component", "devices"))
	if err != nil {
		return nil, fmt.Errorf("device logins: %w", err)
	}
	auth.SetDevices(a.devices)
	vapid, err := push.LoadOrCreateKeys(filepath.Join(cfg.DataDir, "vapid.json"))
	if err != nil {
		return nil, err
	}
	a.notifier = push.New(push.Config{Keys: vapid, Subject: cfg.Push.Subject, Store: a.store, Policy: policy, Focus: &a.focus},
		log.With("component", "push"))

	// The HTTP port is bound first: the page's origins name its real port.
	var certs []tls.Certificate
	if cfg.HTTP.TLS.CertFile != "" {
		cert, err := loadCertificate("http.tls", cfg.HTTP.TLS)
		if err != nil {
			return nil, err
		}
		certs = []tls.Certificate{cert}
	}
	proxies, err := hearth.ParseProxies(cfg.HTTP.TrustedProxies)
	if err != nil {
		return nil, err
	}
	a.httpLn, err = net.Listen("tcp", cfg.HTTP.Addr)
	if err != nil {
		return nil, fmt.Errorf("listen http.addr %s: %w", cfg.HTTP.Addr, err)
	}
	origins := cfg.HTTP.PageOrigins(a.httpLn.Addr().String())

	bc := broker.Config{
		MQTTAddr:        cfg.MQTT.Addr,
		TLSAddr:         cfg.MQTT.TLS.Addr,
		TLSCertFile:     cfg.MQTT.TLS.CertFile,
		TLSKeyFile:      cfg.MQTT.TLS.KeyFile,
		MaxMessageBytes: cfg.MQTT.MaxMessageBytes,
		PublishRate:     cfg.MQTT.PublishRate,
		PublishBurst:    cfg.MQTT.PublishBurst,
		MaxConnections:  cfg.MQTT.MaxConnections,
		MaxPerUser:      cfg.MQTT.MaxConnectionsPerUser,
		MaxQueuedBytes:  cfg.MQTT.MaxQueuedBytes,
		MaxOfflineBytes: cfg.MQTT.MaxOfflineBytes,
		MaxKeepalive:    uint16(cfg.MQTT.MaxKeepalive),
		SessionFile:     filepath.Join(cfg.DataDir, "sessions.db"),
		Origins:         origins,
		BridgeClientID:  cfg.Bridge.ClientID,
		EmbeddedBridge:  cfg.Bridge.BrokerURL == "",
		Logins:          logins,
		DeliveryLatency: a.metrics.delivery,

		ConnectRatePerAddress: cfg.MQTT.ConnectRate.PerAddress,
		ConnectRatePerUser:    cfg.MQTT.ConnectRate.PerUser,
		ConnectBurst:          cfg.MQTT.ConnectRate.Burst,
		ClientIDOwners:        cfg.ClientIDOwners(),
	}
	for _, f := range tune {
		f(&bc)
	}
	a.broker, err = broker.New(bc, policy, auth, log.With("component", "broker"))
	if err != nil {
		return nil, err
	}
	a.focus.set(a.broker)

	if cfg.Metrics.Addr != "" {
		a.metricsLn, err = net.Listen("tcp", cfg.Metrics.Addr)
		if err != nil {
			return nil, fmt.Errorf("listen metrics.addr %s: %w", cfg.Metrics.Addr, err)
		}
	}

	bcfg := bridge.Config{ClientID: cfg.Bridge.ClientID, Rooms: policy.Rooms(), MaxReceiptBytes: cfg.MQTT.MaxMessageBytes, CommitTime: a.metrics.commit,
		Archived: a.notifier.Archived}
	if cfg.Bridge.BrokerURL == "" {
		bcfg.URL, bcfg.Username, bcfg.Password = a.broker.BridgeEndpoint()
	} else {
		bcfg.URL, bcfg.Username, bcfg.Password = externalBroker(cfg.Bridge.BrokerURL)
	}
	a.bridge, err = bridge.New(bcfg, a.store, log.With("component", "bridge"))
	if err != nil {
		return nil, err
	}
	a.metrics.register(a)

	a.api = httpapi.New(a.store, httpapi.Config{
		Auth:            auth,
		Policy:          policy,
		Publisher:       a.broker,
		ReadMarks:       a.broker,
		TokenTTL:        cfg.Auth.TokenTTL.D(),
		MaxMessageBytes: cfg.MQTT.MaxMessageBytes,
		Origins:         origins,
		Logins:          logins,

		Attachments:          a.attachments,
		MaxAttachmentBytes:   int64(cfg.Attachments.MaxBytes),
		AttachmentsPerMinute: cfg.Attachments.PerMinute,
		Devices:              a.devices,
		DeviceTTL:            cfg.Auth.DeviceTTL.D(),
		DeviceCloser:         a.broker,
		Push:                 &httpapi.PushConfig{Key: vapid.Public, Store: a.store},
	}, log.With("component", "api"))

	mux := http.NewServeMux()
	a.api.Register(mux)
	mux.Handle("GET /mqtt", a.broker.WebSocketHandler())
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeText(w, http.StatusOK, "ok\n")
	})
	mux.HandleFunc("GET /readyz", a.readyz)
	mux.HandleFunc("GET /metrics", a.adminMetrics)
	mux.Handle("/", getOnly(webclient.Handler()))

	// /mqtt and the backup download lift the read and write timeouts for
	// themselves (http.ResponseController); a route that streams must too.
	to := cfg.HTTP.Timeouts
	a.http = &http.Server{
		Handler:           proxies.Handler(a.metrics.instrument(securityHeaders(mux))),
		ReadHeaderTimeout: to.ReadHeader.D(),
		ReadTimeout:       to.Read.D(),
		WriteTimeout:      to.Write.D(),
		IdleTimeout:       to.Idle.D(),
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	if certs != nil {
		a.http.TLSConfig = &tls.Config{Certificates: certs, MinVersion: tls.VersionTLS12}
	}

	if err := a.broker.Start(); err != nil {
		return nil, err
	}
	a.notifier.Start()
	bctx, cancel := context.WithCancel(context.Background())
	a.bridgeCancel = cancel
	a.bridgeDone = make(chan error, 1)
	go func() { a.bridgeDone <- a.bridge.Run(bctx) }()
	a.httpDone = make(chan error, 1)
	go func() {
		if certs != nil {
			a.httpDone <- a.http.ServeTLS(a.httpLn, "", "")
			return
		}
		a.httpDone <- a.http.Serve(a.httpLn)
	}()
	if a.metricsLn != nil {
		a.metricsSrv = &http.Server{
			Handler:           securityHeaders(a.metrics.metricsOnly()),
			ReadHeaderTimeout: 10 * time.Second,
			ReadTimeout:       30 * time.Second,
			WriteTimeout:      30 * time.Second,
			IdleTimeout:       120 * time.Second,
			ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
		}
		a.metricsDone = make(chan error, 1)
		go func() { a.metricsDone <- a.metricsSrv.Serve(a.metricsLn) }()
	}

	a.startRetention(cfg.Rooms)

	log.Info("hearth listening", "http", a.HTTPAddr(), "https", certs != nil, "trusted_proxies", len(cfg.HTTP.TrustedProxies), "mqtt", orOff(a.MQTTAddr()), "mqtt_tls", orOff(a.broker.TLSAddr()), "metrics", orOff(a.MetricsAddr()), "data_dir", cfg.DataDir, "web_chat_built", webclient.Built())
	return a, nil
}

// externalBroker splits credentials out of a broker URL
// (mqtt://user:pass@host:1883).
func externalBroker(raw string) (url, user string, pass []byte) {
	u, err := parseURL(raw)
	if err != nil || u.User == nil {
		return raw, "", nil
	}
	p, _ := u.User.Password()
	user = u.User.Username()
	u.User = nil
	return u.String(), user, []byte(p)
}

// HTTPAddr is the bound address of the HTTP server.
func (a *App) HTTPAddr() string { return a.httpLn.Addr().String() }

// MetricsAddr is the bound address of metrics.addr, or "" when it is off.
func (a *App) MetricsAddr() string {
	if a.metricsLn == nil {
		return ""
	}
	return a.metricsLn.Addr().String()
}

// URL is where to open the web chat: http.public_url, or the listener's
// own address (https with http.tls).
func (a *App) URL() string {
	if a.cfg.HTTP.PublicURL != "" {
		return strings.TrimSuffix(a.cfg.HTTP.PublicURL, "/") + "/"
	}
	scheme := "http"
	if a.cfg.HTTP.TLS.CertFile != "" {
		scheme = "https"
	}
	return scheme + "://" + dialable(a.HTTPAddr()) + "/"
}

// MQTTAddr is the bound address of MQTT over TCP, or "" when it is off.
func (a *App) MQTTAddr() string { return a.broker.MQTTAddr() }

// Ready reports whether the broker listens, the bridge is subscribed and
// the store is open.
func (a *App) Ready() bool {
	return a.broker != nil && a.broker.Ready() && a.bridge != nil && a.bridge.Ready() && a.store != nil
}

// Close shuts down in reverse order under ctx's deadline: metrics.addr and
// HTTP, then the
// bridge, then the broker, then the store. It is safe to call twice.
func (a *App) Close(ctx context.Context) error {
	a.closeOnce.Do(func() {
		var errs []error
		if a.metricsDone != nil {
			if err := a.metricsSrv.Shutdown(ctx); err != nil {
				a.metricsSrv.Close()
			}
			<-a.metricsDone
		} else if a.metricsLn != nil {
			a.metricsLn.Close()
		}
		if a.httpDone != nil {
			if err := a.http.Shutdown(ctx); err != nil {
				errs = append(errs, fmt.Errorf("http shutdown: %w", err))
				a.http.Close()
			}
			<-a.httpDone
		} else if a.httpLn != nil {
			a.httpLn.Close()
		}
		if a.bridgeCancel != nil {
			a.bridgeCancel()
			select {
			case err := <-a.bridgeDone:
				if err != nil {
					errs = append(errs, err)
				}
			case <-ctx.Done():
				errs = append(errs, errors.New("bridge did not stop in time"))
			}
		}
		if a.notifier != nil {
			a.notifier.Close()
		}
		if a.broker != nil {
			a.broker.Close()
		}
		a.reloadMu.Lock()
		a.stopRetention()
		a.reloadMu.Unlock()
		if a.store != nil {
			if err := a.store.Close(); err != nil {
				errs = append(errs, fmt.Errorf("close history: %w", err))
			}
		}
		a.closeErr = errors.Join(errs...)
	})
	return a.closeErr
}

// brokerFocus asks the broker which rooms users have open and focused
// (broker.Broker.Focused), so that nobody is pushed a message of a room
// they are looking at. The notifier is made before the broker, which
// set then hands it.
type brokerFocus struct{ b *broker.Broker }

func (f *brokerFocus) set(b *broker.Broker) { f.b = b }

func (f *brokerFocus) Focused(user, room string) bool { return f.b != nil && f.b.Focused(user, room) }
