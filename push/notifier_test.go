package push

import (
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/hearth-home/hearth"
	"github.com/hearth-home/hearth/history"
	"github.com/hearth-home/hearth/internal/mqtttest"
)

// focusStub has the rooms each user has focused: it stands in for the
// broker's knowledge of what each connection shows.
type focusStub map[string]string

func (f focusStub) Focused(user, room string) bool { return f[user] == room }

func testNotifier(t *testing.T, focus Focus, queue int) (*Notifier, *history.Store) {
	t.Helper()
	dir := t.TempDir()
	cfg, err := hearth.ParseConfig(strings.NewReader(mqtttest.ConfigYAML(dir, []mqtttest.User{
		{Name: "mum", Role: "admin"}, {Name: "dad", Role: "member"}, {Name: "kid", Role: "member"}, {Name: "kitchen", Role: "device"}})))
	if err != nil {
		t.Fatal(err)
	}
	store, err := history.Open(filepath.Join(dir, "history.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	keys, err := LoadOrCreateKeys(filepath.Join(dir, "vapid.json"))
	if err != nil {
		t.Fatal(err)
	}
	n := New(Config{Keys: keys, Subject: "mailto:a@b", Store: store, Policy: hearth.NewPolicy(&cfg), Focus: focus, QueueSize: queue},
		slog.New(slog.NewTextHandler(io.Discard, nil)))
	t.Cleanup(n.Close)
	return n, store
}

// TestRecipients: every reader of the room but the sender, those who
// muted it and those who have it focused.
func TestRecipients(t *testing.T) {
	focus := focusStub{"kid": "family", "dad": "parents"}
	n, store := testNotifier(t, focus, 0)
	m := hearth.Message{ID: "a", Room: "family", From: "mum", Text: "hi"}
	if got := n.Recipients(m); !slices.Equal(got, []string{"dad", "kitchen"}) {
		t.Errorf("recipients %v, want dad and kitchen (kid has family focused, mum sent it)", got)
	}
	if err := store.SetMuted("dad", "family", true); err != nil {
		t.Fatal(err)
	}
	if got := n.Recipients(m); !slices.Equal(got, []string{"kitchen"}) {
		t.Errorf("with dad muting family: %v, want kitchen", got)
	}
	delete(focus, "kid")
	if got := n.Recipients(m); !slices.Equal(got, []string{"kid", "kitchen"}) {
		t.Errorf("with kid's focus gone: %v, want kid and kitchen", got)
	}
	p := hearth.Message{ID: "b", Room: "parents", From: "mum", Text: "hi"}
	if got := n.Recipients(p); len(got) != 0 {
		t.Errorf("parents: %v, want nobody (dad has it focused; kid and kitchen cannot read it)", got)
	}
}

// TestQueueFull: a full queue drops and counts, and never blocks.
func TestQueueFull(t *testing.T) {
	n, _ := testNotifier(t, nil, 2)
	msgs := make([]hearth.Message, 5)
	for i := range msgs {
		msgs[i] = hearth.Message{ID: "m", Room: "family", From: "mum", Text: "x"}
	}
	n.Archived(msgs) // not started: nothing takes from the queue
	if d := n.Stats.Dropped.Load(); d != 3 {
		t.Errorf("dropped %d, want 3", d)
	}
}

func TestPayloadOf(t *testing.T) {
	m := hearth.Message{ID: "a", Room: "family", From: "mum", Seq: 7, Text: strings.Repeat("ü", 201)}
	if p := PayloadOf(m, "Family"); p.Text != strings.Repeat("ü", 200) || p.Seq != 7 || p.Title != "Family" {
		t.Errorf("payload %+v", p)
	}
	m.Text = ""
	if p := PayloadOf(m, "Family"); p.Text != "📷 Photo" {
		t.Errorf("text of a message of attachments only: %q", p.Text)
	}
}
