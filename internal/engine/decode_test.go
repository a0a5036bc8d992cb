package engine

import (
	"encoding/json"
	"strings"
	"testing"
)

// decodeBody reads answers through pooled buffers: a kept json.RawMessage
// is a copy of its own (a later answer read into the same buffer leaves it
// alone); bad or empty answers are errors.
func TestDecodeBody(t *testing.T) {
	var first, second json.RawMessage
	if err := decodeBody(strings.NewReader(`[{"Id":"aaaa"}]`+"\n"), -1, &first); err != nil {
		t.Fatal(err)
	}
	if err := decodeBody(strings.NewReader(`[{"Id":"bbbb"}]`), 15, &second); err != nil {
		t.Fatal(err)
	}
	if string(first) != `[{"Id":"aaaa"}]` || string(second) != `[{"Id":"bbbb"}]` {
		t.Errorf("kept answers %s and %s", first, second)
	}
	var v struct{ Name string }
	if err := decodeBody(strings.NewReader(`{"Name":"node1","Other":1}`), -1, &v); err != nil || v.Name != "node1" {
		t.Errorf("decoded %+v, %v", v, err)
	}
	big := `["` + strings.Repeat("x", 3*maxKeptReadBuf) + `"]`
	var raw json.RawMessage
	if err := decodeBody(strings.NewReader(big), int64(len(big)), &raw); err != nil || len(raw) != len(big) {
		t.Errorf("a %d-byte answer: %d bytes, %v", len(big), len(raw), err)
	}
	for _, bad := range []string{``, `  `, `[{"Id":`, `{"a":1} x`} {
		if err := decodeBody(strings.NewReader(bad), -1, &raw); err == nil {
			t.Errorf("%q decoded into a raw message", bad)
		}
		if err := decodeBody(strings.NewReader(bad), -1, &v); err == nil {
			t.Errorf("%q decoded into a struct", bad)
		}
	}
}
