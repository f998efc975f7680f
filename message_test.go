package hearth

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestParsePayload(t *testing.T) {
	id64 := strings.Repeat("a", 64)
	valid := []struct {
		name string
		in   string
		want Payload
	}{
		{"minimal", `{"id":"a","text":"b"}`, Payload{ID: "a", Text: "b"}},
		{"all fields", `{"id":"01J-x_Z9","text":"hi","ts":1700000000123,"reply_to":"m-1"}`,
			Payload{ID: "01J-x_Z9", Text: "hi", TS: 1700000000123, ReplyTo: "m-1"}},
		{"whitespace around", " \n\t{\"id\":\"a\",\"text\":\"b\"}\r\n ", Payload{ID: "a", Text: "b"}},
		{"ts 0", `{"id":"a","text":"b","ts":0}`, Payload{ID: "a", Text: "b"}},
		{"null optional fields", `{"id":"a","text":"b","ts":null,"reply_to":null}`, Payload{ID: "a", Text: "b"}},
		{"empty reply_to", `{"id":"a","text":"b","reply_to":""}`, Payload{ID: "a", Text: "b"}},
		{"unknown field ignored", `{"id":"a","text":"b","from":"mum"}`, Payload{ID: "a", Text: "b"}},
		{"id of 64", `{"id":"` + id64 + `","text":"b"}`, Payload{ID: id64, Text: "b"}},
		{"reply_to of 64", `{"id":"a","text":"b","reply_to":"` + id64 + `"}`, Payload{ID: "a", Text: "b", ReplyTo: id64}},
		{"4000 multi-byte runes", `{"id":"a","text":"` + strings.Repeat("é", 4000) + `"}`, Payload{ID: "a", Text: strings.Repeat("é", 4000)}},
		{"4000 four-byte runes", `{"id":"a","text":"` + strings.Repeat("😀", 4000) + `"}`, Payload{ID: "a", Text: strings.Repeat("😀", 4000)}},
		{"4000 escaped runes", `{"id":"a","text":"` + strings.Repeat(`\u00e9`, 4000) + `"}`, Payload{ID: "a", Text: strings.Repeat("é", 4000)}},
		{"escapes", `{"id":"a","text":"line\nnext \"q\" \u2028 <b>"}`, Payload{ID: "a", Text: "line\nnext \"q\" \u2028 <b>"}},
		{"attachments, no text", `{"id":"a","attachments":["` + att1 + `"]}`, Payload{ID: "a", Attachments: []string{att1}}},
		{"attachments, empty text", `{"id":"a","text":"","attachments":["` + att1 + `","` + att2 + `"]}`, Payload{ID: "a", Attachments: []string{att1, att2}}},
		{"attachments and text", `{"attachments":["` + att1 + `"],"id":"a","text":"look"}`, Payload{ID: "a", Text: "look", Attachments: []string{att1}}},
		{"ten attachments", `{"id":"a","attachments":` + attList(10) + `}`, Payload{ID: "a", Attachments: attIDs(10)}},
		{"empty attachments", `{"id":"a","text":"b","attachments":[]}`, Payload{ID: "a", Text: "b"}},
		{"null attachments", `{"id":"a","text":"b","attachments":null}`, Payload{ID: "a", Text: "b"}},
	}
	for _, tt := range valid {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParsePayload([]byte(tt.in))
			if err != nil {
				t.Fatalf("ParsePayload: got error %v, want %+v", err, tt.want)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ParsePayload: got %+v, want %+v", got, tt.want)
			}
		})
	}

	invalid := []struct {
		name string
		in   string
	}{
		{"empty input", ``},
		{"only whitespace", "  \n"},
		{"missing id", `{"text":"b"}`},
		{"empty id", `{"id":"","text":"b"}`},
		{"null id", `{"id":null,"text":"b"}`},
		{"missing text", `{"id":"a"}`},
		{"empty text", `{"id":"a","text":""}`},
		{"null text", `{"id":"a","text":null}`},
		{"4001 multi-byte runes", `{"id":"a","text":"` + strings.Repeat("é", 4001) + `"}`},
		{"4001 ascii", `{"id":"a","text":"` + strings.Repeat("x", 4001) + `"}`},
		{"id of 65", `{"id":"` + id64 + `b","text":"b"}`},
		{"id with space", `{"id":"a b","text":"b"}`},
		{"id with slash", `{"id":"a/b","text":"b"}`},
		{"empty attachments, no text", `{"id":"a","attachments":[]}`},
		{"eleven attachments", `{"id":"a","attachments":` + attList(11) + `}`},
		{"attachment id upper case", `{"id":"a","attachments":["` + strings.ToUpper(att1) + `"]}`},
		{"attachment id short", `{"id":"a","attachments":["` + att1[:63] + `"]}`},
		{"attachment id long", `{"id":"a","attachments":["` + att1 + `0"]}`},
		{"attachment id not hex", `{"id":"a","attachments":["` + att1[:63] + `g"]}`},
		{"attachment twice", `{"id":"a","attachments":["` + att1 + `","` + att1 + `"]}`},
		{"attachments not a list", `{"id":"a","attachments":"` + att1 + `"}`},
		{"attachment not a string", `{"id":"a","attachments":[1]}`},
		{"id with dot", `{"id":"a.b","text":"b"}`},
		{"id with NUL", `{"id":"a\u0000b","text":"b"}`},
		{"id non-ascii", `{"id":"é","text":"b"}`},
		{"reply_to with space", `{"id":"a","text":"b","reply_to":"x y"}`},
		{"reply_to of 65", `{"id":"a","text":"b","reply_to":"` + id64 + `b"}`},
		{"invalid UTF-8 in text", "{\"id\":\"a\",\"text\":\"\xff\xfe\"}"},
		{"invalid UTF-8 outside strings", "{\"id\":\"a\",\"text\":\"b\"}\xff"},
		{"truncated UTF-8", "{\"id\":\"a\",\"text\":\"\xc3\"}"},
		{"JSON array", `[{"id":"a","text":"b"}]`},
		{"JSON string", `"hello"`},
		{"JSON null", `null`},
		{"JSON number", `42`},
		{"JSON true", `true`},
		{"not JSON", `hello`},
		{"truncated object", `{"id":"a","text":"b"`},
		{"trailing garbage", `{"id":"a","text":"b"} x`},
		{"trailing object", `{"id":"a","text":"b"}{"id":"c","text":"d"}`},
		{"trailing comma", `{"id":"a","text":"b"},`},
		{"trailing brace", `{"id":"a","text":"b"}}`},
		{"trailing bracket", `{"id":"a","text":"b"}]`},
		{"id as number", `{"id":1,"text":"b"}`},
		{"text as object", `{"id":"a","text":{"x":1}}`},
		{"text as array", `{"id":"a","text":["b"]}`},
		{"ts as string", `{"id":"a","text":"b","ts":"1700000000000"}`},
		{"ts fractional", `{"id":"a","text":"b","ts":1.5}`},
		{"ts overflows int64", `{"id":"a","text":"b","ts":9223372036854775808}`},
		{"negative ts", `{"id":"a","text":"b","ts":-1}`},
		{"reply_to as number", `{"id":"a","text":"b","reply_to":7}`},
		{"larger than 64 KiB", `{"id":"a","text":"b","pad":"` + strings.Repeat(" ", 64<<10) + `"}`},
	}
	for _, tt := range invalid {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParsePayload([]byte(tt.in))
			if err == nil {
				t.Fatalf("ParsePayload(%.60q) = %+v, nil; want an error", tt.in, got)
			}
			if !errors.Is(err, ErrBadPayload) {
				t.Errorf("ParsePayload(%.60q) error %v does not wrap ErrBadPayload", tt.in, err)
			}
			// Errors are shown to users: no Go type names.
			if msg := err.Error(); strings.Contains(msg, "hearth.") || strings.Contains(msg, "Go value") {
				t.Errorf("ParsePayload(%.60q) error %q names Go internals", tt.in, msg)
			}
		})
	}
}

