package dockerapi

import (
	"testing"
	"time"
)

func TestQuota(t *testing.T) {
	q := newQuota(2, 3)
	for i, want := range []full{notFull, notFull, clientFull} {
		if got := q.take("a"); got != want {
			t.Fatalf("take %d by a: %v, want %v", i, got, want)
		}
	}
	if got := q.take(""); got != notFull {
		t.Fatalf("a unix client under the total: %v", got)
	}
	if got := q.take("b"); got != totalFull {
		t.Fatalf("b over the total: %v", got)
	}
	q.give("a")
	if got := q.take("b"); got != notFull {
		t.Fatalf("b after a gave one back: %v", got)
	}
	if q.open != 3 || q.byClient["a"] != 1 || q.byClient["b"] != 1 {
		t.Fatalf("open %d, by client %v", q.open, q.byClient)
	}
	q.give("a")
	if _, ok := q.byClient["a"]; ok {
		t.Fatal("a client with no place left is still counted")
	}
}

func TestRefusals(t *testing.T) {
	r := NewRefusals(time.Hour)
	if n, due := r.Note(); !due || n != 1 {
		t.Fatalf("first refusal: %d %v, want a line for 1", n, due)
	}
	for range 5 {
		if _, due := r.Note(); due {
			t.Fatal("a second line within the period")
		}
	}
	r.last = r.last.Add(-2 * time.Hour) // the period has passed
	if n, due := r.Note(); !due || n != 6 {
		t.Fatalf("after the period: %d %v, want a line for the 6 since", n, due)
	}
}
