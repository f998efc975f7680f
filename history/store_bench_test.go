package history

import (
	"fmt"
	"path/filepath"
	"testing"

	"hearth"
)

func benchStore(b *testing.B) *Store {
	b.Helper()
	s, err := Open(filepath.Join(b.TempDir(), "history.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}

// BenchmarkAppendBatch measures one committed (fsynced) transaction per
// batch, as the bridge does.
func BenchmarkAppendBatch(b *testing.B) {
	for _, size := range []int{1, 64, 256} {
		b.Run(fmt.Sprintf("batch=%d", size), func(b *testing.B) {
			s := benchStore(b)
			batch := make([]hearth.Message, size)
			n := 0
			for b.Loop() {
				for i := range batch {
					n++
					batch[i] = hearth.Message{ID: fmt.Sprintf("id%d", n), Room: "family", From: "mum",
						Text: "a typical short chat message, about sixty bytes of text", TS: 1700000000000}
				}
				if _, err := s.Append(batch); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}

// BenchmarkPage reads pages of 50 from a room of 10,000 messages.
func BenchmarkPage(b *testing.B) {
	s := benchStore(b)
	const total = 10000
	for start := 0; start < total; start += 500 {
		batch := make([]hearth.Message, 500)
		for i := range batch {
			batch[i] = hearth.Message{ID: fmt.Sprintf("id%d", start+i), Room: "family", From: "mum",
				Text: "a typical short chat message, about sixty bytes of text"}
		}
		if _, err := s.Append(batch); err != nil {
			b.Fatal(err)
		}
	}
	queries := []struct {
		name string
		q    Query
	}{
		{"newest", Query{}},
		{"before", Query{Before: total / 2}},
		{"after", Query{After: total / 2, HasAfter: true}},
		{"max", Query{Limit: MaxLimit}},
	}
	for _, qq := range queries {
		b.Run(qq.name, func(b *testing.B) {
			for b.Loop() {
				msgs, _, err := s.Page("family", qq.q)
				if err != nil || len(msgs) == 0 {
					b.Fatalf("Page: %d messages, %v", len(msgs), err)
				}
			}
		})
	}
}
