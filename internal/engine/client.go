package engine

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/containerd/errdefs"
)

// Client speaks HTTP to one Docker engine over tcp, tls or a unix socket.
// It is deliberately thin: shoal forwards most calls nearly verbatim, so it
// needs raw requests and raw connections as much as decoded JSON.
type Client struct {
	dial    func(ctx context.Context) (net.Conn, error) // set for custom schemes (agent tunnels)
	network string                                      // "tcp" or "unix"
	address string                                      // host:port or socket path
	tls     *tls.Config
	scheme  string // http or https
	host    string // Host header / URL host
	hc      *http.Client
	dialer  net.Dialer
	pinger  pinger                                       // health checks (pinger.go)
	observe func(d time.Duration, status int, err error) // set by Pool.observed
}

// ParseAddr normalises an engine address: "host:port", "tcp://host:port",
// "unix:///path", "http://host:port", "https://host:port".
func ParseAddr(addr string) (network, address string, err error) {
	a := strings.TrimSpace(addr)
	switch {
	case strings.HasPrefix(a, "unix://"):
		p := strings.TrimPrefix(a, "unix://")
		if p == "" {
			return "", "", fmt.Errorf("engine address %q: empty socket path", addr)
		}
		return "unix", p, nil
	case strings.HasPrefix(a, "tcp://"), strings.HasPrefix(a, "http://"), strings.HasPrefix(a, "https://"):
		a = a[strings.Index(a, "://")+3:]
	case strings.Contains(a, "://"):
		return "", "", fmt.Errorf("engine address %q: unsupported scheme", addr)
	}
	a = strings.TrimSuffix(a, "/")
	if _, _, err := net.SplitHostPort(a); err != nil {
		return "", "", fmt.Errorf("engine address %q: %v", addr, err)
	}
	return "tcp", a, nil
}

// NewClient returns a client for the engine at addr. tlsConf may be nil.
func NewClient(addr string, tlsConf *tls.Config) (*Client, error) {
	network, address, err := ParseAddr(addr)
	if err != nil {
		return nil, errdefs.ErrInvalidArgument.WithMessage(err.Error())
	}
	c := &Client{network: network, address: address, tls: tlsConf, scheme: "http", host: address}
	if network == "unix" {
		c.host = "docker"
	}
	if tlsConf != nil && network == "tcp" || strings.HasPrefix(addr, "https://") {
		c.scheme = "https"
		if c.tls == nil {
			c.tls = &tls.Config{}
		}
	}
	c.dialer = net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
	c.hc = &http.Client{Transport: c.transport()}
	return c, nil
}

// NewClientDial returns a client for an engine reached through dial (an
// agent's tunnel, already mutually authenticated): plain HTTP over it.
func NewClientDial(name string, dial func(ctx context.Context) (net.Conn, error)) *Client {
	c := &Client{dial: dial, network: "custom", address: name, scheme: "http", host: "docker"}
	c.hc = &http.Client{Transport: c.transport()}
	return c
}

func (c *Client) transport() *http.Transport {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			if c.dial != nil {
				return c.dial(ctx)
			}
			return c.dialer.DialContext(ctx, c.network, c.address)
		},
		TLSClientConfig:     c.tls,
		MaxIdleConnsPerHost: idleConnsPerEngine,
		WriteBufferSize:     1 << 10,
		// Idle connections close before the next health check (every 2 s
		// by default): between calls an engine holds its event stream and
		// at most the health check's connection (pinger.go), no more.
		IdleConnTimeout:       1500 * time.Millisecond,
		ReadBufferSize:        2 << 10,
		ResponseHeaderTimeout: 0,
		DisableCompression:    true,
		ForceAttemptHTTP2:     false,
	}
	if c.scheme == "https" && c.network == "unix" {
		tr.DialTLSContext = func(ctx context.Context, _, _ string) (net.Conn, error) { return c.Dial(ctx) }
	}
	return tr
}

// idleConnsPerEngine is how many connections an engine's client keeps
// between calls (for IdleConnTimeout at most), and so how many calls of
// its own a refresh makes at once (Engine.inspectsAtOnce): a call past
// the kept ones dials, and its connection is closed when it ends; with
// eight inspects at once over four kept connections, loading 1,000
// engines dialed ~11 connections an engine, half of the load's garbage.
const idleConnsPerEngine = 4

// closeIdle closes the connections kept for the next call (not those of
// calls under way, nor the health check's or the event stream's).
func (c *Client) closeIdle() { c.hc.CloseIdleConnections() }

// Dial opens a fresh connection to the engine (TLS when configured); used for
// hijacked streams (attach, exec start).
func (c *Client) Dial(ctx context.Context) (net.Conn, error) {
	if c.dial != nil {
		return c.dial(ctx)
	}
	conn, err := c.dialer.DialContext(ctx, c.network, c.address)
	if err != nil {
		return nil, err
	}
	if c.scheme == "https" {
		cfg := c.tls.Clone()
		if cfg.ServerName == "" && c.network == "tcp" {
			h, _, _ := net.SplitHostPort(c.address)
			cfg.ServerName = h
		}
		tc := tls.Client(conn, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			conn.Close()
			return nil, err
		}
		return tc, nil
	}
	return conn, nil
}

