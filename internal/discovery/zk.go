package discovery

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/go-zookeeper/zk"
)

// zkStore registers engines as ephemeral nodes: they live as long as the
// registering process's session, which lapses ttl (the session timeout)
// after the process dies. Register only re-creates a node that went with an
// expired session.
type zkStore struct {
	conn *zk.Conn
}

type quietLogger struct{}

func (quietLogger) Printf(string, ...any) {}

func newZK(hosts []string, tc *tls.Config, sessionTimeout time.Duration) (*zkStore, error) {
	var dialer zk.Dialer = net.DialTimeout
	if tc != nil {
		dialer = func(network, address string, timeout time.Duration) (net.Conn, error) {
			c := tc.Clone()
			if c.ServerName == "" {
				c.ServerName, _, _ = net.SplitHostPort(address)
			}
			return tls.DialWithDialer(&net.Dialer{Timeout: timeout}, network, address, c)
		}
	}
	conn, _, err := zk.Connect(hosts, sessionTimeout, zk.WithLogger(quietLogger{}), zk.WithDialer(dialer))
	if err != nil {
		return nil, fmt.Errorf("discovery: zookeeper %v: %w", hosts, err)
	}
	return &zkStore{conn: conn}, nil
}

func (s *zkStore) close() error { s.conn.Close(); return nil }

func zkPath(key string) string { return "/" + strings.Trim(key, "/") }

// call runs zk requests, which take no context, bounded by ctx.
func call[T any](ctx context.Context, f func() (T, error)) (T, error) {
	type result struct {
		v   T
		err error
	}
	for {
		ch := make(chan result, 1)
		go func() {
			v, err := f()
			ch <- result{v, err}
		}()
		select {
		case r := <-ch:
			// Requests fail at once while no server takes the connection
			// (a server still starting, or a failover): try again.
			if errors.Is(r.err, zk.ErrNoServer) || errors.Is(r.err, zk.ErrConnectionClosed) {
				sleep(ctx, 200*time.Millisecond)
				if ctx.Err() == nil {
					continue
				}
			}
			return r.v, r.err
		case <-ctx.Done():
			var zero T
			return zero, fmt.Errorf("%w: zookeeper: %w", ErrNoStore, ctx.Err())
		}
	}
}

// mkdirAll creates the persistent nodes of p.
func (s *zkStore) mkdirAll(p string) error {
	cur := ""
	for _, part := range strings.Split(strings.Trim(p, "/"), "/") {
		cur += "/" + part
		_, err := s.conn.Create(cur, nil, 0, zk.WorldACL(zk.PermAll))
		if err != nil && !errors.Is(err, zk.ErrNodeExists) {
			return err
		}
	}
	return nil
}

type zkList struct {
	values []string
	ch     <-chan zk.Event
}

func (s *zkStore) snapshot(ctx context.Context, dir string) ([]string, func(context.Context) error, error) {
	dir = zkPath(dir)
	l, err := call(ctx, func() (zkList, error) {
		children, _, ch, err := s.conn.ChildrenW(dir)
		if errors.Is(err, zk.ErrNoNode) {
			if err := s.mkdirAll(dir); err != nil {
				return zkList{}, err
			}
			children, _, ch, err = s.conn.ChildrenW(dir)
		}
		if err != nil {
			return zkList{}, err
		}
		var vals []string
		for _, c := range children {
			data, _, err := s.conn.Get(dir + "/" + c)
			if errors.Is(err, zk.ErrNoNode) {
				continue
			}
			if err != nil {
				return zkList{}, err
			}
			v := string(data)
			if v == "" {
				v = c
			}
			vals = append(vals, v)
		}
		return zkList{vals, ch}, nil
	})
	if err != nil {
		if !errors.Is(err, ErrNoStore) {
			err = fmt.Errorf("%w: zookeeper: %w", ErrNoStore, err)
		}
		return nil, nil, err
	}
	wait := func(ctx context.Context) error {
		select {
		case ev := <-l.ch:
			return ev.Err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return sortedValues(l.values), wait, nil
}

func (s *zkStore) register(ctx context.Context, key, value string, _ time.Duration) error {
	p := zkPath(key)
	_, err := call(ctx, func() (struct{}, error) {
		data, st, err := s.conn.Get(p)
		if err == nil && st.EphemeralOwner == s.conn.SessionID() && string(data) == value {
			return struct{}{}, nil
		}
		if err == nil {
			// Left by an earlier process whose session has not expired yet,
			// or a stale value: ours replaces it.
			if err := s.conn.Delete(p, st.Version); err != nil && !errors.Is(err, zk.ErrNoNode) {
				return struct{}{}, err
			}
		} else if !errors.Is(err, zk.ErrNoNode) {
			return struct{}{}, err
		}
		_, err = s.conn.Create(p, []byte(value), zk.FlagEphemeral, zk.WorldACL(zk.PermAll))
		if errors.Is(err, zk.ErrNoNode) {
			if err := s.mkdirAll(p[:strings.LastIndexByte(p, '/')]); err != nil {
				return struct{}{}, err
			}
			_, err = s.conn.Create(p, []byte(value), zk.FlagEphemeral, zk.WorldACL(zk.PermAll))
		}
		return struct{}{}, err
	})
	return err
}

func (s *zkStore) deregister(ctx context.Context, key string) error {
	_, err := call(ctx, func() (struct{}, error) {
		err := s.conn.Delete(zkPath(key), -1)
		if errors.Is(err, zk.ErrNoNode) {
			err = nil
		}
		return struct{}{}, err
	})
	return err
}

// seq is the sequence number zk appended to a sequential node's name.
func seq(name string) string {
	if len(name) < 10 {
		return name
	}
	return name[len(name)-10:]
}

// elect is the zk recipe: every candidate holds an ephemeral sequential
// node under dir; the lowest sequence leads.
func (s *zkStore) elect(ctx context.Context, dir, me string, _ time.Duration, leader func(string)) error {
	dir = zkPath(dir)
	var mine string // our node's name, "" until created (again)
	defer func() {
		if mine != "" {
			_ = s.conn.Delete(dir+"/"+mine, -1)
		}
	}()
	for {
		type view struct {
			children []string
			ch       <-chan zk.Event
		}
		v, err := call(ctx, func() (view, error) {
			if err := s.mkdirAll(dir); err != nil {
				return view{}, err
			}
			children, _, ch, err := s.conn.ChildrenW(dir)
			if err != nil {
				return view{}, err
			}
			if mine == "" || !slices.Contains(children, mine) {
				// First round, or our node went with an expired session.
				p, err := s.conn.CreateProtectedEphemeralSequential(dir+"/n_", []byte(me), zk.WorldACL(zk.PermAll))
				if err != nil {
					return view{}, err
				}
				mine = p[strings.LastIndexByte(p, '/')+1:]
				children, _, ch, err = s.conn.ChildrenW(dir)
				if err != nil {
					return view{}, err
				}
			}
			return view{children, ch}, nil
		})
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			return err
		}
		slices.SortFunc(v.children, func(a, b string) int { return strings.Compare(seq(a), seq(b)) })
		if len(v.children) > 0 {
			data, err := call(ctx, func() ([]byte, error) {
				d, _, err := s.conn.Get(dir + "/" + v.children[0])
				return d, err
			})
			if err == nil {
				leader(string(data))
			} else if !errors.Is(err, zk.ErrNoNode) && ctx.Err() == nil {
				return err
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-v.ch:
		case <-time.After(5 * time.Second):
		}
	}
}
