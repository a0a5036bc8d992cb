package audit

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// rotatingFile appends to path and, when a write would take the file past
// maxBytes, first moves it to path.1 (path.1 to path.2 and so on, dropping
// path.<maxFiles>). It is used by the log's one writer goroutine only, so
// it has no lock.
type rotatingFile struct {
	path     string
	maxBytes int64 // 0: never rotate
	maxFiles int   // rotated files kept; 0: the log restarts empty
	f        *os.File
	size     int64
}

// The audit trail says who did what on every host: readable by its owner
// (root, or the group an operator gives the directory) only.
const (
	fileMode = 0o600
	dirMode  = 0o750
)

func openRotating(path string, maxBytes int64, maxFiles int) (*rotatingFile, error) {
	if err := os.MkdirAll(filepath.Dir(path), dirMode); err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	r := &rotatingFile{path: path, maxBytes: maxBytes, maxFiles: maxFiles}
	if err := r.open(); err != nil {
		return nil, err
	}
	return r, nil
}

// open opens path for appending; an existing log is continued, not
// truncated, so a restart keeps the trail.
func (r *rotatingFile) open() error {
	f, err := os.OpenFile(r.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, fileMode)
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("audit: %w", err)
	}
	r.f, r.size = f, fi.Size()
	return nil
}

// Write writes p whole into the current file: lines are never split
// across two files. A p larger than maxBytes goes into a file of its own.
func (r *rotatingFile) Write(p []byte) (int, error) {
	var rotErr error
	if r.maxBytes > 0 && r.size > 0 && r.size+int64(len(p)) > r.maxBytes {
		rotErr = r.rotate()
	}
	n, err := r.f.Write(p)
	r.size += int64(n)
	if err == nil {
		err = rotErr
	}
	return n, err
}

// rotate shifts the rotated files up by one and starts an empty log. If
// a file cannot be moved the log is reopened all the same, so that the
// trail goes on (in a file over its size) rather than stop.
func (r *rotatingFile) rotate() error {
	_ = r.f.Close() // it may be closed already: a reopen failed before
	moveErr := r.shift()
	if err := r.open(); err != nil {
		return errors.Join(moveErr, err)
	}
	if moveErr != nil {
		return fmt.Errorf("audit: rotating %s: %w", r.path, moveErr)
	}
	return nil
}

// shift moves path.N-1 to path.N ... path to path.1; with no rotated
// files kept it removes path.
func (r *rotatingFile) shift() error {
	if r.maxFiles <= 0 {
		if err := os.Remove(r.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return nil
	}
	for i := r.maxFiles - 1; i >= 1; i-- {
		if err := os.Rename(r.rotated(i), r.rotated(i+1)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return os.Rename(r.path, r.rotated(1))
}

func (r *rotatingFile) rotated(i int) string { return fmt.Sprintf("%s.%d", r.path, i) }

func (r *rotatingFile) Close() error { return r.f.Close() }