// Host is the value for the Host header of requests to this engine.
func (c *Client) Host() string { return c.host }

// URL builds an absolute URL for path (which must start with "/") and query.
func (c *Client) URL(path string, query url.Values) string {
	u := url.URL{Scheme: c.scheme, Host: c.host, Path: path}
	if len(query) > 0 {
		u.RawQuery = query.Encode()
	}
	return u.String()
}

// Do sends a request and returns the response whatever its status.
func (c *Client) Do(req *http.Request) (*http.Response, error) {
	req.URL.Scheme = c.scheme
	req.URL.Host = c.host
	req.Host = c.host
	return c.hc.Do(req)
}

// Raw sends method path?query with body and returns the response whatever its status.
func (c *Client) Raw(ctx context.Context, method, path string, query url.Values, body io.Reader, header http.Header) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.URL(path, query), body)
	if err != nil {
		return nil, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	return c.Do(req)
}

// JSON sends in (if non-nil) as JSON and decodes a 2xx answer into out (if
// non-nil). A non-2xx answer becomes an errdefs error carrying the engine's message.
func (c *Client) JSON(ctx context.Context, method, path string, query url.Values, in, out any) error {
	var body io.Reader
	hdr := http.Header{}
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
		hdr.Set("Content-Type", "application/json")
	}
	resp, err := c.Raw(ctx, method, path, query, body, hdr)
	if err != nil {
		return unavailable(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return ResponseError(resp)
	}
	if out == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil
	}
	if err := decodeBody(resp.Body, resp.ContentLength, out); err != nil {
		return fmt.Errorf("decoding %s %s: %w", method, path, err)
	}
	return nil
}

// readBufs are the buffers answers are read into before decoding: a
// json.Decoder grows a buffer of its own by doubling for each answer, and
// a json.RawMessage copies it again, which made most of the garbage of
// loading 1,000 engines (and so the heap's peak then).
var readBufs = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// maxKeptReadBuf bounds the buffers kept for the next answer.
const maxKeptReadBuf = 1 << 20

// decodeBody decodes the JSON answer r into out. A *json.RawMessage gets
// one allocation of the answer's size; the rest is decoded from the
// pooled buffer.
func decodeBody(r io.Reader, size int64, out any) error {
	return readBody(r, size, func(b []byte) error {
		if raw, ok := out.(*json.RawMessage); ok {
			if !json.Valid(b) {
				var v any // the syntax error, worded as json says it
				if err := json.Unmarshal(b, &v); err != nil {
					return err
				}
			}
			*raw = bytes.Clone(b)
			return nil
		}
		return json.Unmarshal(b, out)
	})
}

// JSONWith is JSON for an answer that fn decodes itself from b, a pooled
// buffer reused once fn returns: fn must keep nothing of b.
func (c *Client) JSONWith(ctx context.Context, method, path string, query url.Values, fn func(b []byte) error) error {
	resp, err := c.Raw(ctx, method, path, query, nil, http.Header{})
	if err != nil {
		return unavailable(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return ResponseError(resp)
	}
	if err := readBody(resp.Body, resp.ContentLength, fn); err != nil {
		return fmt.Errorf("decoding %s %s: %w", method, path, err)
	}
	return nil
}

// readBody reads the answer r into a pooled buffer and gives fn its JSON
// (without surrounding space; an empty answer is io.EOF).
func readBody(r io.Reader, size int64, fn func(b []byte) error) error {
	buf := readBufs.Get().(*bytes.Buffer)
	defer func() {
		if buf.Cap() <= maxKeptReadBuf {
			buf.Reset()
			readBufs.Put(buf)
		}
	}()
	buf.Reset()
	if size > 0 && size <= maxKeptReadBuf {
		buf.Grow(int(size) + bytes.MinRead)
	}
	if _, err := buf.ReadFrom(r); err != nil {
		return err
	}
	b := bytes.TrimSpace(buf.Bytes())
	if len(b) == 0 {
		return io.EOF // as json.Decoder says of an empty answer
	}
	return fn(b)
}

// ResponseError turns a non-2xx engine answer into an errdefs error with the
// engine's message, so the API edge maps it back to the same status.
func ResponseError(resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var m struct {
		Message string `json:"message"`
	}
	msg := strings.TrimSpace(string(b))
	if json.Unmarshal(b, &m) == nil && m.Message != "" {
		msg = m.Message
	}
	if msg == "" {
		msg = http.StatusText(resp.StatusCode)
	}
	return StatusError(resp.StatusCode, msg)
}
