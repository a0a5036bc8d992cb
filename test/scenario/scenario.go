// Package scenario holds manager scenarios written once and run twice:
// over simulated engines (internal/enginesim) with shoal in-process, in
// seconds and without root (this package's own tests), and over real
// dockerd engines with the shoal binary (test/e2e, test/sched). A scenario
// speaks to shoal with plain HTTP, so it checks the exact statuses and
// dockerd-style JSON messages a client gets.
package scenario

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// Env is what a scenario runs against: shoal in front of some engines.
type Env struct {
	// Shoal returns the Docker API address (tcp://host:port) of a shoal in
	// front of every engine, with every node ready, started with the extra
	// `manage` flags (e.g. --strategy binpack). What it starts ends with tb.
	// Without flags it may hand out a shoal shared by other tests.
	Shoal func(tb testing.TB, flags ...string) string
	// Engines are the engines' own Docker API addresses (tcp://host:port),
	// in the order of Nodes.
	Engines []string
	// Nodes are the engines' names as shoal shows them (their hostnames).
	Nodes []string
	// Image is an image every engine holds; Cmd keeps a container running.
	Image string
	Cmd   []string
	// Kill makes engine i fail as a crashed host would (for Rescheduling).
	Kill func(tb testing.TB, i int)
}

// client is a Docker API client for one endpoint that keeps the status and
// the raw body, so scenarios can assert on both.
type client struct {
	tb   testing.TB
	base string // http://host:port
	hc   *http.Client
}

func newClient(tb testing.TB, host string) *client {
	hc := &http.Client{Timeout: time.Minute, Transport: &http.Transport{MaxIdleConnsPerHost: 32}}
	tb.Cleanup(hc.CloseIdleConnections)
	return &client{tb: tb, base: "http://" + strings.TrimPrefix(host, "tcp://"), hc: hc}
}

// do sends one request and returns the status and body; a transport error
// fails the test.
func (c *client) do(method, path string, body any) (int, []byte) {
	c.tb.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			c.tb.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		c.tb.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		c.tb.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		c.tb.Fatalf("%s %s: reading the answer: %v", method, path, err)
	}
	return resp.StatusCode, b
}

// spec is the part of a create request scenarios set.
type spec struct {
	Image      string
	Cmd        []string
	Env        []string          `json:",omitempty"`
	Labels     map[string]string `json:",omitempty"`
	HostConfig struct {
		Memory int64    `json:",omitempty"`
		Links  []string `json:",omitempty"`
	}
}

func (env Env) spec(extraEnv ...string) spec {
	return spec{Image: env.Image, Cmd: env.Cmd, Env: extraEnv}
}

// create posts a create and returns status, the new ID (on 201) and the
// error message (otherwise).
func (c *client) create(name string, s spec) (status int, id, msg string) {
	c.tb.Helper()
	path := "/containers/create"
	if name != "" {
		path += "?name=" + name
	}
	st, b := c.do(http.MethodPost, path, s)
	if st == http.StatusCreated {
		var r struct {
			ID string `json:"Id"`
		}
		if err := json.Unmarshal(b, &r); err != nil || r.ID == "" {
			c.tb.Fatalf("create %s: 201 with %q", name, b)
		}
		return st, r.ID, ""
	}
	return st, "", message(c.tb, st, b)
}

// message decodes a dockerd-style error body, failing the test if it is not one.
func message(tb testing.TB, status int, b []byte) string {
	tb.Helper()
	var e struct {
		Message *string `json:"message"`
	}
	if err := json.Unmarshal(b, &e); err != nil || e.Message == nil {
		tb.Fatalf("status %d with a body that is not Docker's {\"message\": ...}: %q", status, b)
	}
	return *e.Message
}

// created creates a container (not started) and removes it when tb ends.
func (c *client) created(name string, s spec) string {
	c.tb.Helper()
	st, id, msg := c.create(name, s)
	if st != http.StatusCreated {
		c.tb.Fatalf("create %s: %d %s", name, st, msg)
	}
	c.removeAtEnd(id)
	return id
}

// run creates and starts a container and removes it when tb ends.
func (c *client) run(name string, s spec) string {
	c.tb.Helper()
	id := c.created(name, s)
	if st, b := c.do(http.MethodPost, "/containers/"+id+"/start", nil); st != http.StatusNoContent {
		c.tb.Fatalf("start %s: %d %s", name, st, b)
	}
	return id
}

// removeAtEnd removes the container when tb ends. One on an engine the
// scenario killed cannot be (503): the engines' own teardown removes it.
func (c *client) removeAtEnd(id string) {
	c.tb.Cleanup(func() {
		switch st, b := c.do(http.MethodDelete, "/containers/"+id+"?force=1", nil); st {
		case http.StatusNoContent, http.StatusNotFound:
		case http.StatusServiceUnavailable:
			c.tb.Logf("remove %s: its engine is down: %s", id, b)
		default:
			c.tb.Errorf("remove %s: %d %s", id, st, b)
		}
	})
}

// inspected is the part of shoal's container inspect scenarios look at.
type inspected struct {
	ID   string `json:"Id"`
	Name string
	Node *struct{ Name string }
}

func (c *client) inspect(ref string) (int, inspected, []byte) {
	c.tb.Helper()
	st, b := c.do(http.MethodGet, "/containers/"+ref+"/json", nil)
	var in inspected
	if st == http.StatusOK {
		if err := json.Unmarshal(b, &in); err != nil {
			c.tb.Fatalf("inspect %s: %v: %q", ref, err, b)
		}
	}
	return st, in, b
}

// nodeOf is the node shoal says the container runs on.
func (c *client) nodeOf(ref string) string {
	c.tb.Helper()
	st, in, b := c.inspect(ref)
	if st != http.StatusOK || in.Node == nil {
		c.tb.Fatalf("inspect %s: %d %s", ref, st, b)
	}
	return in.Node.Name
}

// uniq is a container name no other test or run uses.
func uniq(prefix string) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return prefix + "-" + hex.EncodeToString(b[:])
}

// names lists the names of the containers an engine holds (asked directly).
func names(tb testing.TB, engine string) []string {
	tb.Helper()
	st, b := newClient(tb, engine).do(http.MethodGet, "/containers/json?all=1", nil)
	if st != http.StatusOK {
		tb.Fatalf("engine %s: list: %d %s", engine, st, b)
	}
	var cs []struct{ Names []string }
	if err := json.Unmarshal(b, &cs); err != nil {
		tb.Fatalf("engine %s: list: %v", engine, err)
	}
	var out []string
	for _, c := range cs {
		out = append(out, c.Names...)
	}
	return out
}

func fmtCounts(per map[string]int, nodes []string) string {
	var parts []string
	for _, n := range nodes {
		parts = append(parts, fmt.Sprintf("%s:%d", n, per[n]))
	}
	return strings.Join(parts, " ")
}
