// Command ovbench measures a TCP path between two containers: bulk
// throughput and request/response round trips. scripts/bench-overlay.sh
// runs it (statically linked, bind-mounted into busybox containers) over an
// overlay network and over the nodes' own addresses.
//
//	ovbench serve [-addr :5001]
//	ovbench tput  -addr IP:5001 [-for 5s]   → MB/s and Gbit/s
//	ovbench rr    -addr IP:5001 [-n 2000]   → round trip p50 and p99 of 64-byte requests
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: ovbench serve|tput|rr [flags]")
		os.Exit(2)
	}
	fs := flag.NewFlagSet(os.Args[1], flag.ExitOnError)
	addr := fs.String("addr", ":5001", "address to listen on (serve) or to reach")
	dur := fs.Duration("for", 5*time.Second, "how long tput sends")
	n := fs.Int("n", 2000, "round trips of rr")
	fs.Parse(os.Args[2:])
	var err error
	switch os.Args[1] {
	case "serve":
		err = serve(*addr)
	case "tput":
		err = tput(*addr, *dur)
	case "rr":
		err = rr(*addr, *n)
	default:
		err = fmt.Errorf("unknown mode %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "ovbench:", err)
		os.Exit(1)
	}
}

// serve discards what a 'T' connection sends (and closes when it ends)
// and echoes the 64-byte requests of a 'P' connection.
func serve(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	for {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		go func() {
			defer c.Close()
			mode := make([]byte, 1)
			if _, err := io.ReadFull(c, mode); err != nil {
				return
			}
			if mode[0] == 'T' {
				io.Copy(io.Discard, c)
				return
			}
			buf := make([]byte, 64)
			for {
				if _, err := io.ReadFull(c, buf); err != nil {
					return
				}
				if _, err := c.Write(buf); err != nil {
					return
				}
			}
		}()
	}
}

// tput sends for d and counts until the server has read it all.
func tput(addr string, d time.Duration) error {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if _, err := c.Write([]byte{'T'}); err != nil {
		return err
	}
	buf := make([]byte, 128<<10)
	var sent int64
	start := time.Now()
	for time.Since(start) < d {
		n, err := c.Write(buf)
		sent += int64(n)
		if err != nil {
			return err
		}
	}
	c.(*net.TCPConn).CloseWrite()
	io.Copy(io.Discard, c) // the server closes once it has read everything
	secs := time.Since(start).Seconds()
	fmt.Printf("tput %.0f MB/s %.2f Gbit/s\n", float64(sent)/secs/1e6, float64(sent)*8/secs/1e9)
	return nil
}

// rr times n request/response round trips of 64 bytes.
func rr(addr string, n int) error {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	c.(*net.TCPConn).SetNoDelay(true)
	if _, err := c.Write([]byte{'P'}); err != nil {
		return err
	}
	r := bufio.NewReader(c)
	buf := make([]byte, 64)
	rtts := make([]time.Duration, 0, n)
	for range n {
		t0 := time.Now()
		if _, err := c.Write(buf); err != nil {
			return err
		}
		if _, err := io.ReadFull(r, buf); err != nil {
			return err
		}
		rtts = append(rtts, time.Since(t0))
	}
	slices.Sort(rtts)
	fmt.Printf("rr p50 %d us p99 %d us\n", rtts[n/2].Microseconds(), rtts[n*99/100].Microseconds())
	return nil
}