func TestValidID(t *testing.T) {
	tests := []struct {
		id   string
		want bool
	}{
		{"a", true},
		{"A-z_0", true},
		{"0190d5f3-7b1c-7cc4-9d2e-5b1b2c3d4e5f", true},
		{strings.Repeat("Z", 64), true},
		{"", false},
		{strings.Repeat("Z", 65), false},
		{"a b", false},
		{"a/b", false},
		{"a+b", false},
		{"a#b", false},
		{"é", false},
		{"a\x00", false},
	}
	for _, tt := range tests {
		if got := ValidID(tt.id); got != tt.want {
			t.Errorf("ValidID(%q) = %v, want %v", tt.id, got, tt.want)
		}
	}
}

func TestPayloadValidate(t *testing.T) {
	// Validate is also called on payloads built in Go (the HTTP API), which
	// can hold strings that never came from JSON.
	tests := []struct {
		name string
		p    Payload
		ok   bool
	}{
		{"valid", Payload{ID: "a", Text: "b", TS: 1, ReplyTo: "c"}, true},
		{"invalid UTF-8 text", Payload{ID: "a", Text: "\xff"}, false},
		{"4001 runes", Payload{ID: "a", Text: strings.Repeat("é", 4001)}, false},
		{"negative ts", Payload{ID: "a", Text: "b", TS: -5}, false},
		{"bad reply_to", Payload{ID: "a", Text: "b", ReplyTo: "a/b"}, false},
	}
	for _, tt := range tests {
		err := tt.p.Validate()
		if (err == nil) != tt.ok {
			t.Errorf("%s: Validate(%+v) = %v, want ok=%v", tt.name, tt.p, err, tt.ok)
		}
		if err != nil && !errors.Is(err, ErrBadPayload) {
			t.Errorf("%s: Validate error %v does not wrap ErrBadPayload", tt.name, err)
		}
	}
}

