package run

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"

	"github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/swarm"
	"github.com/shoal-dev/shoal/internal/backend"
	"github.com/shoal-dev/shoal/internal/dockerapi"
	"github.com/shoal-dev/shoal/internal/secrets"
)

// `shoal manage`'s store is an embedded etcd (localstore.go): ~5 MB of
// heap, ~60 goroutines and bbolt's mapped file, which a manager that never
// keeps a service does not need. So a data directory that holds no store
// yet is only locked at start, and the store is started at the first
// service, task, secret or config call (stacks are made of those). A
// directory whose store exists starts it at once, as before: a restarted
// manager answers `service ls` and `ps` with every service it kept, and
// its orchestrator takes them up without waiting for a call.

// storeExists says whether dir holds a store made by an earlier start.
func storeExists(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, localDataDir))
	return err == nil
}

// lazyStore starts manage's store in dir at the first call that needs it
// and then wires services over it (start). Until then nothing runs.
type lazyStore struct {
	ctx   context.Context // the manager's: the store lives as long as it
	dir   string
	lock  *os.File // dir's lock, held from start (lockDir)
	log   *slog.Logger
	start func(*localStore) // wires the API and the orchestrator over it

	mu     sync.Mutex
	st     *localStore // nil until started
	sec    *secrets.Backend
	svc    dockerapi.Services
	closed bool
}

// open starts the store once; a failure is answered to the call and
// retried by the next one.
func (l *lazyStore) open() (dockerapi.Services, *secrets.Backend, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.st != nil {
		return l.svc, l.sec, nil
	}
	if l.closed || l.ctx.Err() != nil {
		return nil, nil, errdefs.ErrUnavailable.WithMessage("shoal is stopping")
	}
	st, err := startLocalStore(l.ctx, l.dir, l.lock, l.log)
	if err != nil {
		l.log.Error("services: cannot start the local store", "data_dir", l.dir, "error", err)
		return nil, nil, errdefs.ErrUnavailable.WithMessage(fmt.Sprintf("services: the local store does not start: %v", err))
	}
	l.st = st
	l.start(st)
	return l.svc, l.sec, nil
}

// started is the store, nil when no call has needed it yet.
func (l *lazyStore) started() *localStore {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.st
}

// Close stops the store if it started and releases the directory.
func (l *lazyStore) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = true
	if l.st != nil {
		return l.st.Close() // closes the lock too
	}
	return l.lock.Close()
}

// The API's services, secrets and configs until (and after) the store starts.
type lazyServices struct{ l *lazyStore }

func (z lazyServices) CreateService(ctx context.Context, spec swarm.ServiceSpec, encodedAuth string) (swarm.ServiceCreateResponse, error) {
	s, _, err := z.l.open()
	if err != nil {
		return swarm.ServiceCreateResponse{}, err
	}
	return s.CreateService(ctx, spec, encodedAuth)
}

func (z lazyServices) Services(ctx context.Context, filters backend.Filters, status bool) ([]swarm.Service, error) {
	s, _, err := z.l.open()
	if err != nil {
		return nil, err
	}
	return s.Services(ctx, filters, status)
}

func (z lazyServices) Service(ctx context.Context, ref string, insertDefaults bool) (swarm.Service, error) {
	s, _, err := z.l.open()
	if err != nil {
		return swarm.Service{}, err
	}
	return s.Service(ctx, ref, insertDefaults)
}

func (z lazyServices) UpdateService(ctx context.Context, ref string, opts backend.ServiceUpdate) (swarm.ServiceUpdateResponse, error) {
	s, _, err := z.l.open()
	if err != nil {
		return swarm.ServiceUpdateResponse{}, err
	}
	return s.UpdateService(ctx, ref, opts)
}

func (z lazyServices) RemoveService(ctx context.Context, ref string) error {
	s, _, err := z.l.open()
	if err != nil {
		return err
	}
	return s.RemoveService(ctx, ref)
}

func (z lazyServices) Tasks(ctx context.Context, filters backend.Filters) ([]swarm.Task, error) {
	s, _, err := z.l.open()
	if err != nil {
		return nil, err
	}
	return s.Tasks(ctx, filters)
}

func (z lazyServices) Task(ctx context.Context, ref string) (swarm.Task, error) {
	s, _, err := z.l.open()
	if err != nil {
		return swarm.Task{}, err
	}
	return s.Task(ctx, ref)
}

func (z lazyServices) Logs(ctx context.Context, ref string, task bool, opts backend.ServiceLogsOptions) (bool, func(w io.Writer) error, error) {
	s, _, err := z.l.open()
	if err != nil {
		return false, nil, err
	}
	return s.Logs(ctx, ref, task, opts)
}

func (z lazyServices) CreateSecret(ctx context.Context, spec swarm.SecretSpec) (string, error) {
	_, s, err := z.l.open()
	if err != nil {
		return "", err
	}
	return s.CreateSecret(ctx, spec)
}

func (z lazyServices) Secrets(ctx context.Context, filters backend.Filters) ([]swarm.Secret, error) {
	_, s, err := z.l.open()
	if err != nil {
		return nil, err
	}
	return s.Secrets(ctx, filters)
}

func (z lazyServices) Secret(ctx context.Context, ref string) (swarm.Secret, error) {
	_, s, err := z.l.open()
	if err != nil {
		return swarm.Secret{}, err
	}
	return s.Secret(ctx, ref)
}

func (z lazyServices) UpdateSecret(ctx context.Context, ref string, version uint64, spec swarm.SecretSpec) error {
	_, s, err := z.l.open()
	if err != nil {
		return err
	}
	return s.UpdateSecret(ctx, ref, version, spec)
}

func (z lazyServices) RemoveSecret(ctx context.Context, ref string) error {
	_, s, err := z.l.open()
	if err != nil {
		return err
	}
	return s.RemoveSecret(ctx, ref)
}

func (z lazyServices) CreateConfig(ctx context.Context, spec swarm.ConfigSpec) (string, error) {
	_, s, err := z.l.open()
	if err != nil {
		return "", err
	}
	return s.CreateConfig(ctx, spec)
}

func (z lazyServices) Configs(ctx context.Context, filters backend.Filters) ([]swarm.Config, error) {
	_, s, err := z.l.open()
	if err != nil {
		return nil, err
	}
	return s.Configs(ctx, filters)
}

func (z lazyServices) Config(ctx context.Context, ref string) (swarm.Config, error) {
	_, s, err := z.l.open()
	if err != nil {
		return swarm.Config{}, err
	}
	return s.Config(ctx, ref)
}

func (z lazyServices) UpdateConfig(ctx context.Context, ref string, version uint64, spec swarm.ConfigSpec) error {
	_, s, err := z.l.open()
	if err != nil {
		return err
	}
	return s.UpdateConfig(ctx, ref, version, spec)
}

func (z lazyServices) RemoveConfig(ctx context.Context, ref string) error {
	_, s, err := z.l.open()
	if err != nil {
		return err
	}
	return s.RemoveConfig(ctx, ref)
}
