package ui

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestConsole drives the console over the package's shoal and engines.
// The subtests share them and run in order: the last one stops an engine.
func TestConsole(t *testing.T) {
	t.Run("map shows a container run through the CLI within 2s", testMapLive)
	t.Run("events timeline filters", testEvents)
	t.Run("logs stream a line written after the page opened", testLogs)
	t.Run("exec terminal runs hostname", testExec)
	t.Run("scale changes a service", testScale)
	t.Run("a stopped engine turns its node red", testNodeDown)
}

func testMapLive(t *testing.T) {
	ctx := tab(t)
	open(t, ctx, "#/")
	waitJS(t, ctx, `document.querySelectorAll('[data-node]').length === 2`, 10*time.Second, "two nodes on the map")
	docker(t, "run", "-d", "--name", "uiweb", "busybox", "sleep", "600")
	t0 := time.Now()
	waitJS(t, ctx, `!!document.querySelector('.chips [data-container="uiweb"][data-state="running"]')`, 2*time.Second, "uiweb running on the map")
	t.Logf("the map showed uiweb %s after docker run returned", time.Since(t0).Round(time.Millisecond))
	waitJS(t, ctx, `document.getElementById('total-running').textContent.startsWith('1')`, 2*time.Second, "totals count it")
	shot(t, ctx, "map.png")
}

func testEvents(t *testing.T) {
	ctx := tab(t)
	open(t, ctx, "#/events")
	run(t, ctx, chromedp.SendKeys(chromedp.ID("ev-text"), "uiweb"))
	waitJS(t, ctx, `document.getElementById('live').classList.contains('on')`, 5*time.Second, "the event stream")
	docker(t, "pause", "uiweb")
	docker(t, "unpause", "uiweb")
	waitJS(t, ctx, `!!document.querySelector('[data-event="container unpause"]') && !!document.querySelector('[data-event="container pause"]')`, 5*time.Second, "uiweb's pause and unpause in the timeline")
	waitJS(t, ctx, `[...document.querySelectorAll('[data-event]')].every(e => e.textContent.includes('uiweb'))`, 2*time.Second, "only uiweb's events shown")
	shot(t, ctx, "events.png")
}

func testLogs(t *testing.T) {
	docker(t, "run", "-d", "--name", "uilog", "busybox", "sh", "-c", "echo first-line; exec sleep 600")
	ctx := tab(t)
	open(t, ctx, "#/container/uilog")
	waitJS(t, ctx, `(document.getElementById('logs')?.textContent ?? '').includes('first-line')`, 10*time.Second, "the first line")
	line := fmt.Sprintf("late-line-%d", time.Now().UnixNano())
	docker(t, "exec", "uilog", "sh", "-c", "echo "+line+" > /proc/1/fd/1")
	t0 := time.Now()
	waitJS(t, ctx, fmt.Sprintf(`document.getElementById('logs').textContent.includes(%q)`, line), 5*time.Second, "the line written after the page opened")
	t.Logf("the new log line showed %s after it was written", time.Since(t0).Round(time.Millisecond))
	shot(t, ctx, "logs.png")
}

func testExec(t *testing.T) {
	host := strings.TrimSpace(docker(t, "inspect", "-f", "{{.Config.Hostname}}", "uilog"))
	ctx := tab(t)
	open(t, ctx, "#/container/uilog")
	run(t, ctx, chromedp.WaitVisible(chromedp.ID("exec")), chromedp.Click(chromedp.ID("exec")))
	waitJS(t, ctx, termLines+`.some(l => l.includes('#'))`, 10*time.Second, "the shell's prompt")
	// Typed as the terminal takes a user's input (CDP's key events would
	// reach xterm.js twice, as keydown and as keypress).
	run(t, ctx, chromedp.Evaluate[chromedp.Void](`window.shoalTerminal.input('hostname\r', true)`))
	waitJS(t, ctx, fmt.Sprintf(termLines+`.some(l => l.trim() === %q)`, host), 5*time.Second, "hostname's answer "+host)
	waitJS(t, ctx, fmt.Sprintf(`[...document.querySelectorAll('.xterm-rows > div')].some(r => r.textContent.trim() === %q)`, host), 2*time.Second, "the answer on screen")
	shot(t, ctx, "exec.png")
}