func FuzzParsePayload(f *testing.F) {
	for _, s := range []string{
		`{"id":"a","text":"b"}`,
		`{"id":"01J-x_Z9","text":"hi","ts":1700000000123,"reply_to":"m-1"}`,
		`{"id":"a","text":"\u00e9\ud83d\ude00\u2028"}`,
		`{"id":"a","text":"\ud800"}`,
		`{"ID":"a","Text":"b","TS":3}`,
		`{"id":"a","text":"b"}}`,
		`{"id":"a","text":"b","ts":-1}`,
		`{"id":1,"text":{}}`,
		`[]`, `null`, `"x"`, `0`, ``,
		"{\"id\":\"a\",\"text\":\"\xff\"}",
		`{"id":"a","attachments":["` + att1 + `"]}`,
		`{"id":"a","text":"","attachments":[]}`,
		`{"id":"a","text":"x","attachments":["` + att1 + `"],"attachments":null}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if fast, ok := parseFast(b); ok {
			var want Payload
			if err := json.Unmarshal(b, &want); err != nil || !reflect.DeepEqual(fast, want) {
				t.Fatalf("parseFast(%q) = %+v; json.Unmarshal: %+v, %v", b, fast, want, err)
			}
		}
		p, err := ParsePayload(b)
		if err != nil {
			if !errors.Is(err, ErrBadPayload) {
				t.Fatalf("ParsePayload(%q) error %v does not wrap ErrBadPayload", b, err)
			}
			return
		}
		if err := p.Validate(); err != nil {
			t.Fatalf("ParsePayload(%q) accepted %+v, but Validate() = %v", b, p, err)
		}
		again, err := json.Marshal(p)
		if err != nil {
			t.Fatalf("json.Marshal(%+v): %v", p, err)
		}
		p2, err := ParsePayload(again)
		if err != nil {
			t.Fatalf("ParsePayload(%q) accepted %+v, but its re-marshalled form %q is refused: %v", b, p, again, err)
		}
		if !reflect.DeepEqual(p2, p) {
			t.Fatalf("round trip of %q: got %+v, want %+v", b, p2, p)
		}
	})
}

// TestParseFast: parseFast reads the common shapes as json.Unmarshal
// does, and leaves every other one to it.
func TestParseFast(t *testing.T) {
	for _, in := range []string{
		`{"id":"a","text":"b"}`,
		`{"text":"b","id":"a"}`,
		`{"id":"01J-x_Z9","text":"hi 🎉 ü","ts":1700000000123,"reply_to":"m-1"}`,
		`{"reply_to":"m","ts":-5,"text":"x","id":"y"}`,
		`{"ts":0,"id":"a","text":""}`,
	} {
		got, ok := parseFast([]byte(in))
		var want Payload
		if err := json.Unmarshal([]byte(in), &want); err != nil {
			t.Fatal(err)
		}
		if !ok || !reflect.DeepEqual(got, want) {
			t.Errorf("parseFast(%s) = %+v, %v; want %+v", in, got, ok, want)
		}
	}
	for _, in := range []string{
		``, `{}`, `{"id":"a",}`, `{"id":"a","text":"b"} `, `{"id":"a","text":"b"}}`, ` {"id":"a"}`,
		`{"id": "a"}`, `{"ID":"a","text":"b"}`, `{"id":"a","id":"b"}`, `{"id":"a","x":1}`,
		`{"id":"a\u0041"}`, `{"id":null}`, `{"ts":1.5}`, `{"ts":1e3}`, `{"ts":01}`, `{"ts":"1"}`,
		`{"id":"a","attachments":["` + att1 + `"]}`, `{"ts":12345678901234567890}`, "{\"text\":\"\xff\"}", `{"text":"a` + "\n" + `"}`, `[]`, `{"id":"a"`,
	} {
		if p, ok := parseFast([]byte(in)); ok {
			t.Errorf("parseFast(%q) = %+v, want it left to json.Unmarshal", in, p)
		}
	}
}

func TestParseTyping(t *testing.T) {
	for _, c := range []struct {
		in   string
		want *bool
	}{
		{`{"typing":true}`, ptr(true)},
		{`{"typing":false}`, ptr(false)},
		{`{"typing":1}`, nil},
		{`{}`, nil},
		{`{"typing":true} x`, nil},
		{`[true]`, nil},
		{``, nil},
	} {
		got, err := ParseTyping([]byte(c.in))
		switch {
		case c.want == nil && !errors.Is(err, ErrBadPayload):
			t.Errorf("ParseTyping(%q) = %v, %v; want an ErrBadPayload", c.in, got, err)
		case c.want != nil && (err != nil || got.Typing != *c.want):
			t.Errorf("ParseTyping(%q) = %v, %v; want %v", c.in, got, err, *c.want)
		}
	}
}

func ptr[T any](v T) *T { return &v }

// Attachment ids for the tests: 64 lower-case hex digits each.
const (
	att1 = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	att2 = "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210"
)

func attIDs(n int) []string {
	var ids []string
	for i := range n {
		ids = append(ids, strings.Repeat(string("0123456789abcdef"[i]), 64))
	}
	return ids
}

func attList(n int) string {
	b, _ := json.Marshal(attIDs(n))
	return string(b)
}

func TestValidAttachmentID(t *testing.T) {
	for s, want := range map[string]bool{
		att1: true, att2: true, "": false, att1[:63]: false, att1 + "a": false,
		strings.ToUpper(att1): false, strings.Repeat("z", 64): false,
	} {
		if got := ValidAttachmentID(s); got != want {
			t.Errorf("ValidAttachmentID(%q) = %v, want %v", s, got, want)
		}
	}
}
