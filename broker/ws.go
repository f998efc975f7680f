package broker

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"github.com/mochi-mqtt/server/v2/listeners"

	"github.com/hearth-home/hearth"
)

// wsListener is a mochi listener that is also an http.Handler, so that
// MQTT over WebSocket shares hearth's HTTP port and mux. It checks the
// Origin of browsers and limits what one frame may carry.
type wsListener struct {
	id        string
	origins   hearth.Origins
	readLimit int64
	log       *slog.Logger
	refusals  *refusals
	upgrader  websocket.Upgrader

	mu        sync.RWMutex
	establish listeners.EstablishFn
	closed    bool
}

func newWSListener(id string, origins hearth.Origins, readLimit int64, log *slog.Logger, refusals *refusals) *wsListener {
	l := &wsListener{id: id, origins: origins, readLimit: readLimit, log: log, refusals: refusals}
	l.upgrader = websocket.Upgrader{
		Subprotocols:     []string{"mqtt"},
		CheckOrigin:      func(r *http.Request) bool { return origins.Allowed(r.Header.Get("Origin")) },
		HandshakeTimeout: 10 * time.Second,
		// A write buffer only while a frame is written: an idle
		// connection holds none.
		WriteBufferPool: &sync.Pool{},
		// Its own small read buffer, rather than net/http's 4 KB one; mochi
		// reads through a buffer of its own too.
		ReadBufferSize: 1024,
	}
	return l
}

func (l *wsListener) ID() string                    { return l.id }
func (l *wsListener) Address() string               { return "/mqtt" }
func (l *wsListener) Protocol() string              { return "ws" }
func (l *wsListener) Init(*slog.Logger) error       { return nil }
func (l *wsListener) Serve(e listeners.EstablishFn) { l.mu.Lock(); l.establish = e; l.mu.Unlock() }

// Close stops new connections and disconnects the current ones: they were
// hijacked from net/http, so http.Server.Shutdown does not track them.
func (l *wsListener) Close(closeClients listeners.CloseFn) {
	l.mu.Lock()
	l.closed = true
	l.mu.Unlock()
	closeClients(l.id)
}

func (l *wsListener) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	l.mu.RLock()
	establish, closed := l.establish, l.closed
	l.mu.RUnlock()
	if establish == nil || closed {
		hearth.WriteError(w, http.StatusServiceUnavailable, "mqtt is not available")
		return
	}
	if !websocket.IsWebSocketUpgrade(r) {
		hearth.WriteError(w, http.StatusBadRequest, "MQTT over WebSocket: use a WebSocket client with subprotocol mqtt")
		return
	}
	client := hearth.ClientOf(r)
	if origin := r.Header.Get("Origin"); !l.origins.Allowed(origin) {
		l.refusals.refuse(OriginNotAllowed, "origin", origin, "remote", client.String())
		hearth.WriteError(w, http.StatusForbidden, "origin "+strconv.Quote(origin)+" not allowed: set http.public_url to the address people open, or add it to http.allowed_origins")
		return
	}
	// The server's read and write timeouts are for requests: a WebSocket
	// lives on, with MQTT's keep alive and gorilla's frame deadlines.
	rc := http.NewResponseController(w)
	if err := errors.Join(rc.SetReadDeadline(time.Time{}), rc.SetWriteDeadline(time.Time{})); err != nil {
		l.log.Debug("mqtt websocket: clearing the deadlines", "error", err)
	}
	c, err := l.upgrader.Upgrade(w, r, nil)
	if err != nil {
		return // the upgrader has answered
	}
	c.SetReadLimit(l.readLimit)
	conn := &wsConn{Conn: c.UnderlyingConn(), c: c}
	if client.Proxied {
		// mochi takes the connection's remote address as the client's:
		// for the login limiter and the logs.
		conn.remote = clientAddr(client.String())
	}
	// The connection gets a goroutine of its own, and the handler
	// returns: net/http's request, response and buffers, and the stack of
	// its goroutine, are not kept for as long as the client stays.
	go func() {
		if err := establish(l.id, conn); err != nil { // quietListener adds the CONNECT deadline and clientConn
			l.log.Debug("mqtt websocket connection ended", "remote", conn.RemoteAddr().String(), "error", err)
		}
		conn.Close()
	}()
}

var errNotBinary = errors.New("websocket: MQTT needs binary frames")

// wsConn is a WebSocket as a net.Conn: reads run across frames, and each
// write is one binary frame.
type wsConn struct {
	net.Conn
	c      *websocket.Conn
	r      io.Reader
	wm     sync.Mutex
	remote net.Addr // the client behind a trusted proxy; nil: the peer
}

// RemoteAddr is the client's address: behind a trusted proxy, the one its
// X-Forwarded-For names.
func (ws *wsConn) RemoteAddr() net.Addr {
	if ws.remote != nil {
		return ws.remote
	}
	return ws.Conn.RemoteAddr()
}

// clientAddr is a client's IP address (without a port) as a net.Addr.
type clientAddr string

func (a clientAddr) Network() string { return "tcp" }
func (a clientAddr) String() string  { return string(a) }

func (ws *wsConn) Read(p []byte) (int, error) {
	for {
		if ws.r == nil {
			op, r, err := ws.c.NextReader()
			if err != nil {
				return 0, err
			}
			if op != websocket.BinaryMessage {
				return 0, errNotBinary
			}
			ws.r = r
		}
		n, err := ws.r.Read(p)
		if errors.Is(err, io.EOF) {
			ws.r = nil
			if n == 0 {
				continue
			}
			err = nil
		}
		return n, err
	}
}

func (ws *wsConn) Write(p []byte) (int, error) {
	ws.wm.Lock()
	defer ws.wm.Unlock()
	if err := ws.c.WriteMessage(websocket.BinaryMessage, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (ws *wsConn) Close() error { return ws.c.Close() }

// NetConn is the network connection under the WebSocket.
func (ws *wsConn) NetConn() net.Conn { return ws.Conn }

// gorilla sets its own write deadline before each frame: deadlines go
// through it.

func (ws *wsConn) SetWriteDeadline(t time.Time) error { return ws.c.SetWriteDeadline(t) }

func (ws *wsConn) SetReadDeadline(t time.Time) error { return ws.c.SetReadDeadline(t) }

func (ws *wsConn) SetDeadline(t time.Time) error {
	return errors.Join(ws.c.SetReadDeadline(t), ws.c.SetWriteDeadline(t))
}
