package bridge

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/hearth-home/hearth"
)

// TestReceiptsOf: one receipt per sender and room, in the order of their
// first message, each item once, none over the byte limit.
func TestReceiptsOf(t *testing.T) {
	var res []hearth.Appended
	for i := range 300 {
		from, room := "kid", "family"
		if i%3 == 1 {
			from = "mum"
		}
		if i%5 == 4 {
			room = "parents"
		}
		res = append(res, hearth.Appended{ReceiptItem: hearth.ReceiptItem{ID: fmt.Sprintf("id-%03d-%s", i, "padding-to-a-long-id"), Seq: uint64(i + 1), At: 1700000000000}, Room: room, From: from})
	}
	for _, limit := range []int{256, 1000, 16384} {
		jobs := receiptsOf(res, limit)
		seen := map[string]bool{}
		var firsts []string
		for _, j := range jobs {
			if len(j.payload) > limit {
				t.Fatalf("limit %d: a receipt of %d bytes", limit, len(j.payload))
			}
			var r hearth.Receipt
			if err := json.Unmarshal(j.payload, &r); err != nil || len(r.Items) == 0 {
				t.Fatalf("receipt %s: %v", j.payload, err)
			}
			key := j.to + "/" + r.Room
			if len(firsts) == 0 || firsts[len(firsts)-1] != key {
				firsts = append(firsts, key)
			}
			for _, it := range r.Items {
				if seen[it.ID] {
					t.Fatalf("limit %d: %s twice", limit, it.ID)
				}
				seen[it.ID] = true
			}
		}
		if len(seen) != len(res) {
			t.Fatalf("limit %d: %d of %d items", limit, len(seen), len(res))
		}
		if want := []string{"kid/family", "mum/family", "mum/parents", "kid/parents"}; limit == 16384 && fmt.Sprint(firsts) != fmt.Sprint(want) {
			t.Fatalf("receipts for %v, want one each for %v", firsts, want)
		}
	}
}
