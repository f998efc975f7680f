package history

import (
	"fmt"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/hearth-home/hearth"
)

const benchText = "a typical short chat message, about sixty bytes of text"

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
			b.ReportAllocs()
			for b.Loop() {
				for i := range batch {
					n++
					batch[i] = hearth.Message{ID: fmt.Sprintf("id%d", n), Room: "family", From: "mum",
						Text: benchText, TS: 1700000000000}
				}
				if _, err := s.Append(batch); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}

// fillRoom appends total messages to the family room in batches of
// batch, one transaction each.
func fillRoom(b *testing.B, s *Store, total, batch int) {
	b.Helper()
	msgs := make([]hearth.Message, batch)
	for start := 0; start < total; start += batch {
		msgs = msgs[:min(batch, total-start)]
		for i := range msgs {
			msgs[i] = hearth.Message{ID: "id" + strconv.Itoa(start+i), Room: "family", From: "mum",
				Text: benchText, TS: 1700000000000}
		}
		if _, err := s.Append(msgs); err != nil {
			b.Fatal(err)
		}
	}
	if last, err := s.LastSeq("family"); err != nil || last != uint64(total) {
		b.Fatalf("filled room ends at seq %d (%v), want %d", last, err, total)
	}
}

// benchPages reads pages from the family room of s, which holds total
// messages: the newest page, one in the middle each way, the oldest, and
// the largest allowed.
func benchPages(b *testing.B, s *Store, total uint64) {
	queries := []struct {
		name string
		q    Query
		want int
	}{
		{"newest", Query{}, DefaultLimit},
		{"before", Query{Before: total / 2}, DefaultLimit},
		{"after", Query{After: total / 2, HasAfter: true}, DefaultLimit},
		{"oldest", Query{After: 0, HasAfter: true}, DefaultLimit},
		{"max", Query{Limit: MaxLimit}, MaxLimit},
	}
	for _, qq := range queries {
		b.Run(qq.name, func(b *testing.B) {
			n := 0
			b.ReportAllocs()
			for b.Loop() {
				msgs, _, err := s.Page("family", qq.q)
				if err != nil || len(msgs) != qq.want {
					b.Fatalf("Page: %d messages, %v; want %d", len(msgs), err, qq.want)
				}
				n += len(msgs)
			}
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}

// BenchmarkPage reads pages (50 messages, or 200 for max) from a room of
// 10,000 messages.
func BenchmarkPage(b *testing.B) {
	s := benchStore(b)
	const total = 10000
	fillRoom(b, s, total, 500)
	benchPages(b, s, total)
}

// BenchmarkPage1M reads pages (50 messages, or 200 for max) from a room of
// 1,000,000 messages. The room is filled once per run of the benchmark,
// in batches of 20,000, and shared by its sub-benchmarks.
func BenchmarkPage1M(b *testing.B) {
	s := benchStore(b)
	const total = 1000000
	start := time.Now()
	fillRoom(b, s, total, 20000)
	b.Logf("filled %d messages in %s", total, time.Since(start).Round(time.Millisecond))
	benchPages(b, s, total)
}
