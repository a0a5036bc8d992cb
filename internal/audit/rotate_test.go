package audit

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// writeLines writes lines "line 00\n" ... of 8 bytes each, from first.
func writeLines(t *testing.T, f *rotatingFile, first, n int) {
	t.Helper()
	for i := first; i < first+n; i++ {
		if _, err := fmt.Fprintf(f, "line %02d\n", i); err != nil {
			t.Fatal(err)
		}
	}
}

func TestRotationKeepsMaxFiles(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "audit.log")
	f, err := openRotating(path, 24, 2) // three lines a file
	if err != nil {
		t.Fatal(err)
	}
	writeLines(t, f, 0, 10)
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	// 10 lines: 0-2 dropped with the third rotation, 3-5 in .2, 6-8 in .1, 9 current.
	for file, want := range map[string]string{
		path:        "line 09\n",
		path + ".1": "line 06\nline 07\nline 08\n",
		path + ".2": "line 03\nline 04\nline 05\n",
	} {
		if got := readFile(t, file); got != want {
			t.Errorf("%s = %q, want %q", filepath.Base(file), got, want)
		}
	}
	if _, err := os.Stat(path + ".3"); !os.IsNotExist(err) {
		t.Errorf("audit.log.3 exists (%v), want at most 2 rotated files", err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("audit.log mode %v (%v), want 0600", fi.Mode().Perm(), err)
	}
}

// A restarted log continues the file and counts its size.
func TestRotationContinuesExistingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	f, err := openRotating(path, 24, 1)
	if err != nil {
		t.Fatal(err)
	}
	writeLines(t, f, 0, 2)
	f.Close()
	if f, err = openRotating(path, 24, 1); err != nil {
		t.Fatal(err)
	}
	writeLines(t, f, 2, 2)
	f.Close()
	if got, want := readFile(t, path+".1"), "line 00\nline 01\nline 02\n"; got != want {
		t.Errorf("audit.log.1 = %q, want %q", got, want)
	}
	if got := readFile(t, path); got != "line 03\n" {
		t.Errorf("audit.log = %q, want line 03", got)
	}
}

func TestRotationWithoutKeptFilesOrSize(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.log")
	f, _ := openRotating(path, 16, 0)
	writeLines(t, f, 0, 5)
	f.Close()
	if got := readFile(t, path); got != "line 04\n" {
		t.Errorf("with no rotated files kept: %q, want the last line only", got)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("%d files, want audit.log only", len(ents))
	}

	path = filepath.Join(dir, "never.log")
	f, _ = openRotating(path, 0, 3)
	writeLines(t, f, 0, 50)
	f.Close()
	if got := readFile(t, path); strings.Count(got, "\n") != 50 {
		t.Errorf("max size 0 rotated: %d lines in the file", strings.Count(got, "\n"))
	}
}

// A batch larger than the size goes whole into a file: a line is never
// split across two.
func TestRotationNeverSplitsAWrite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	f, _ := openRotating(path, 10, 3)
	f.Write([]byte("short\n"))
	f.Write([]byte(strings.Repeat("x", 30) + "\n"))
	f.Close()
	if got := readFile(t, path); got != strings.Repeat("x", 30)+"\n" {
		t.Errorf("audit.log = %q", got)
	}
	if got := readFile(t, path+".1"); got != "short\n" {
		t.Errorf("audit.log.1 = %q", got)
	}
}
