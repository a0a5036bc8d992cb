package run

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shoal-dev/shoal/internal/cluster"
	"github.com/shoal-dev/shoal/internal/dockerapi"
	"github.com/shoal-dev/shoal/internal/store"
)

// A manager restarted under autolock cannot read its keys: it serves the
// locked API (info says "locked", the rest 503) on its -H listeners until
// docker swarm unlock gives the right key, then starts, and the full API
// takes over the same listeners and server, so that no client is refused
// in between and the unlock call returns once the manager serves.

// lockedAPI is the API server of a manager that started locked.
type lockedAPI struct {
	gate       gate
	listeners  []net.Listener
	served     chan struct{} // closed once the full API serves
	cancel     context.CancelFunc
	closeAudit func()
	done       chan error // the server's end
	closeOnce  sync.Once
}

// gate is the handler of the locked server: the locked API, then the full one.
type gate struct{ h atomic.Pointer[http.Handler] }

func (g *gate) set(h http.Handler) { g.h.Store(&h) }

func (g *gate) ServeHTTP(w http.ResponseWriter, r *http.Request) { (*g.h.Load()).ServeHTTP(w, r) }

// startCluster starts cl; a locked manager first serves the locked API on
// the listeners open gives and waits for the unlock. It returns the
// locked API's server (nil when the node was not locked) for serveAPI.
func (c *ClusterConfig) startCluster(ctx context.Context, cl *cluster.Cluster, open func(clusterTLS) ([]net.Listener, error)) (*lockedAPI, error) {
	err := cl.Start(ctx)
	if !errors.Is(err, cluster.ErrLocked) {
		return nil, err
	}
	log := c.Log
	log.Warn("this manager's keys are locked (autolock): waiting for docker swarm unlock")
	tg := &tlsGate{cl: cl}
	if tg.roots, err = cl.LockedRootPool(); err != nil {
		return nil, err
	}
	ls, err := open(tg)
	if err != nil {
		return nil, err
	}
	lk := &lockedAPI{listeners: ls, served: make(chan struct{}), done: make(chan error, 1)}
	u := &unlocker{cl: cl, log: log, unlocked: make(chan struct{}), result: make(chan error, 1), served: lk.served}
	host, _, _ := net.SplitHostPort(cl.ClusterAddr())
	locked := dockerapi.NewLocked(u, dockerapi.LockedNode{Hostname: c.Cluster.Hostname, NodeAddr: host}, c.Version, log)
	locked.Authz = c.policy
	// Its own audit log: unlock attempts are audited too. It idles once
	// the full API (with its own) takes over, and closes with the run.
	h, closeAudit, err := audited(c.Audit, c.policy, locked, log)
	if err != nil {
		closeAll(ls)
		return nil, err
	}
	lk.closeAudit = closeAudit
	lk.gate.set(h)
	sctx, cancel := context.WithCancel(context.Background())
	lk.cancel = cancel
	srv := &apiServer{handler: &lk.gate, listeners: ls, limits: limitsOrDefault(c.Limits), log: log}
	go func() { lk.done <- srv.Run(sctx) }()
	if err := u.wait(ctx, lk.done); err != nil {
		lk.close()
		return nil, err
	}
	tg.open.Store(true)
	log.Info("manager unlocked and started")
	return lk, nil
}

// listen is the locked API's listeners, or open's with cl's TLS when there was none.
func (lk *lockedAPI) listen(open func(clusterTLS) ([]net.Listener, error), cl clusterTLS) ([]net.Listener, error) {
	if lk == nil {
		return open(cl)
	}
	return lk.listeners, nil
}

// tlsGate is the API's TLS (from the cluster's certificates) of a manager
// that started locked: until it is unlocked and started it has no server
// key to present (the node key is wrapped: handshakes fail unless the API
// has --tlscert/--tlskey files of its own) and verifies clients against the
// root certificate alone; then it is the cluster's.
type tlsGate struct {
	cl    clusterTLS
	roots *x509.CertPool
	open  atomic.Bool
}

