package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/hearth-home/hearth"
	"github.com/hearth-home/hearth/bridge"
	"github.com/hearth-home/hearth/broker"
	"github.com/hearth-home/hearth/history"
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
	a := &App{cfg: cfg, log: log}
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
	logins := hearth.NewLoginLimiter() // MQTT and HTTP count failed logins together

	a.store, err = history.Open(filepath.Join(cfg.DataDir, "history.db"))
	if err != nil {
		return nil, err
	}

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
		AllowedOrigins:  cfg.HTTP.AllowedOrigins,
		BridgeClientID:  cfg.Bridge.ClientID,
		EmbeddedBridge:  cfg.Bridge.BrokerURL == "",
		Logins:          logins,

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

	a.httpLn, err = net.Listen("tcp", cfg.HTTP.Addr)
	if err != nil {
		return nil, fmt.Errorf("listen http.addr %s: %w", cfg.HTTP.Addr, err)
	}

	bcfg := bridge.Config{ClientID: cfg.Bridge.ClientID, Rooms: policy.Rooms(), MaxReceiptBytes: cfg.MQTT.MaxMessageBytes}
	if cfg.Bridge.BrokerURL == "" {
		bcfg.URL, bcfg.Username, bcfg.Password = a.broker.BridgeEndpoint()
	} else {
		bcfg.URL, bcfg.Username, bcfg.Password = externalBroker(cfg.Bridge.BrokerURL)
	}
	a.bridge, err = bridge.New(bcfg, a.store, log.With("component", "bridge"))
	if err != nil {
		return nil, err
	}

	api := history.NewAPI(a.store, history.APIConfig{
		Auth:            auth,
		Policy:          policy,
		Publisher:       a.broker,
		IsNotAllowed:    func(err error) bool { return errors.Is(err, broker.ErrNotAllowed) },
		IsTooLarge:      func(err error) bool { return errors.Is(err, broker.ErrTooLarge) },
		IsBusy:          func(err error) bool { return errors.Is(err, broker.ErrBusy) },
		IsRateLimited:   func(err error) bool { return errors.Is(err, broker.ErrRateLimited) },
		TokenTTL:        cfg.Auth.TokenTTL.D(),
		MaxMessageBytes: cfg.MQTT.MaxMessageBytes,
		AllowedOrigins:  cfg.HTTP.AllowedOrigins,
		Logins:          logins,
	}, log.With("component", "api"))

	mux := http.NewServeMux()
	api.Register(mux)
	mux.Handle("GET /mqtt", a.broker.WebSocketHandler())
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeText(w, http.StatusOK, "ok\n")
	})
	mux.HandleFunc("GET /readyz", a.readyz)
	mux.HandleFunc("GET /metrics", a.metrics)
	mux.Handle("/", getOnly(webclient.Handler()))

	a.http = &http.Server{
		Handler:           securityHeaders(mux),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}

	if err := a.broker.Start(); err != nil {
		return nil, err
	}
	bctx, cancel := context.WithCancel(context.Background())
	a.bridgeCancel = cancel
	a.bridgeDone = make(chan error, 1)
	go func() { a.bridgeDone <- a.bridge.Run(bctx) }()
	a.httpDone = make(chan error, 1)
	go func() { a.httpDone <- a.http.Serve(a.httpLn) }()

	rules := map[string]history.Retention{}
	for _, r := range cfg.Rooms {
		if r.Retention.MaxAge.D() > 0 || r.Retention.MaxMessages > 0 {
			rules[r.Name] = history.Retention{MaxAge: r.Retention.MaxAge.D(), MaxMessages: r.Retention.MaxMessages}
		}
	}
	rctx, rcancel := context.WithCancel(context.Background())
	a.retention, a.retentionEnd = rcancel, make(chan struct{})
	go func() {
		defer close(a.retentionEnd)
		if len(rules) > 0 {
			a.store.RunRetention(rctx, rules, time.Minute, log.With("component", "retention"))
		}
	}()

	log.Info("hearth listening", "http", a.HTTPAddr(), "mqtt", orOff(a.MQTTAddr()), "mqtt_tls", orOff(a.broker.TLSAddr()), "data_dir", cfg.DataDir, "web_chat_built", webclient.Built())
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

// MQTTAddr is the bound address of MQTT over TCP, or "" when it is off.
func (a *App) MQTTAddr() string { return a.broker.MQTTAddr() }

// Ready reports whether the broker listens, the bridge is subscribed and
// the store is open.
func (a *App) Ready() bool {
	return a.broker != nil && a.broker.Ready() && a.bridge != nil && a.bridge.Ready() && a.store != nil
}

// Close shuts down in reverse order under ctx's deadline: HTTP, then the
// bridge, then the broker, then the store. It is safe to call twice.
func (a *App) Close(ctx context.Context) error {
	a.closeOnce.Do(func() {
		var errs []error
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
		if a.broker != nil {
			a.broker.Close()
		}
		if a.retention != nil {
			a.retention()
			<-a.retentionEnd
		}
		if a.store != nil {
			if err := a.store.Close(); err != nil {
				errs = append(errs, fmt.Errorf("close history: %w", err))
			}
		}
		a.closeErr = errors.Join(errs...)
	})
	return a.closeErr
}
