package broker

import (
	"context"
	"log/slog"

	mqtt "github.com/mochi-mqtt/server/v2"
)

// mochiLog wraps the handler given to mochi. mochi logs every publish a
// hook refuses at error level and every failed packet at warn level, each
// with the whole packet: a client could flood the log, and message text
// does not belong in it. Those records go to debug level, and packet
// attributes are reduced to what identifies a packet.
type mochiLog struct{ slog.Handler }

// quieted are mochi's messages about what clients do wrong.
var quieted = map[string]bool{
	"publish packet error":               true,
	"publish packet rejected":            true,
	"error processing packet":            true,
	"failed publishing packet":           true,
	"client store quota reached":         false, // kept: it means a message was lost
	"":                                   true,  // listeners' connection errors
	"failed to publish retained message": true,
	mqtt.ErrMinimumKeepalive.Error():     true, // logged before login, with the client's id
}

func (h mochiLog) Enabled(ctx context.Context, l slog.Level) bool {
	return h.Handler.Enabled(ctx, slog.LevelDebug) || h.Handler.Enabled(ctx, l)
}

func (h mochiLog) Handle(ctx context.Context, r slog.Record) error {
	level := r.Level
	if quieted[r.Message] && level > slog.LevelDebug {
		level = slog.LevelDebug
	}
	if !h.Handler.Enabled(ctx, level) {
		return nil
	}
	out := slog.NewRecord(r.Time, level, r.Message, r.PC)
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "packet" || a.Key == "pk" {
			a = slog.String(a.Key, "(omitted)")
		}
		out.AddAttrs(a)
		return true
	})
	return h.Handler.Handle(ctx, out)
}

func (h mochiLog) WithAttrs(as []slog.Attr) slog.Handler { return mochiLog{h.Handler.WithAttrs(as)} }
func (h mochiLog) WithGroup(g string) slog.Handler       { return mochiLog{h.Handler.WithGroup(g)} }