func (t *tlsGate) APICertificate(h *tls.ClientHelloInfo) (*tls.Certificate, error) {
	if !t.open.Load() {
		return nil, cluster.ErrLocked
	}
	return t.cl.APICertificate(h)
}

func (t *tlsGate) APIClientCAs() *x509.CertPool {
	if !t.open.Load() {
		return t.roots
	}
	return t.cl.APIClientCAs()
}

func (t *tlsGate) VerifyAPIClient(cs tls.ConnectionState) error {
	if !t.open.Load() {
		return nil // the chain is checked; the revoked list is in the locked store
	}
	return t.cl.VerifyAPIClient(cs)
}

// serveAPI serves the full API h: on the locked API's server when the
// manager started locked (its unlock call then returns), else as serve does.
func (lk *lockedAPI) serveAPI(g *Group, h http.Handler, ls []net.Listener, lim dockerapi.Limits, log *slog.Logger) {
	if lk == nil {
		serve(g, h, ls, lim, log)
		return
	}
	lk.gate.set(h)
	close(lk.served)
	g.Go("api", Func(func(ctx context.Context) error {
		select {
		case <-ctx.Done():
			lk.close()
			return nil
		case err := <-lk.done:
			lk.done <- err // for close
			return err
		}
	}))
}

// close stops the locked API's server (nil: nothing to stop).
func (lk *lockedAPI) close() {
	if lk == nil {
		return
	}
	lk.closeOnce.Do(func() {
		lk.cancel()
		<-lk.done
		lk.closeAudit()
	})
}

// unlocker is the locked API's Unlocker: it checks the key, lets
// startCluster start the manager and answers once the full API serves.
type unlocker struct {
	cl       *cluster.Cluster
	log      *slog.Logger
	once     sync.Once
	unlocked chan struct{} // closed on the right key
	result   chan error    // Start's result
	served   chan struct{}
}

// unlockWait is how long an unlock call waits for the manager to serve.
// A manager whose store has no quorum yet (the other managers are locked
// too) keeps starting after that, so that the operator can go on to
// unlock them: the call then returns with the key accepted.
const unlockWait = 15 * time.Second

func (u *unlocker) Unlock(ctx context.Context, key string) error {
	if err := u.cl.Unlock(key); err != nil {
		return err
	}
	u.once.Do(func() { close(u.unlocked) })
	t := time.NewTimer(unlockWait)
	defer t.Stop()
	select {
	case <-u.served:
		return nil
	case err := <-u.result:
		u.result <- err // for wait
		return fmt.Errorf("swarm component could not be started: %w", err)
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Unlocked says whether the right key was given (the manager is starting).
func (u *unlocker) Unlocked() bool {
	select {
	case <-u.unlocked:
		return true
	default:
		return false
	}
}

// wait blocks until the manager is unlocked and started (nil), ctx ends or
// the locked server fails.
func (u *unlocker) wait(ctx context.Context, srvDone chan error) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case err := <-srvDone:
		srvDone <- err // for close
		return err
	case <-u.unlocked:
	}
	for {
		err := u.cl.Start(ctx)
		if err == nil {
			return nil
		}
		if !errors.Is(err, store.ErrStartup) || ctx.Err() != nil {
			u.result <- err
			return err
		}
		// Asking for the key again on a restart would make unlocking
		// several locked managers a race against the start timeout.
		u.log.Warn("unlocked manager: its store member did not start (no quorum yet: are the other managers locked?); trying again", "err", err)
	}
}

// printUnlockKey shows the unlock key of a cluster made with autolock, as
// docker swarm init --autolock does.
func printUnlockKey(ctx context.Context, out io.Writer, cl *cluster.Cluster) {
	key, err := cl.UnlockKey(ctx)
	if err != nil || key == "" {
		return
	}
	fmt.Fprintf(out, "To unlock a swarm manager after it restarts, run the `docker swarm unlock`\ncommand and provide the following key:\n\n    %s\n\n", key)
	fmt.Fprintf(out, "Remember to store this key in a password manager, since without it you\nwill not be able to restart the manager.\n\n")
}
