package manager

import (
	"bytes"
	"strings"
	"testing"
)

// An import's merged stream ends with one status that is exactly an image
// ID, as from one engine (SDKs take the last status for the new image's
// ID); other progress stays marked with its node.
func TestImportStreamEndsWithOneImageID(t *testing.T) {
	idA, idB := "sha256:"+strings.Repeat("a", 64), "sha256:"+strings.Repeat("b", 64)
	var out bytes.Buffer
	sm := &streamMerger{w: &out, imageIDs: map[string]string{}}
	sm.copyFrom("e2", strings.NewReader(`{"status":"`+idB+`"}`+"\n"))
	sm.done("e2")
	sm.copyFrom("e1", strings.NewReader(`{"status":"Downloading","progressDetail":{}}`+"\n"+`{"status":"`+idA+`"}`+"\n"))
	sm.done("e1")
	if err := sm.finish(true); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 || lines[0] != `{"progressDetail":{},"status":"e1: Downloading"}` || lines[1] != `{"status":"`+idA+`"}` {
		t.Errorf("merged import stream:\n%s", out.String())
	}

	// A node that failed fails the import: no image ID after the error.
	out.Reset()
	sm = &streamMerger{w: &out, imageIDs: map[string]string{}}
	sm.copyFrom("e1", strings.NewReader(`{"status":"`+idA+`"}`+"\n"))
	sm.done("e1")
	sm.copyFrom("e2", strings.NewReader(`{"errorDetail":{"message":"disk full"},"error":"disk full"}`+"\n"))
	sm.finish(true)
	if s := out.String(); strings.Contains(s, idA) || !strings.Contains(s, `"error":"e2: disk full"`) {
		t.Errorf("import failed on one node:\n%s", s)
	}
}

func TestIsImageID(t *testing.T) {
	for v, want := range map[string]bool{
		"sha256:" + strings.Repeat("0f", 32):    true,
		"sha256:" + strings.Repeat("0F", 32):    false,
		"sha256:abc":                            false,
		strings.Repeat("a", 64):                 false,
		"e1: sha256:" + strings.Repeat("a", 64): false,
	} {
		if isImageID(v) != want {
			t.Errorf("isImageID(%q) = %v", v, !want)
		}
	}
}
