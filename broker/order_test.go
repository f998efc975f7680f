package broker

import "testing"

func TestStampBlocksDoNotWrap(t *testing.T) {
	s := &stamps{}
	s.last.Store(1<<16 - 10)
	first := s.block(20)
	if first != 1<<16 {
		t.Fatalf("a block of 20 after %d starts at %d, want %d", 1<<16-10, first, 1<<16)
	}
	if got := s.next(); got != first+20 {
		t.Fatalf("next after the block = %d, want %d", got, first+20)
	}
	s.last.Store(5)
	if first := s.block(100); first != 6 {
		t.Fatalf("a block that fits starts at %d, want 6", first)
	}
	s.seen(3)
	if got := s.next(); got != 106 {
		t.Fatalf("seen lowered the counter: next = %d", got)
	}
	s.seen(1000)
	if got := s.next(); got != 1001 {
		t.Fatalf("next after seen(1000) = %d", got)
	}
}
