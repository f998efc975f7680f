package api

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/hearth-home/hearth"
)

func TestAPISearch(t *testing.T) {
	e := newAPIEnv(t, "")
	if _, err := e.store.Append([]hearth.Message{
		{ID: "m1", Room: "family", From: "dad", Text: "Pizza tonight?"},
		{ID: "m2", Room: "family", From: "kid", Text: "pizza pizza"},
		{ID: "m3", Room: "parents", From: "mum", Text: "pizza is a secret"},
		{ID: "m4", Room: "family", From: "mum", Text: "soup"},
	}); err != nil {
		t.Fatal(err)
	}
	search := func(user, room, query string) []hearth.Message {
		t.Helper()
		r := e.get(user, "/api/rooms/"+room+"/search?"+query)
		if r.status != http.StatusOK {
			t.Fatalf("search %s as %s: %d %s", query, user, r.status, r.body)
		}
		var body struct {
			Messages []hearth.Message `json:"messages"`
		}
		if err := json.Unmarshal(r.body, &body); err != nil || body.Messages == nil {
			t.Fatalf("search body %s: %v", r.body, err)
		}
		return body.Messages
	}
	got := search("kid", "family", "q=PIZ")
	if len(got) != 2 || got[0].ID != "m2" || got[1].ID != "m1" {
		t.Fatalf("q=PIZ: %+v, want m2 then m1", got)
	}
	if got := search("kid", "family", "q=pizza&limit=1"); len(got) != 1 || got[0].ID != "m2" {
		t.Fatalf("limit=1: %+v", got)
	}
	if got := search("kid", "family", "q=pizza+tonight"); len(got) != 1 || got[0].ID != "m1" {
		t.Fatalf("two words: %+v", got)
	}
	if got := search("kid", "family", "q=pizza&limit=999"); len(got) != 2 {
		t.Fatalf("a limit over the most is capped: %+v", got)
	}
	if got := search("kid", "family", "q=%21%21"); len(got) != 0 {
		t.Fatalf("no words: %+v", got)
	}
	if got := search("dad", "parents", "q=pizza"); len(got) != 1 || got[0].ID != "m3" {
		t.Fatalf("parents: %+v", got)
	}
	for _, c := range []struct {
		user, room, query string
		status            int
	}{
		{"kid", "family", "", http.StatusBadRequest},
		{"kid", "family", "q=", http.StatusBadRequest},
		{"kid", "family", "q=+++", http.StatusBadRequest},
		{"kid", "family", "q=" + strings.Repeat("a", 201), http.StatusBadRequest},
		{"kid", "family", "q=a&q=b", http.StatusBadRequest},
		{"kid", "family", "q=a&limit=0", http.StatusBadRequest},
		{"kid", "family", "q=a&limit=x", http.StatusBadRequest},
		{"kid", "family", "q=a&limit=-3", http.StatusBadRequest},
		{"kid", "family", "q=" + url.QueryEscape("\xff"), http.StatusBadRequest},
		{"kid", "parents", "q=pizza", http.StatusForbidden},
		{"kid", "nosuch", "q=pizza", http.StatusNotFound},
		{"kid", "Bad!", "q=pizza", http.StatusBadRequest},
		{"", "family", "q=pizza", http.StatusUnauthorized},
	} {
		r := e.get(c.user, "/api/rooms/"+c.room+"/search?"+c.query)
		wantError(t, "search "+c.room+"?"+c.query, r, c.status)
	}
	if r := e.get("kid", "/api/rooms/family/search?q="+strings.Repeat("ü", 200)); r.status != http.StatusOK {
		t.Errorf("200 characters: %d", r.status)
	}
}
