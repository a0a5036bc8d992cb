package overlay

import (
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// The TAP device's offloads (linux/if_tun.h): checksums and TCP
// segmentation are left to whoever receives the frame in the end.
const (
	tunCsum   = 0x01
	tunTSO4   = 0x02
	tunTSO6   = 0x04
	tunTSOECN = 0x08
)

// openTap opens (creating) the TAP device name: Ethernet frames after a
// virtio-net header (vnetHdrLen), no packet information header, with
// the offloads on, so that a TCP stream comes and goes in frames of up
// to 64 KiB that the receiving node's kernel segments (or not: its
// containers take them whole), not one syscall per 1.4 KB segment. The
// device lives as long as the file is open (it is not made
// persistent), so an agent that stops takes it away and one that
// starts makes it again.
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
	ifr.SetUint16(unix.IFF_TAP | unix.IFF_NO_PI | unix.IFF_VNET_HDR)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("TUNSETIFF %s: %w", name, err)
	}
	if err := unix.IoctlSetInt(fd, unix.TUNSETOFFLOAD, tunCsum|tunTSO4|tunTSO6|tunTSOECN); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("TUNSETOFFLOAD %s: %w", name, err)
	}
	// non-blocking: reads wait in Go's poller, and Close ends them
	return os.NewFile(uintptr(fd), "/dev/net/tun:"+name), nil
}
