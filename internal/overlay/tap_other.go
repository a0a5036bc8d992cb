//go:build !linux

package overlay

import (
	"errors"
	"io"
)

// openTap: TAP devices are Linux's here.
func openTap(name string) (io.ReadWriteCloser, error) {
	return nil, errors.New("overlay: encrypted networks need Linux's TAP devices")
}
