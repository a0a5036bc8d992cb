package store

import (
	"regexp"
	"testing"
)

func TestNewID(t *testing.T) {
	shape := regexp.MustCompile(`^[0-9a-z]{25}$`)
	seen := map[string]bool{}
	for range 1000 {
		id := NewID()
		if !shape.MatchString(id) || seen[id] {
			t.Fatalf("id %q: not 25 base-36 characters, or seen before", id)
		}
		seen[id] = true
	}
}
