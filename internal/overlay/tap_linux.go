package overlay

import (
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// openTap opens (creating) the TAP device name: Ethernet frames, no
// packet information header. The device lives as long as the file is
// open (it is not made persistent), so an agent that stops takes it
// away and one that starts makes it again.
func openTap(name string) (io.ReadWriteCloser, error) {
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open /dev/net/tun: %w", err)
	}
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	ifr.SetUint16(unix.IFF_TAP | unix.IFF_NO_PI)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("TUNSETIFF %s: %w", name, err)
	}
	// non-blocking: reads wait in Go's poller, and Close ends them
	return os.NewFile(uintptr(fd), "/dev/net/tun:"+name), nil
}
