package discovery

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseList(t *testing.T) {
	for _, tc := range []struct {
		in   []string
		want []string
		err  error
	}{
		{in: []string{"10.0.0.1:2375", " 10.0.0.2:2375 "}, want: []string{"10.0.0.1:2375", "10.0.0.2:2375"}},
		{in: []string{"10.0.0.[13:15]:2375"}, want: []string{"10.0.0.13:2375", "10.0.0.14:2375", "10.0.0.15:2375"}},
		{in: []string{"node-[08:10]:2375"}, want: []string{"node-08:2375", "node-09:2375", "node-10:2375"}},
		{in: []string{"# comment", "", "unix:///run/d.sock # trailing"}, want: []string{"unix:///run/d.sock"}},
		{in: []string{"h[1:2]-[1:2]:1"}, want: []string{"h1-1:1", "h1-2:1", "h2-1:1", "h2-2:1"}},
		{in: []string{"10.0.0.[5:3]:2375"}, err: ErrBadRange},
		{in: []string{"10.0.0.[x]:2375"}, err: ErrBadRange},
		// Bracketed IPv6 addresses are hosts, not ranges (they were
		// refused as malformed ranges).
		{in: []string{"[::1]:2375"}, want: []string{"[::1]:2375"}},
		{in: []string{"tcp://[fd00::1]:2375"}, want: []string{"tcp://[fd00::1]:2375"}},
		{in: []string{"[fd00::1]"}, want: []string{"[fd00::1]"}},
		{in: []string{"https://[::]:2376/"}, want: []string{"https://[::]:2376/"}},
		{in: []string{"[fe80::1%eth0]:2375"}, want: []string{"[fe80::1%eth0]:2375"}},
		{in: []string{"[::ffff:10.0.0.1]:2375"}, want: []string{"[::ffff:10.0.0.1]:2375"}},
		{in: []string{"[fd00::1]:[2375:2376]"}, want: []string{"[fd00::1]:2375", "[fd00::1]:2376"}},
		{in: []string{"[1:2]:2375"}, want: []string{"1:2375", "2:2375"}}, // N:M is never an IPv6 address
		{in: []string{"[fd00::[1:5]]:2375"}, err: ErrBadRange},           // no ranges inside IPv6
		{in: []string{"[fd00::1]x:2375"}, err: ErrBadRange},
		{in: []string{"h.[fd00::1]:2375"}, err: ErrBadRange}, // IPv6 only as the whole host
		{in: []string{"[10.0.0.1]:2375"}, err: ErrBadRange},
		// Stray, unbalanced and nested brackets, empty ranges (the first
		// became "10.0.0.]1" and "10.0.0.]2").
		{in: []string{"10.0.0.][1:2]:2375"}, err: ErrBadRange},
		{in: []string{"10.0.0.1]:2375"}, err: ErrBadRange},
		{in: []string{"10.0.0.[1:2]]:2375"}, err: ErrBadRange},
		{in: []string{"10.0.0.[1:2:2375"}, err: ErrBadRange},
		{in: []string{"10.0.0.[:2375"}, err: ErrBadRange},
		{in: []string{"10.0.0.[[1:2]]:2375"}, err: ErrBadRange},
		{in: []string{"10.0.0.[]:2375"}, err: ErrBadRange},
		{in: []string{"10.0.0.[:]:2375"}, err: ErrBadRange},
		{in: []string{"10.0.0.[1:]:2375"}, err: ErrBadRange},
		{in: []string{"10.0.0.[:2]:2375"}, err: ErrBadRange},
		{in: []string{"10.0.0.[+1:2]:2375"}, err: ErrBadRange},
		{in: []string{"10.0.0.[1:99999999999999999999]:2375"}, err: ErrBadRange},
		{in: []string{"ok:1", "10.0.0.[2:1]:2375"}, err: ErrBadRange},
		// The cap (the first ran shoal out of memory).
		{in: []string{"10.[0:65535].[0:65535].1:2375"}, err: ErrTooManyAddresses},
		{in: []string{"h[0:9223372036854775807]-[0:9223372036854775807]:1"}, err: ErrTooManyAddresses},
		{in: []string{"10.1.[0:255].[0:255]:2375", "10.2.0.1:2375"}, err: ErrTooManyAddresses},
		{in: []string{"10.1.[0:127].[0:255]:2375", "10.2.[0:127].[0:255]:2375", "x:1"}, err: ErrTooManyAddresses},
	} {
		got, err := ParseList(tc.in)
		if tc.err != nil {
			if !errors.Is(err, tc.err) {
				t.Errorf("ParseList(%q) = %d addresses, %v; want %v", tc.in, len(got), err, tc.err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ParseList(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}

// TestParseListAtTheCap: a list of exactly MaxAddresses expands, in one
// entry or several, so the 10,000 engines a manager is built for fit.
func TestParseListAtTheCap(t *testing.T) {
	for _, tc := range []struct {
		in   []string
		n    int
		last string
	}{
		{[]string{"10.1.[0:255].[0:255]:2375"}, MaxAddresses, "10.1.255.255:2375"},
		{[]string{"10.1.[0:127].[0:255]:2375", "10.2.[0:127].[0:255]:2375"}, MaxAddresses, "10.2.127.255:2375"},
		{[]string{"10.0.[0:39].[1:250]:2375"}, 10000, "10.0.39.250:2375"},
	} {
		got, err := ParseList(tc.in)
		if err != nil {
			t.Fatalf("ParseList(%q): %v", tc.in, err)
		}
		if len(got) != tc.n || got[len(got)-1] != tc.last {
			t.Fatalf("ParseList(%q) = %d addresses, last %q; want %d, last %q", tc.in, len(got), got[len(got)-1], tc.n, tc.last)
		}
	}
}

// TestParseListRefusesBeforeExpanding: a list past the cap costs nothing
// to refuse, and the error names the entry and the limit.
func TestParseListRefusesBeforeExpanding(t *testing.T) {
	entry := "10.[0:65535].[0:65535].[0:65535].1:2375"
	var err error
	allocs := testing.AllocsPerRun(3, func() { _, err = ParseList([]string{"a:1", entry}) })
	if !errors.Is(err, ErrTooManyAddresses) {
		t.Fatalf("err = %v, want ErrTooManyAddresses", err)
	}
	if allocs > 100 {
		t.Errorf("refusing took %v allocations; the list must not be expanded", allocs)
	}
	for _, want := range []string{entry, fmt.Sprint(MaxAddresses), "281474976710656"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	_, err = New("nodes://10.1.[0:255].[0:255]:2375,10.2.0.[1:3]:2375")
	if !errors.Is(err, ErrTooManyAddresses) || !strings.Contains(err.Error(), "10.2.0.[1:3]:2375") {
		t.Errorf("list past the cap: %v; want ErrTooManyAddresses naming the entry that crosses it", err)
	}
}

func TestNew(t *testing.T) {
	b, err := New("nodes://a:1,b:[1:2]")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(b, Static{"a:1", "b:1", "b:2"}) {
		t.Fatalf("got %v", b)
	}
	if _, err := New("bogus://x"); err == nil {
		t.Fatal("want error for unknown scheme")
	}
	if f, err := New("file:///etc/x"); err != nil || f.(*File).Path != "/etc/x" {
		t.Fatalf("file: %v %v", f, err)
	}
}

func TestFileWatch(t *testing.T) {
	p := filepath.Join(t.TempDir(), "engines")
	if err := os.WriteFile(p, []byte("a:1\n# c\nb:[1:2]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	updates := make(chan []string, 10)
	f := &File{Path: p, Interval: 10 * time.Millisecond}
	go f.Watch(ctx, func(a []string) { updates <- a })
	want := func(exp []string) {
		t.Helper()
		select {
		case got := <-updates:
			if !reflect.DeepEqual(got, exp) {
				t.Fatalf("got %v want %v", got, exp)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("no update, want %v", exp)
		}
	}
	want([]string{"a:1", "b:1", "b:2"})
	if err := os.WriteFile(p, []byte("a:1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	want([]string{"a:1"})
	// A change that keeps the same list (a comment) is not an update.
	if err := os.WriteFile(p, []byte("a:1 # same\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte("a:1\nc:3\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	want([]string{"a:1", "c:3"})
}

// watchFile starts a File watcher on p and returns the lists it reports.
func watchFile(t *testing.T, p string) <-chan []string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	updates := make(chan []string, 100)
	f := &File{Path: p, Interval: 5 * time.Millisecond}
	go f.Watch(ctx, func(a []string) { updates <- a })
	return updates
}

// slowWrite writes lines to w one at a time with a pause between them, as
// a writer that renders its output as it goes.
func slowWrite(t *testing.T, w *os.File, lines []string) {
	t.Helper()
	for _, l := range lines {
		if _, err := w.WriteString(l + "\n"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

// expectOnly reads updates until want arrives, failing on any other list
// than want or the allowed earlier ones (an empty or half-written file).
func expectOnly(t *testing.T, updates <-chan []string, want []string, earlier ...[]string) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case got := <-updates:
			if reflect.DeepEqual(got, want) {
				return
			}
			ok := false
			for _, e := range earlier {
				ok = ok || reflect.DeepEqual(got, e)
			}
			if !ok {
				t.Fatalf("watcher reported %v while the file was being rewritten; want only %v", got, want)
			}
		case <-deadline:
			t.Fatalf("no update to %v", want)
		}
	}
}

func TestFileWatchTruncateThenSlowWrite(t *testing.T) {
	p := filepath.Join(t.TempDir(), "engines")
	first := []string{"a:1", "b:1", "c:1", "d:1"}
	if err := os.WriteFile(p, []byte("a:1\nb:1\nc:1\nd:1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	updates := watchFile(t, p)
	expectOnly(t, updates, first)
	w, err := os.OpenFile(p, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		t.Fatal(err)
	}
	next := []string{"e:1", "f:1", "g:1", "h:1"}
	slowWrite(t, w, next)
	expectOnly(t, updates, next, first)
}

func TestFileWatchRenameOverAndRecreate(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "engines")
	first := []string{"a:1", "b:1", "c:1"}
	if err := os.WriteFile(p, []byte("a:1\nb:1\nc:1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	updates := watchFile(t, p)
	expectOnly(t, updates, first)

	// A temp file written slowly, then renamed over: the watcher follows
	// the path, not the replaced inode.
	tmp, err := os.CreateTemp(dir, ".engines-*")
	if err != nil {
		t.Fatal(err)
	}
	second := []string{"d:1", "e:1", "f:1"}
	slowWrite(t, tmp, second)
	if err := os.Rename(tmp.Name(), p); err != nil {
		t.Fatal(err)
	}
	expectOnly(t, updates, second, first)

	// An editor that deletes the file and creates it again: briefly
	// missing, then empty, then half-written; none of that is applied.
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	w, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(30 * time.Millisecond)
	third := []string{"g:1", "h:1", "i:1"}
	slowWrite(t, w, third)
	expectOnly(t, updates, third, second)
}

// watchFileErrors is watchFile that also returns what the watcher reports
// through OnError.
func watchFileErrors(t *testing.T, p string) (<-chan []string, <-chan error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	updates := make(chan []string, 100)
	errs := make(chan error, 1000)
	f := &File{Path: p, Interval: 5 * time.Millisecond, Settle: 5 * time.Millisecond, OnError: func(err error) { errs <- err }}
	go f.Watch(ctx, func(a []string) { updates <- a })
	return updates, errs
}

func wantErr(t *testing.T, errs <-chan error, want error) {
	t.Helper()
	select {
	case err := <-errs:
		if !errors.Is(err, want) {
			t.Fatalf("OnError(%v), want %v", err, want)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("no error reported, want %v", want)
	}
}

// writeFile replaces p's content at once (a temp file renamed over it), so
// a watcher never sees it empty.
func writeFile(t *testing.T, p, content string) {
	t.Helper()
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, p); err != nil {
		t.Fatal(err)
	}
}

// TestFileWatchKeepsListOnBadContent: a file rewritten past the cap or with
// a malformed range is reported and the last good list stays in force.
func TestFileWatchKeepsListOnBadContent(t *testing.T) {
	p := filepath.Join(t.TempDir(), "engines")
	writeFile(t, p, "a:1\nb:[1:2]\n")
	updates, errs := watchFileErrors(t, p)
	expectOnly(t, updates, []string{"a:1", "b:1", "b:2"})

	writeFile(t, p, "a:1\n10.[0:65535].[0:65535].1:2375\n")
	wantErr(t, errs, ErrTooManyAddresses)
	writeFile(t, p, "a:1\n10.0.0.][1:2]:2375\n")
	wantErr(t, errs, ErrBadRange)
	select {
	case got := <-updates:
		t.Fatalf("bad content applied: %v", got)
	case <-time.After(50 * time.Millisecond):
	}
	writeFile(t, p, "a:1\n[::1]:2375\n")
	expectOnly(t, updates, []string{"a:1", "[::1]:2375"})
}

// TestFileWatchBadFirstContentReportedOnce: a bad file is reported once,
// not at every look, and its fix is applied.
func TestFileWatchBadFirstContentReportedOnce(t *testing.T) {
	p := filepath.Join(t.TempDir(), "engines")
	writeFile(t, p, "10.0.0.[5:3]:2375\n")
	updates, errs := watchFileErrors(t, p)
	wantErr(t, errs, ErrBadRange)
	time.Sleep(100 * time.Millisecond) // twenty looks at the unchanged file
	if n := len(errs); n != 0 {
		t.Fatalf("unchanged bad file reported %d more times", n)
	}
	writeFile(t, p, "10.0.0.[3:5]:2375\n")
	expectOnly(t, updates, []string{"10.0.0.3:2375", "10.0.0.4:2375", "10.0.0.5:2375"})
}

func TestFileListPastTheCap(t *testing.T) {
	p := filepath.Join(t.TempDir(), "engines")
	writeFile(t, p, "10.1.[0:255].[0:255]:2375\n10.2.0.1:2375\n")
	f := &File{Path: p, Settle: time.Millisecond}
	if got, err := f.List(context.Background()); !errors.Is(err, ErrTooManyAddresses) {
		t.Fatalf("List = %d addresses, %v; want ErrTooManyAddresses", len(got), err)
	}
}
