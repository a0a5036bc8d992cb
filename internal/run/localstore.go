package run

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/shoal-dev/shoal/internal/ca"
	"github.com/shoal-dev/shoal/internal/store"
)

// `shoal manage` keeps services and tasks in a store of its own: a
// single-member embedded etcd in its data directory, reachable on loopback
// only, over mutual TLS with a CA made once in that directory. The built-in
// cluster uses its replicated store instead (Cluster.Store).

// ErrDataDirLocked means another shoal uses the data directory now.
var ErrDataDirLocked = errors.New("run: data directory in use by another shoal")

// DefaultManageDataDir is where `shoal manage` keeps its store without
// --data-dir: /var/lib/shoal/manage for root (beside `shoal init`'s
// /var/lib/shoal, apart from its store), else the user's state directory
// ($XDG_STATE_HOME/shoal/manage, or ~/.local/state/shoal/manage). Empty
// when neither is known.
func DefaultManageDataDir() string {
	if os.Geteuid() == 0 {
		return "/var/lib/shoal/manage"
	}
	if d := os.Getenv("XDG_STATE_HOME"); filepath.IsAbs(d) {
		return filepath.Join(d, "shoal", "manage")
	}
	if h, err := os.UserHomeDir(); err == nil && h != "" {
		return filepath.Join(h, ".local", "state", "shoal", "manage")
	}
	return ""
}

// Layout of a manage data directory.
const (
	localLockFile = "lock"  // flock held while a shoal uses the directory
	localCADir    = "ca"    // the store's own root CA (made once)
	localTLSDir   = "tls"   // the member's certificate, issued at each start
	localDataDir  = "store" // etcd's data
	localMember   = "manage"
)

// Timing of the local store: one member on loopback has no peer to wait
// for, so short ticks only make it elect itself sooner at start-up.
const (
	localHeartbeat = 10 * time.Millisecond
	localElection  = 100 * time.Millisecond
	localStartTry  = 3 // attempts when a port picked free was taken meanwhile
)

// localStore is manage's own store and the lock on its directory.
type localStore struct {
	*store.Store
	lock *os.File
}

// Close stops the store and releases the directory.
func (l *localStore) Close() error {
	err := l.Store.Close()
	l.lock.Close() // closing the file releases the flock
	return err
}

// openLocalStore opens (creating it the first time) the single-member
// store in dir and returns once it serves, holding dir's lock until Close.
func openLocalStore(ctx context.Context, dir string, log *slog.Logger) (*localStore, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("--data-dir %s: %w", dir, err)
	}
	lock, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	st, err := startLocalStore(ctx, dir, lock, log)
	if err != nil {
		lock.Close()
	}
	return st, err
}

// startLocalStore starts the store in dir, whose lock the caller holds:
// the store keeps it (and closes it on Close); on failure the caller
// still holds it.
func startLocalStore(ctx context.Context, dir string, lock *os.File, log *slog.Logger) (*localStore, error) {
	start := time.Now()
	files, err := localTLS(dir)
	var cipher store.Cipher
	if err == nil {
		cipher, err = localCipher(dir)
	}
	if err == nil {
		var st *store.Store
		if st, err = startLocal(ctx, dir, files, cipher, log); err == nil {
			encryptOld(ctx, st, log)
			log.Info("services: local store ready", "data_dir", dir, "took", time.Since(start).Round(time.Millisecond))
			return &localStore{Store: st, lock: lock}, nil
		}
	}
	return nil, fmt.Errorf("--data-dir %s: %w", dir, err)
}

// lockDir takes dir's lock without waiting: etcd would otherwise block on
// its own lock of the data file, with no word of why.
func lockDir(dir string) (*os.File, error) {
	path := filepath.Join(dir, localLockFile)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("--data-dir %s: %w", dir, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("--data-dir %s: %w (its lock is held): stop that one, or give this one a --data-dir of its own", dir, ErrDataDirLocked)
		}
		return nil, fmt.Errorf("--data-dir %s: lock: %w", dir, err)
	}
	return f, nil
}

// localTLS makes the store's CA the first time and reuses it after, and
// issues the member a fresh certificate at each start, so a certificate
// never expires under a store that is restarted now and then.
func localTLS(dir string) (store.TLSFiles, error) {
	caDir, tlsDir := filepath.Join(dir, localCADir), filepath.Join(dir, localTLSDir)
	root, err := ca.LoadRootCAFrom(caDir)
	if errors.Is(err, os.ErrNotExist) {
		if root, err = ca.NewRootCA("shoal-manage", time.Now()); err == nil {
			err = ca.SaveRootCA(caDir, root)
		}
	}
	if err != nil {
		return store.TLSFiles{}, fmt.Errorf("store CA: %w", err)
	}
	nc, err := root.IssueNode(ca.NodeRequest{NodeID: localMember, Role: ca.RoleManager, Hosts: []string{"127.0.0.1", "localhost"}})
	if err == nil {
		err = ca.SaveNodeCert(tlsDir, nc)
	}
	if err != nil {
		return store.TLSFiles{}, fmt.Errorf("store certificate: %w", err)
	}
	return store.TLSFiles{
		CAFile:   filepath.Join(caDir, ca.RootCertFile),
		CertFile: filepath.Join(tlsDir, ca.NodeCertFile),
		KeyFile:  filepath.Join(tlsDir, ca.NodeKeyFile),
	}, nil
}

// startLocal starts the member on two loopback ports free now; a port
// taken between picking and binding is retried with new ones. A member
// needs no fixed ports: it has no peers, and its URLs are advertised to
// nobody but this process.
func startLocal(ctx context.Context, dir string, files store.TLSFiles, cipher store.Cipher, log *slog.Logger) (*store.Store, error) {
	var err error
	for try := 0; try < localStartTry; try++ {
		var ports [2]int
		if ports, err = freeLoopbackPorts(); err != nil {
			return nil, err
		}
		var st *store.Store
		st, err = store.Open(ctx, store.Config{
			Name:             localMember,
			Dir:              filepath.Join(dir, localDataDir),
			PeerURL:          "https://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[0])),
			ClientURL:        "https://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[1])),
			TLS:              files,
			Cipher:           cipher,
			AllowedHostnames: []string{string(ca.RoleManager)},
			ClusterToken:     "shoal-manage",
			Heartbeat:        localHeartbeat,
			ElectionTimeout:  localElection,
			Logger:           log,
			// etcd logs its own shutdown as errors; a user of manage never
			// asked for etcd, so only what stops it is shown (and Err).
			EtcdLogLevel: "panic",
		})
		if err == nil {
			return st, nil
		}
		if !errors.Is(err, syscall.EADDRINUSE) {
			return nil, err
		}
	}
	return nil, err
}

// watchStore fails when the member fails (a listener, the disk), so that
// manage stops instead of serving services it cannot keep.
func watchStore(st *localStore) Component {
	return Func(func(ctx context.Context) error {
		select {
		case <-ctx.Done():
			return nil
		case err, ok := <-st.Err():
			if !ok || ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("local store: %w", err)
		}
	})
}

// freeLoopbackPorts picks two distinct ports nothing listens on now.
func freeLoopbackPorts() ([2]int, error) {
	var out [2]int
	for i := range out {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return out, fmt.Errorf("store port: %w", err)
		}
		defer l.Close() // held until both are picked, so they differ
		out[i] = l.Addr().(*net.TCPAddr).Port
	}
	return out, nil
}
