package discovery

import (
	"bytes"
	"context"
	"os"
	"slices"
	"strings"
	"time"
)

// File reads engine addresses from a file, one a line ('#' comments,
// [a:b] ranges), and re-reads it when it changes.
type File struct {
	Path     string
	Interval time.Duration // how often to look for changes; default 1s
	OnError  func(error)
}

// Watch reports the file's list at once and after every change.
func (f *File) Watch(ctx context.Context, update func([]string)) error {
	iv := f.Interval
	if iv <= 0 {
		iv = time.Second
	}
	var last []byte
	var lastList []string
	first := true
	t := time.NewTicker(iv)
	defer t.Stop()
	for {
		b, err := os.ReadFile(f.Path)
		switch {
		case err != nil:
			if f.OnError != nil {
				f.OnError(err)
			}
		case first || !bytes.Equal(b, last):
			last = b
			list, perr := ParseList(strings.Split(string(b), "\n"))
			if perr != nil {
				if f.OnError != nil {
					f.OnError(perr)
				}
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

// List reads the file once.
func (f *File) List(context.Context) ([]string, error) {
	b, err := os.ReadFile(f.Path)
	if err != nil {
		return nil, err
	}
	return ParseList(strings.Split(string(b), "\n"))
}
