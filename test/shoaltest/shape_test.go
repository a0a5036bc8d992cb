package shoaltest

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestKeyPaths(t *testing.T) {
	var v any
	if err := json.Unmarshal([]byte(`[{"ID":"x","Spec":{"Labels":{"a":"1"},"Mode":{"Replicated":{"Replicas":1}}}}]`), &v); err != nil {
		t.Fatal(err)
	}
	skip := func(p string) bool { return strings.HasSuffix(p, ".Labels") }
	if got, want := KeyPaths(v, 3, skip), "[].ID [].Spec [].Spec.Labels [].Spec.Mode [].Spec.Mode.Replicated"; got != want {
		t.Fatalf("KeyPaths = %q, want %q", got, want)
	}
}
