package shoaltest

import (
	"slices"
	"testing"
)

func TestAddStep(t *testing.T) {
	var list []Obs
	for _, s := range []string{"ls", "ls", "ls [exit]", "ls"} {
		list = AddStep(list, s, "v")
	}
	var steps []string
	for _, o := range list {
		steps = append(steps, o.Step)
	}
	// "ls [exit]" is another step: it does not count as a repeat of "ls".
	want := []string{"ls", "ls #2", "ls [exit]", "ls #3"}
	if !slices.Equal(steps, want) {
		t.Errorf("steps %q, want %q", steps, want)
	}
}
