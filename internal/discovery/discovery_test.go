package discovery

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

func TestParseList(t *testing.T) {
	for _, tc := range []struct {
		in   []string
		want []string
		err  bool
	}{
		{in: []string{"10.0.0.1:2375", " 10.0.0.2:2375 "}, want: []string{"10.0.0.1:2375", "10.0.0.2:2375"}},
		{in: []string{"10.0.0.[13:15]:2375"}, want: []string{"10.0.0.13:2375", "10.0.0.14:2375", "10.0.0.15:2375"}},
		{in: []string{"node-[08:10]:2375"}, want: []string{"node-08:2375", "node-09:2375", "node-10:2375"}},
		{in: []string{"# comment", "", "unix:///run/d.sock # trailing"}, want: []string{"unix:///run/d.sock"}},
		{in: []string{"h[1:2]-[1:2]:1"}, want: []string{"h1-1:1", "h1-2:1", "h2-1:1", "h2-2:1"}},
		{in: []string{"10.0.0.[5:3]:2375"}, err: true},
		{in: []string{"10.0.0.[x]:2375"}, err: true},
	} {
		got, err := ParseList(tc.in)
		if tc.err {
			if err == nil {
				t.Errorf("ParseList(%q): want error, got %v", tc.in, got)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ParseList(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
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
