// Command console-bench measures the web console at scale: it starts a
// fleet of simulated engines (internal/enginesim), a shoal binary over
// them, and Debian's chromium (headless, chromedp), then reports the size
// and time of the console's map, the time until the page shows every
// container, the browser's JS heap and DOM size, how soon a container
// started through the API shows, and shoal's RSS before and after.
//
//	make build && go run ./test/ui/cmd/console-bench -engines 1000
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/shoal-dev/shoal/internal/enginesim"
)

func main() {
	engines := flag.Int("engines", 1000, "simulated engines")
	running := flag.Int("running", 24, "running containers per engine")
	stopped := flag.Int("stopped", 6, "stopped containers per engine")
	bin := flag.String("shoal", "bin/shoal", "the shoal binary (built with its console: make build)")
	flag.Parse()
	if err := run(*engines, *running, *stopped, *bin); err != nil {
		fmt.Fprintln(os.Stderr, "console-bench:", err)
		os.Exit(1)
	}
}

func run(n, running, stopped int, bin string) error {
	raiseNoFile()
	total := n * (running + stopped)
	t0 := time.Now()
	fleet, err := enginesim.StartFleet(n, func(i int) enginesim.Options {
		return enginesim.Options{Containers: running, Stopped: stopped, Images: 10, Labels: []string{"zone=z" + strconv.Itoa(i%3)}}
	})
	if err != nil {
		return err
	}
	defer fleet.Close()
	fmt.Printf("%d simulated engines, %d containers, started in %v\n", n, total, time.Since(t0).Round(time.Millisecond))

	dir, err := os.MkdirTemp("", "console-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	list := filepath.Join(dir, "engines")
	if err := os.WriteFile(list, []byte(strings.Join(fleet.Addrs(), "\n")+"\n"), 0o644); err != nil {
		return err
	}
	addr, err := freeAddr()
	if err != nil {
		return err
	}
	cmd := exec.Command(bin, "manage", "-H", "tcp://"+addr, "--log-level", "warn", "--data-dir", "", "file://"+list)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return err
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	base := "http://" + addr
	t1 := time.Now()
	if err := waitLoaded(base, total, 10*time.Minute); err != nil {
		return err
	}
	fmt.Printf("shoal shows %d containers after %v; RSS %.1f MiB\n", total, time.Since(t1).Round(time.Millisecond), rssMiB(cmd.Process.Pid))

	if err := measureMap(base); err != nil {
		return err
	}
	return measureBrowser(base, total, cmd.Process.Pid)
}

// measureMap times GET /ui/api/map (gzipped as a browser asks for it) and
// compares its size with /containers/json?all=1.
func measureMap(base string) error {
	hc := &http.Client{Transport: &http.Transport{DisableCompression: true}}
	var times []time.Duration
	var gz, raw, ps int
	for i := 0; i < 7; i++ {
		t := time.Now()
		b, err := fetch(hc, base+"/ui/api/map", "gzip")
		if err != nil {
			return err
		}
		times = append(times, time.Since(t))
		gz = len(b)
	}
	b, err := fetch(hc, base+"/ui/api/map", "")
	if err != nil {
		return err
	}
	raw = len(b)
	if b, err = fetch(hc, base+"/containers/json?all=1", ""); err != nil {
		return err
	}
	ps = len(b)
	sort.Slice(times, func(i, j int) bool { return times[i] < times[j] })
	fmt.Printf("GET /ui/api/map: median %v (min %v, max %v) over %d; %.2f MiB gzipped, %.2f MiB plain; /containers/json?all=1 is %.2f MiB\n",
		times[len(times)/2].Round(time.Millisecond), times[0].Round(time.Millisecond), times[len(times)-1].Round(time.Millisecond), len(times),
		float64(gz)/(1<<20), float64(raw)/(1<<20), float64(ps)/(1<<20))
	return nil
}

func measureBrowser(base string, total, pid int) error {
	path, err := exec.LookPath("chromium")
	if err != nil {
		return fmt.Errorf("chromium: %w", err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.WindowSize(1280, 800), chromedp.Flag("enable-precise-memory-info", true))
	actx, acancel := chromedp.NewExecAllocator(context.Background(), opts...)
	defer acancel()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	if err := chromedp.Do(ctx); err != nil {
		return err
	}
	tctx, tcancel := context.WithTimeout(ctx, 5*time.Minute)
	defer tcancel()
	t := time.Now()
	if err := chromedp.Do(tctx, chromedp.Navigate(base+"/ui/")); err != nil {
		return err
	}
	shown := fmt.Sprintf(`document.getElementById('total-containers')?.textContent?.startsWith('%d') && document.querySelectorAll('[data-node]').length > 0`, total)
	if _, err := chromedp.Run(tctx, chromedp.Poll[bool](shown, chromedp.WithPollingInterval(20*time.Millisecond), chromedp.WithPollingTimeout(5*time.Minute))); err != nil {
		return fmt.Errorf("the map never showed %d containers: %w", total, err)
	}
	load := time.Since(t)
	heap, _ := chromedp.Run(tctx, chromedp.Evaluate[float64](`performance.memory.usedJSHeapSize`))
	dom, _ := chromedp.Run(tctx, chromedp.Evaluate[int](`document.getElementsByTagName('*').length`))
	fmt.Printf("browser: map with %d containers shown %v after navigation; JS heap %.1f MiB; %d DOM elements (virtualized)\n",
		total, load.Round(time.Millisecond), heap/(1<<20), dom)

	// A container started through the API, seen on the map (scrolled to it by the filter).
	if err := chromedp.Do(tctx, chromedp.SendKeys(chromedp.ID("map-filter"), "benchlive")); err != nil {
		return err
	}
	hc := &http.Client{}
	resp, err := hc.Post(base+"/containers/create?name=benchlive", "application/json", strings.NewReader(`{"Image":"busybox","Cmd":["sleep","1d"]}`))
	if err != nil {
		return err
	}
	var created struct{ Id string }
	_ = json.NewDecoder(resp.Body).Decode(&created)
	resp.Body.Close()
	t = time.Now()
	if resp, err = hc.Post(base+"/containers/"+created.Id+"/start", "", nil); err != nil {
		return err
	}
	resp.Body.Close()
	if _, err := chromedp.Run(tctx, chromedp.Poll[bool](`!!document.querySelector('[data-container="benchlive"][data-state="running"]')`,
		chromedp.WithPollingInterval(10*time.Millisecond), chromedp.WithPollingTimeout(30*time.Second))); err != nil {
		return fmt.Errorf("benchlive never showed: %w", err)
	}
	fmt.Printf("a container started through the API showed running on the map %v after its start returned\n", time.Since(t).Round(time.Millisecond))
	fmt.Printf("shoal RSS with the console open: %.1f MiB\n", rssMiB(pid))
	return nil
}

func fetch(hc *http.Client, url, enc string) ([]byte, error) {
	req, _ := http.NewRequest("GET", url, nil)
	if enc != "" {
		req.Header.Set("Accept-Encoding", enc)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return nil, fmt.Errorf("GET %s: %d %s", url, resp.StatusCode, bytes.TrimSpace(b))
	}
	return b, err
}

func waitLoaded(base string, containers int, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	got := -1
	for time.Now().Before(deadline) {
		if resp, err := http.Get(base + "/info"); err == nil {
			var info struct{ Containers int }
			_ = json.NewDecoder(resp.Body).Decode(&info)
			resp.Body.Close()
			if got = info.Containers; got == containers {
				return nil
			}
		}
		time.Sleep(250 * time.Millisecond)
	}
	return fmt.Errorf("after %v shoal shows %d of %d containers", limit, got, containers)
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func rssMiB(pid int) float64 {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb / 1024
		}
	}
	return 0
}

// raiseNoFile lifts the open-files limit: the fleet and shoal hold a few
// connections per engine.
func raiseNoFile() {
	var lim syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim) == nil && lim.Cur < lim.Max {
		lim.Cur = lim.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
	}
}
