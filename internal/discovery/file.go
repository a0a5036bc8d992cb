package discovery

import (
	"bytes"
	"context"
	"os"
	"slices"
	"strings"
	"time"
)

// DefaultSettle is how long a changed discovery file must stay unchanged
// before its list is applied.
const DefaultSettle = 300 * time.Millisecond

// File reads engine addresses from a file, one a line ('#' comments,
// [a:b] ranges), and re-reads it when it changes.
//
// The file is read by path on every look, so a writer that renames a new
// file over it (or an editor that deletes and recreates it) is followed,
// not the replaced inode. A change is applied only once two reads Settle
// apart agree: a writer that truncates and then writes, or writes slowly,
// is seen when it is done, never as the empty or half-written file it
// leaves in between (which would remove engines from the pool). A file
// that is briefly missing keeps the last list.
type File struct {
	Path     string
	Interval time.Duration // how often to look for changes; default 1s
	Settle   time.Duration // how long a change must stay put; default DefaultSettle
	OnError  func(error)
}

// Watch reports the file's list at once and after every change.
func (f *File) Watch(ctx context.Context, update func([]string)) error {
	iv := f.Interval
	if iv <= 0 {
		iv = time.Second
	}
	var last []byte // the content last parsed, good or not
	var lastList []string
	first, seen := true, false // no list reported yet; last not yet set
	t := time.NewTicker(iv)
	defer t.Stop()
	for {
		b, err := os.ReadFile(f.Path)
		if err == nil && (!seen || !bytes.Equal(b, last)) {
			b, err = f.settled(ctx, b)
		}
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil:
			f.report(err)
		case !seen || !bytes.Equal(b, last):
			// A bad list (malformed, too many addresses) is reported once
			// and the last good one stays until the content changes.
			last, seen = b, true
			list, perr := ParseList(strings.Split(string(b), "\n"))
			if perr != nil {
				f.report(perr)
				break
			}
			if first || !slices.Equal(list, lastList) {
				update(list)
			}
			lastList, first = list, false
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// settled re-reads the file after the settle delay until a read agrees
// with the one before it, and returns that content. An error (the file
// vanished meanwhile) or the end of ctx stops it.
func (f *File) settled(ctx context.Context, b []byte) ([]byte, error) {
	settle := f.Settle
	if settle <= 0 {
		settle = DefaultSettle
	}
	t := time.NewTimer(settle)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-t.C:
		}
		again, err := os.ReadFile(f.Path)
		if err != nil || bytes.Equal(again, b) {
			return again, err
		}
		b = again
		t.Reset(settle)
	}
}

func (f *File) report(err error) {
	if f.OnError != nil {
		f.OnError(err)
	}
}

// List reads the file once it is not changing.
func (f *File) List(ctx context.Context) ([]string, error) {
	b, err := os.ReadFile(f.Path)
	if err != nil {
		return nil, err
	}
	if b, err = f.settled(ctx, b); err != nil {
		return nil, err
	}
	return ParseList(strings.Split(string(b), "\n"))
}
