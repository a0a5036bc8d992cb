// Command meshprobe opens a new HTTP connection to a published port at a
// fixed pace and prints one line per request: its start (Unix
// milliseconds), ok or fail, and how long it took (ms).
// scripts/bench-mesh-failover.sh runs it while a node dies to time the
// routing mesh's failover.
//
//	meshprobe -url http://IP:8080/ [-every 50ms] [-timeout 1s] [-for 30s]
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync"
	"time"
)

func main() {
	url := flag.String("url", "", "the URL to get")
	every := flag.Duration("every", 50*time.Millisecond, "how often a request starts")
	timeout := flag.Duration("timeout", time.Second, "how long a request may take")
	dur := flag.Duration("for", 30*time.Second, "how long to probe")
	flag.Parse()
	if *url == "" {
		fmt.Fprintln(os.Stderr, "meshprobe: -url is needed")
		os.Exit(2)
	}
	hc := &http.Client{Timeout: *timeout, Transport: &http.Transport{DisableKeepAlives: true}}
	out := bufio.NewWriter(os.Stdout)
	var mu sync.Mutex
	var wg sync.WaitGroup
	tick := time.NewTicker(*every)
	defer tick.Stop()
	for end := time.Now().Add(*dur); time.Now().Before(end); <-tick.C {
		wg.Go(func() {
			start := time.Now()
			ok := get(hc, *url)
			mu.Lock()
			defer mu.Unlock()
			fmt.Fprintf(out, "%d %s %d\n", start.UnixMilli(), map[bool]string{true: "ok", false: "fail"}[ok], time.Since(start).Milliseconds())
		})
	}
	wg.Wait()
	out.Flush()
}

func get(hc *http.Client, url string) bool {
	resp, err := hc.Get(url)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	_, err = io.Copy(io.Discard, resp.Body)
	return err == nil && resp.StatusCode == http.StatusOK
}
