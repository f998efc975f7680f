package history

import (
	"encoding/json"
	"math/rand/v2"
	"reflect"
	"testing"

	"github.com/hearth-home/hearth"
)

// TestDecodeFast: whatever json.Marshal writes for a message, decodeFast
// either reads as json.Unmarshal does or leaves to it; and it refuses
// what is not exactly that shape.
func TestDecodeFast(t *testing.T) {
	texts := []string{"hi", "", "Dinner is ready", `say "cheese"`, `back\slash`, "<b>&amp;", "line\nbreak", "tab\t",
		"emoji 🎉 and ü", "\u2028", "\x7f", string([]byte{0xff, 'a'}), "😀😀😀"}
	rng := rand.New(rand.NewPCG(1, 2))
	fast := 0
	for i := range 2000 {
		m := hearth.Message{
			Seq: rng.Uint64N(1 << 40), ID: "id-" + texts[rng.IntN(2)], Room: "family", From: "kid",
			Text: texts[rng.IntN(len(texts))] + texts[rng.IntN(len(texts))], At: rng.Int64N(1 << 42),
		}
		if i%2 == 0 {
			m.TS = rng.Int64N(1 << 42)
		}
		if i%3 == 0 {
			m.ReplyTo = "r" + texts[rng.IntN(2)]
		}
		v, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		var want hearth.Message
		if err := json.Unmarshal(v, &want); err != nil {
			t.Fatal(err)
		}
		got, ok := decodeFast(v)
		if !ok {
			continue
		}
		fast++
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%s: decodeFast %+v, json.Unmarshal %+v", v, got, want)
		}
	}
	if fast < 300 {
		t.Fatalf("only %d of 2000 records read fast", fast)
	}
	for _, v := range []string{
		``, `{}`, `{"seq":1}`, `{"seq":01,"id":"a","room":"r","from":"f","text":"t","at":1}`,
		`{"seq":1,"id":"a","room":"r","from":"f","text":"t","at":1} `,
		`{"seq":1,"id":"a","room":"r","from":"f","text":"t","at":1,"x":1}`,
		`{"id":"a","seq":1,"room":"r","from":"f","text":"t","at":1}`,
		`{"seq":1234567890123456789012,"id":"a","room":"r","from":"f","text":"t","at":1}`,
		`{"seq":1,"id":"a","room":"r","from":"f","text":"t","at":-}`,
		`{"seq":1,"id":"a","room":"r","from":"f","text":"t\u0041","at":1}`,
		`{"seq":1,"id":"a","room":"r","from":"f","text":"t,"at":1}`,
	} {
		if m, ok := decodeFast([]byte(v)); ok {
			t.Errorf("decodeFast(%s) = %+v, want it left to json.Unmarshal", v, m)
		}
	}
}
