package history

import (
	"errors"
	"fmt"
	"testing"
)

func TestPushSubscriptions(t *testing.T) {
	s, path := openStore(t)
	sub := func(user, ep string) PushSubscription {
		return PushSubscription{User: user, Endpoint: ep, P256dh: "k", Auth: "a"}
	}
	for i := range 3 {
		if err := s.AddPushSubscription(sub("dad", fmt.Sprintf("https://p/%d", i)), 3); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.AddPushSubscription(sub("dad", "https://p/9"), 3); !errors.Is(err, ErrTooManySubscriptions) {
		t.Errorf("a fourth of three: %v", err)
	}
	replaced := sub("dad", "https://p/1")
	replaced.Auth = "b"
	if err := s.AddPushSubscription(replaced, 3); err != nil {
		t.Errorf("replacing at the limit: %v", err)
	}
	// "da" is a prefix of "dad": its subscriptions are its own.
	if err := s.AddPushSubscription(sub("da", "https://p/x"), 3); err != nil {
		t.Fatal(err)
	}
	got, _ := s.PushSubscriptions("dad")
	if len(got) != 3 || got[1].Auth != "b" {
		t.Errorf("dad's: %+v", got)
	}
	if got, _ := s.PushSubscriptions("da"); len(got) != 1 {
		t.Errorf("da's: %+v", got)
	}
	if ok, _ := s.DeletePushSubscription("da", "https://p/0"); ok {
		t.Error("da deleted dad's subscription")
	}
	if ok, _ := s.DeletePushSubscription("dad", "https://p/0"); !ok {
		t.Error("dad could not delete his")
	}
	if err := s.AddPushSubscription(sub("bad name!", "https://p"), 3); !errors.Is(err, ErrBadMessage) {
		t.Errorf("bad user: %v", err)
	}

	if err := s.SetMuted("dad", "family", true); err != nil {
		t.Fatal(err)
	}
	s.SetMuted("dad", "parents", true)
	s.SetMuted("dad", "parents", false)
	if m, _ := s.Muted("dad", "family"); !m {
		t.Error("family not muted")
	}
	if m, _ := s.MutedRooms("dad"); len(m) != 1 || !m["family"] {
		t.Errorf("muted rooms %v", m)
	}
	if m, _ := s.MutedRooms("da"); len(m) != 0 {
		t.Errorf("da's muted rooms %v", m)
	}

	// All of it is in the file.
	s.Close()
	s2, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if got, _ := s2.PushSubscriptions("dad"); len(got) != 2 {
		t.Errorf("after reopening: %+v", got)
	}
	if m, _ := s2.Muted("dad", "family"); !m {
		t.Error("the mute is gone after reopening")
	}
}

func TestDevices(t *testing.T) {
	s, _ := openStore(t)
	if err := s.AddDevice(Device{ID: "d1", User: "dad", Name: "x", CreatedAt: 1, LastUsed: 1}); err != nil {
		t.Fatal(err)
	}
	if err := s.AddDevice(Device{ID: "bad id!", User: "dad"}); !errors.Is(err, ErrBadMessage) {
		t.Errorf("bad id: %v", err)
	}
	if err := s.TouchDevice("d1", 5); err != nil {
		t.Fatal(err)
	}
	all, _ := s.Devices()
	if len(all) != 1 || all[0].LastUsed != 5 || all[0].User != "dad" {
		t.Errorf("devices %+v", all)
	}
	if ok, _ := s.DeleteDevice("kid", "d1"); ok {
		t.Error("kid deleted dad's device")
	}
	if ok, _ := s.DeleteDevice("dad", "d1"); !ok {
		t.Error("dad could not delete his device")
	}
	if all, _ := s.Devices(); len(all) != 0 {
		t.Errorf("after deleting: %+v", all)
	}
}
