package hearth

import (
	"errors"
	"testing"
)

func TestParseReadMark(t *testing.T) {
	for in, want := range map[string]uint64{`{"seq":0}`: 0, `{"seq":42}`: 42, ` {"seq": 7} `: 7, `{"seq":18446744073709551615}`: 1<<64 - 1} {
		m, err := ParseReadMark([]byte(in))
		if err != nil || m.Seq != want {
			t.Errorf("ParseReadMark(%s) = %v, %v; want %d", in, m, err, want)
		}
	}
	for _, in := range []string{``, `{}`, `{"seq":-1}`, `{"seq":1.5}`, `{"seq":"1"}`, `{"seq":null}`, `{"seq":1,"x":1}`, `{"seq":1}{}`, `[1]`, `{"seq":1e3}`} {
		if _, err := ParseReadMark([]byte(in)); !errors.Is(err, ErrBadPayload) {
			t.Errorf("ParseReadMark(%q): %v, want ErrBadPayload", in, err)
		}
	}
}

func TestParseFocus(t *testing.T) {
	for in, want := range map[string]string{`{"room":"family"}`: "family", `{"room":""}`: ""} {
		f, err := ParseFocus([]byte(in))
		if err != nil || f.Room != want {
			t.Errorf("ParseFocus(%s) = %v, %v; want %q", in, f, err, want)
		}
	}
	for _, in := range []string{``, `{}`, `{"room":null}`, `{"room":1}`, `{"room":"Family"}`, `{"room":"a/b"}`, `{"room":"x","y":1}`} {
		if _, err := ParseFocus([]byte(in)); !errors.Is(err, ErrBadPayload) {
			t.Errorf("ParseFocus(%q): %v, want ErrBadPayload", in, err)
		}
	}
}

func TestReadAndFocusTopics(t *testing.T) {
	if got := ParseTopic(ReadTopic("family", "dad")); got != (Topic{Kind: TopicRead, Room: "family", User: "dad"}) {
		t.Errorf("ParseTopic(%s) = %+v", ReadTopic("family", "dad"), got)
	}
	if got := ParseTopic(FocusTopic("dad")); got != (Topic{Kind: TopicFocus, User: "dad"}) {
		t.Errorf("ParseTopic(%s) = %+v", FocusTopic("dad"), got)
	}
	for _, bad := range []string{"rooms/family/reads", "rooms/family/reads/Dad", "rooms/family/reads/dad/x", "users/dad/focus/x", "users/Dad/focus"} {
		if k := ParseTopic(bad).Kind; k != TopicInvalid {
			t.Errorf("ParseTopic(%s).Kind = %d, want TopicInvalid", bad, k)
		}
	}
}