func testScale(t *testing.T) {
	docker(t, "service", "create", "-d", "--name", "uisvc", "--replicas", "1", "busybox", "sleep", "600")
	ctx := tab(t)
	open(t, ctx, "#/service/uisvc")
	waitJS(t, ctx, `document.getElementById('replica-count')?.textContent === '1/1'`, 20*time.Second, "1/1 replicas")
	run(t, ctx, chromedp.Evaluate[chromedp.Void](`(() => {
		const i = document.getElementById('replicas');
		i.value = '3';
		i.dispatchEvent(new Event('input'));
		document.getElementById('scale').click();
	})()`))
	waitJS(t, ctx, `document.getElementById('replica-count')?.textContent === '3/3'`, 30*time.Second, "3/3 replicas")
	if out := strings.TrimSpace(docker(t, "service", "ls", "--filter", "name=uisvc", "--format", "{{.Replicas}}")); !strings.HasPrefix(out, "3/3") {
		t.Errorf("docker service ls: %q, want 3/3", out)
	}
	shot(t, ctx, "service.png")
}

func testNodeDown(t *testing.T) {
	ctx := tab(t)
	open(t, ctx, "#/")
	waitJS(t, ctx, `document.querySelector('[data-node="node2"]')?.dataset.status === 'Healthy'`, 10*time.Second, "node2 healthy")
	if err := bed.Kill(1); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	waitJS(t, ctx, `(() => {
		const n = document.querySelector('[data-node="node2"]');
		return n && n.classList.contains('down') && getComputedStyle(n).backgroundColor === 'rgb(58, 18, 20)';
	})()`, 10*time.Second, "node2 red")
	t.Logf("node2 turned red %s after its engine was killed", time.Since(t0).Round(time.Millisecond))
	waitJS(t, ctx, `document.getElementById('total-nodes').classList.contains('bad')`, 2*time.Second, "the totals show a node down")
	shot(t, ctx, "map-node-down.png")
}

// ---------------------------------------------------------------- helpers

// termLines is the console's terminal's buffer as an array of lines.
const termLines = `(() => {
	const b = window.shoalTerminal?.buffer.active, out = [];
	for (let i = 0; b && i < b.length; i++) out.push(b.getLine(i).translateToString(true));
	return out;
})()`

// tab opens a new tab of the package's browser for t.
func tab(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := chromedp.NewContext(browser)
	t.Cleanup(cancel)
	ctx, cancelT := context.WithTimeout(ctx, 60*time.Second)
	t.Cleanup(cancelT)
	return ctx
}

func open(t *testing.T, ctx context.Context, fragment string) {
	t.Helper()
	run(t, ctx, chromedp.Navigate("http://"+sh.Addr+"/ui/"+fragment))
	waitJS(t, ctx, `!!document.querySelector('#view > section')`, 10*time.Second, "the console to load (was it built? make build)")
}

func run(t *testing.T, ctx context.Context, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(ctx, actions...); err != nil {
		t.Fatalf("browser: %v", err)
	}
}

// waitJS waits until the JavaScript expression is true in the page.
func waitJS(t *testing.T, ctx context.Context, expr string, limit time.Duration, what string) {
	t.Helper()
	pctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	ok, err := chromedp.Run(pctx, chromedp.Poll[bool](expr, chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(limit)))
	if err != nil || !ok {
		body, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body.innerText.slice(0, 2000)`))
		shot(t, ctx, "failed-"+strings.ReplaceAll(t.Name(), "/", "_")+".png")
		t.Fatalf("waiting %s for %s: %v\npage:\n%s", limit, what, err, body)
	}
}

// shot saves a screenshot of the tab's viewport in shotsDir.
func shot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Logf("screenshot %s: %v", name, err)
		return
	}
	if err := os.WriteFile(filepath.Join(shotsDir, name), png, 0o644); err != nil {
		t.Logf("screenshot %s: %v", name, err)
	}
}

// docker runs the docker CLI against shoal and returns its output.
func docker(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, _, err := bed.Docker(ctx, sh.Host, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}
