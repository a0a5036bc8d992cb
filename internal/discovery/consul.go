package discovery

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// consulStore talks to Consul's HTTP API (KV, sessions, blocking queries).
// A registration is a key acquired by a session with a TTL and behavior
// "delete": when the session is not renewed, Consul deletes the key.
type consulStore struct {
	hosts  []string
	scheme string
	hc     *http.Client

	mu       sync.Mutex
	next     int               // host to try first
	sessions map[string]string // key → session ID
}

// errNotFound is a 404 from Consul.
var errNotFound = errors.New("consul: not found")

func newConsul(hosts []string, tc *tls.Config) (*consulStore, error) {
	s := &consulStore{hosts: hosts, scheme: "http", sessions: map[string]string{}}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if tc != nil {
		s.scheme = "https"
		tr.TLSClientConfig = tc
	}
	s.hc = &http.Client{Transport: tr}
	return s, nil
}

func (s *consulStore) close() error { s.hc.CloseIdleConnections(); return nil }

// do sends a request to the first host that answers.
func (s *consulStore) do(ctx context.Context, method, path string, q url.Values, body []byte) ([]byte, http.Header, error) {
	var lastErr error
	s.mu.Lock()
	start := s.next
	s.mu.Unlock()
	for i := range s.hosts {
		h := s.hosts[(start+i)%len(s.hosts)]
		u := url.URL{Scheme: s.scheme, Host: h, Path: path, RawQuery: q.Encode()}
		req, err := http.NewRequestWithContext(ctx, method, u.String(), bytes.NewReader(body))
		if err != nil {
			return nil, nil, err
		}
		resp, err := s.hc.Do(req)
		if err != nil {
			lastErr = err
			if ctx.Err() != nil {
				break
			}
			continue
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		s.mu.Lock()
		s.next = (start + i) % len(s.hosts)
		s.mu.Unlock()
		switch {
		case err != nil:
			return nil, nil, err
		case resp.StatusCode == http.StatusNotFound:
			return nil, resp.Header, errNotFound
		case resp.StatusCode != http.StatusOK:
			return nil, nil, fmt.Errorf("consul %s %s: %s: %s", method, path, resp.Status, strings.TrimSpace(string(b)))
		}
		return b, resp.Header, nil
	}
	return nil, nil, fmt.Errorf("%w: consul: %w", ErrNoStore, lastErr)
}

type consulKV struct {
	Key     string
	Value   []byte // base64 in JSON; encoding/json decodes it
	Session string
}

func (s *consulStore) snapshot(ctx context.Context, dir string) ([]string, func(context.Context) error, error) {
	p := "/v1/kv/" + dir + "/"
	list, index, err := s.list(ctx, p, nil)
	if err != nil {
		return nil, nil, err
	}
	wait := func(ctx context.Context) error {
		if index == "" {
			sleep(ctx, time.Second)
			return nil
		}
		q := url.Values{"recurse": {""}, "index": {index}, "wait": {"5m"}}
		_, _, err := s.do(ctx, "GET", p, q, nil)
		if err != nil && !errors.Is(err, errNotFound) {
			return err
		}
		return nil
	}
	return list, wait, nil
}

func (s *consulStore) list(ctx context.Context, p string, q url.Values) ([]string, string, error) {
	if q == nil {
		q = url.Values{}
	}
	q.Set("recurse", "")
	b, h, err := s.do(ctx, "GET", p, q, nil)
	if errors.Is(err, errNotFound) {
		return nil, h.Get("X-Consul-Index"), nil
	}
	if err != nil {
		return nil, "", err
	}
	var kvs []consulKV
	if err := json.Unmarshal(b, &kvs); err != nil {
		return nil, "", fmt.Errorf("consul: %w", err)
	}
	var vals []string
	for _, kv := range kvs {
		v := string(kv.Value)
		if v == "" {
			v = kv.Key[strings.LastIndexByte(kv.Key, '/')+1:]
		}
		if v != "" {
			vals = append(vals, v)
		}
	}
	return sortedValues(vals), h.Get("X-Consul-Index"), nil
}

// newSession creates a session that deletes its keys when it lapses.
// Consul accepts TTLs from 10s.
func (s *consulStore) newSession(ctx context.Context, name string, ttl time.Duration) (string, error) {
	body, _ := json.Marshal(map[string]string{
		"Name": name, "TTL": max(ttl, 10*time.Second).String(), "Behavior": "delete", "LockDelay": "0s",
	})
	b, _, err := s.do(ctx, "PUT", "/v1/session/create", nil, body)
	if err != nil {
		return "", err
	}
	var r struct{ ID string }
	if err := json.Unmarshal(b, &r); err != nil || r.ID == "" {
		return "", fmt.Errorf("consul session create: %q: %v", b, err)
	}
	return r.ID, nil
}

// renew reports false when the session is gone.
func (s *consulStore) renew(ctx context.Context, id string) (bool, error) {
	_, _, err := s.do(ctx, "PUT", "/v1/session/renew/"+id, nil, nil)
	if errors.Is(err, errNotFound) {
		return false, nil
	}
	return err == nil, err
}

func (s *consulStore) acquire(ctx context.Context, key, value, session string) (bool, error) {
	b, _, err := s.do(ctx, "PUT", "/v1/kv/"+key, url.Values{"acquire": {session}}, []byte(value))
	if err != nil {
		return false, err
	}
	return strings.TrimSpace(string(b)) == "true", nil
}

func (s *consulStore) register(ctx context.Context, key, value string, ttl time.Duration) error {
	s.mu.Lock()
	id := s.sessions[key]
	s.mu.Unlock()
	if id != "" {
		ok, err := s.renew(ctx, id)
		if err != nil {
			return err
		}
		if !ok {
			id = ""
		}
	}
	if id == "" {
		var err error
		if id, err = s.newSession(ctx, "shoal-join "+value, ttl); err != nil {
			return err
		}
		s.mu.Lock()
		s.sessions[key] = id
		s.mu.Unlock()
	}
	// Acquiring again with the same session and value is a no-op for
	// watchers only if the value is unchanged, so check first.
	b, _, err := s.do(ctx, "GET", "/v1/kv/"+key, nil, nil)
	if err == nil {
		var kvs []consulKV
		if json.Unmarshal(b, &kvs) == nil && len(kvs) == 1 && kvs[0].Session == id && string(kvs[0].Value) == value {
			return nil
		}
	} else if !errors.Is(err, errNotFound) {
		return err
	}
	ok, err := s.acquire(ctx, key, value, id)
	if err != nil {
		return err
	}
	if !ok {
		// Held by an earlier process's session that has not lapsed: take it.
		if _, _, err := s.do(ctx, "DELETE", "/v1/kv/"+key, nil, nil); err != nil {
			return err
		}
		if ok, err = s.acquire(ctx, key, value, id); err != nil || !ok {
			return fmt.Errorf("consul: cannot acquire %s: %v", key, err)
		}
	}
	return nil
}

func (s *consulStore) deregister(ctx context.Context, key string) error {
	s.mu.Lock()
	id := s.sessions[key]
	delete(s.sessions, key)
	s.mu.Unlock()
	if id != "" {
		_, _, _ = s.do(ctx, "PUT", "/v1/session/destroy/"+id, nil, nil)
	}
	_, _, err := s.do(ctx, "DELETE", "/v1/kv/"+key, nil, nil)
	if errors.Is(err, errNotFound) {
		err = nil
	}
	return err
}

// elect is Consul's leader-election recipe: the leader holds the lock on
// the key dir with a session it renews every ttl/3.
func (s *consulStore) elect(ctx context.Context, dir, me string, ttl time.Duration, leader func(string)) error {
	id, err := s.newSession(ctx, "shoal-manage "+me, ttl)
	if err != nil {
		return err
	}
	defer func() {
		c, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_, _, _ = s.do(c, "PUT", "/v1/session/destroy/"+id, nil, nil)
	}()
	renewErr := make(chan error, 1)
	go func() {
		for {
			sleep(ctx, max(ttl, 10*time.Second)/3)
			if ctx.Err() != nil {
				return
			}
			if ok, err := s.renew(ctx, id); !ok && ctx.Err() == nil {
				renewErr <- fmt.Errorf("consul session renew: %v", err)
				return
			}
		}
	}()
	index := ""
	for {
		select {
		case err := <-renewErr:
			return err
		default:
		}
		q := url.Values{"wait": {"5s"}}
		if index != "" {
			q.Set("index", index)
		}
		b, h, err := s.do(ctx, "GET", "/v1/kv/"+dir, q, nil)
		if ctx.Err() != nil {
			return nil
		}
		held := false
		if err == nil {
			var kvs []consulKV
			if json.Unmarshal(b, &kvs) == nil && len(kvs) == 1 && kvs[0].Session != "" {
				held = true
				leader(string(kvs[0].Value))
			}
		} else if !errors.Is(err, errNotFound) {
			return err
		}
		if h != nil {
			index = h.Get("X-Consul-Index")
			if n, _ := strconv.ParseUint(index, 10, 64); n == 0 {
				index = ""
			}
		}
		if !held {
			if _, err := s.acquire(ctx, dir, me, id); err != nil {
				return err
			}
			index = "" // read the result at once
		}
	}
}
