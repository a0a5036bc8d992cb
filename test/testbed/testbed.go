// Package testbed starts real dockerd engines, each in its own network
// namespace with its own hostname, so that tests (and the shoal demo) can
// treat them as separate hosts. Everything it creates is named with a unique
// per-Bed ID (Options.Prefix + 6 hex digits) and is removed by Bed.Close; a
// crashed run's leftovers are removed by Reap.
//
// Layout for a Bed with ID "tb1a2b3c" and two engines:
//
//	bridge     tb1a2b3cbr   10.213.X.1/24 (host namespace)
//	netns      tb1a2b3c-1   veth tb1a2b3cn1 = 10.213.X.11/24, peer tb1a2b3ch1 on the bridge
//	netns      tb1a2b3c-2   veth tb1a2b3cn2 = 10.213.X.12/24, peer tb1a2b3ch2 on the bridge
//	iptables   -I FORWARD -i tb1a2b3cbr -o tb1a2b3cbr -j ACCEPT
//	dirs       <Dir>/e1/{data,exec,d.sock,dockerd.log,...}
//
// Requires root.
package testbed

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// DefaultPrefix is the name prefix used when Options.Prefix is empty.
const DefaultPrefix = "tb"

// EnginePort is the plain-TCP port every engine listens on inside its namespace.
const EnginePort = 2375

// TLSPort is the port engines listen on when Options.TLS is set.
const TLSPort = 2376

// Options configures Start.
type Options struct {
	// Engines is the number of dockerd engines (default 1).
	Engines int
	// Hostnames per engine; missing entries default to "node<i+1>".
	Hostnames []string
	// Labels per engine (dockerd --label k=v); may be shorter than Engines.
	Labels []map[string]string
	// Prefix of every name this Bed creates (netns, links, ID). 1-6 lowercase
	// letters/digits; default DefaultPrefix. Reap(prefix) removes leftovers.
	Prefix string
	// Dir is the base directory (default: a new temp dir). It must be short:
	// unix socket paths under it must stay below 100 characters.
	Dir string
	// TLS makes every engine listen on tcp://IP:2376 with --tlsverify using a
	// generated CA instead of plain tcp://IP:2375 (dockerd applies its TLS
	// settings to all TCP listeners, so it cannot serve both).
	TLS bool
	// ExtraArgs are appended to every dockerd command line.
	ExtraArgs []string
	// StartTimeout bounds the wait for each engine's /_ping (default 60s).
	StartTimeout time.Duration
	// Logf, if set, receives progress messages.
	Logf func(format string, args ...any)
}

// Engine describes one dockerd of a Bed. All fields are plain data so a Bed
// can be saved to JSON and torn down by another process.
type Engine struct {
	Index    int               `json:"index"`
	Netns    string            `json:"netns"`     // network namespace name (ip netns)
	HostVeth string            `json:"host_veth"` // host end of the veth pair (on the bridge)
	NsVeth   string            `json:"ns_veth"`   // namespace end
	Hostname string            `json:"hostname"`
	IP       string            `json:"ip"`
	TCPAddr  string            `json:"tcp_addr"` // tcp://IP:2375 ("" when TLS)
	TLSAddr  string            `json:"tls_addr"` // tcp://IP:2376 (TLS only)
	Socket   string            `json:"socket"`   // unix socket path
	Labels   map[string]string `json:"labels"`
	Dir      string            `json:"dir"`
	DataRoot string            `json:"data_root"`
	ExecRoot string            `json:"exec_root"`
	PIDFile  string            `json:"pid_file"`
	LogPath  string            `json:"log_path"`
	PID      int               `json:"pid"`
	Args     []string          `json:"args"` // full command line used to start it

	proc *proc
}

// Host returns the best address to reach the engine from the host namespace:
// the TCP address, or the TLS address when TLS is on.
func (e *Engine) Host() string {
	if e.TCPAddr != "" {
		return e.TCPAddr
	}
	return e.TLSAddr
}

// UnixHost returns "unix://<socket>".
func (e *Engine) UnixHost() string { return "unix://" + e.Socket }

// TLSFiles are the PEM files generated when Options.TLS is set. The client
// files are named as the docker CLI expects in DOCKER_CERT_PATH (ClientDir).
type TLSFiles struct {
	CACert     string `json:"ca_cert"`
	CAKey      string `json:"ca_key"`
	ServerCert string `json:"server_cert"`
	ServerKey  string `json:"server_key"`
	ClientCert string `json:"client_cert"`
	ClientKey  string `json:"client_key"`
	ClientDir  string `json:"client_dir"` // ca.pem, cert.pem, key.pem
}

// Bed is a set of running engines. Exported fields are saved by SaveState.
type Bed struct {
	ID       string    `json:"id"`
	Prefix   string    `json:"prefix"`
	Dir      string    `json:"dir"`
	OwnDir   bool      `json:"own_dir"` // Dir was created by Start and is removed by Close
	Bridge   string    `json:"bridge"`
	Subnet   string    `json:"subnet"`  // 10.213.X.0/24
	Gateway  string    `json:"gateway"` // 10.213.X.1 (bridge address, host side)
	Engines  []*Engine `json:"engines"`
	TLS      *TLSFiles `json:"tls,omitempty"`
	OwnerPID int       `json:"owner_pid"`
	Created  time.Time `json:"created"`
	// Steps records which host-level objects were created, for teardown.
	IPTablesRule bool `json:"iptables_rule"`

	mu     sync.Mutex
	logf   func(string, ...any)
	closed bool
	opts   Options
}

var prefixRe = regexp.MustCompile(`^[a-z][a-z0-9]{0,5}$`)

// Start creates the network and starts the engines. On error everything
// already created is torn down.
func Start(ctx context.Context, opts Options) (*Bed, error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("testbed: must run as root")
	}
	if opts.Engines <= 0 {
		opts.Engines = 1
	}
	if opts.Engines > 99 {
		return nil, errors.New("testbed: at most 99 engines")
	}
	if opts.Prefix == "" {
		opts.Prefix = DefaultPrefix
	}
	if !prefixRe.MatchString(opts.Prefix) {
		return nil, fmt.Errorf("testbed: prefix %q must match %s", opts.Prefix, prefixRe)
	}
	if opts.StartTimeout <= 0 {
		opts.StartTimeout = 60 * time.Second
	}
	var rb [3]byte
	if _, err := rand.Read(rb[:]); err != nil {
		return nil, err
	}
	b := &Bed{
		ID:       opts.Prefix + hex.EncodeToString(rb[:]),
		Prefix:   opts.Prefix,
		OwnerPID: os.Getpid(),
		Created:  time.Now().UTC(),
		opts:     opts,
		logf:     opts.Logf,
	}
	if b.logf == nil {
		b.logf = func(string, ...any) {}
	}
	b.Bridge = b.ID + "br"
	if opts.Dir == "" {
		d, err := os.MkdirTemp("", b.ID+"-")
		if err != nil {
			return nil, err
		}
		b.Dir, b.OwnDir = d, true
	} else {
		d, err := filepath.Abs(opts.Dir)
		if err != nil {
			return nil, err
		}
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
		b.Dir = d
	}
	for i := 0; i < opts.Engines; i++ {
		name := fmt.Sprintf("node%d", i+1)
		if i < len(opts.Hostnames) && opts.Hostnames[i] != "" {
			name = opts.Hostnames[i]
		}
		labels := map[string]string{}
		if i < len(opts.Labels) {
			for k, v := range opts.Labels[i] {
				labels[k] = v
			}
		}
		dir := filepath.Join(b.Dir, fmt.Sprintf("e%d", i+1))
		e := &Engine{
			Index:    i,
			Netns:    fmt.Sprintf("%s-%d", b.ID, i+1),
			HostVeth: fmt.Sprintf("%sh%d", b.ID, i+1),
			NsVeth:   fmt.Sprintf("%sn%d", b.ID, i+1),
			Hostname: name,
			Labels:   labels,
			Dir:      dir,
			DataRoot: filepath.Join(dir, "data"),
			ExecRoot: filepath.Join(dir, "exec"),
			PIDFile:  filepath.Join(dir, "dockerd.pid"),
			LogPath:  filepath.Join(dir, "dockerd.log"),
			Socket:   filepath.Join(dir, "d.sock"),
		}
		if len(e.Socket) >= 100 || len(filepath.Join(e.ExecRoot, "containerd", "containerd.sock.ttrpc")) >= 100 {
			b.cleanupDirOnly()
			return nil, fmt.Errorf("testbed: dir %q too long for unix socket paths", b.Dir)
		}
		b.Engines = append(b.Engines, e)
	}
	// Register before creating anything in the host so Reap never mistakes
	// a Bed under construction for a leftover (OwnerPID is alive).
	if err := b.register(); err != nil {
		b.cleanupDirOnly()
		return nil, err
	}
	if err := b.setup(ctx); err != nil {
		cerr := b.Close()
		return nil, errors.Join(err, cerr)
	}
	return b, nil
}

func (b *Bed) cleanupDirOnly() {
	if b.OwnDir {
		os.RemoveAll(b.Dir)
	}
}

func (b *Bed) setup(ctx context.Context) error {
	t0 := time.Now()
	if err := b.setupNetwork(ctx); err != nil {
		return err
	}
	if b.opts.TLS {
		if err := b.genTLS(); err != nil {
			return err
		}
	}
	for _, e := range b.Engines {
		if err := os.MkdirAll(e.Dir, 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(e.Dir, "daemon.json"), []byte("{}\n"), 0o644); err != nil {
			return err
		}
		e.Args = b.dockerdArgs(e)
	}
	if err := b.SaveState(b.statePath()); err != nil {
		return err
	}
	errs := make([]error, len(b.Engines))
	var wg sync.WaitGroup
	for i := range b.Engines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = b.Start(ctx, i)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	b.log("testbed %s: %d engines up in %s", b.ID, len(b.Engines), time.Since(t0).Round(time.Millisecond))
	return b.SaveState(b.statePath())
}

func (b *Bed) dockerdArgs(e *Engine) []string {
	args := []string{
		"dockerd",
		"--config-file", filepath.Join(e.Dir, "daemon.json"),
		"--data-root", e.DataRoot,
		"--exec-root", e.ExecRoot,
		"--pidfile", e.PIDFile,
		"-H", "unix://" + e.Socket,
	}
	if b.TLS != nil {
		e.TLSAddr = fmt.Sprintf("tcp://%s:%d", e.IP, TLSPort)
		args = append(args,
			"-H", fmt.Sprintf("tcp://0.0.0.0:%d", TLSPort),
			"--tlsverify",
			"--tlscacert", b.TLS.CACert,
			"--tlscert", b.TLS.ServerCert,
			"--tlskey", b.TLS.ServerKey)
	} else {
		e.TCPAddr = fmt.Sprintf("tcp://%s:%d", e.IP, EnginePort)
		// --tls=false: explicit intent to run without TLS; otherwise dockerd
		// 20.10 sleeps 15 s at startup to show a deprecation warning.
		args = append(args, "-H", fmt.Sprintf("tcp://0.0.0.0:%d", EnginePort), "--tls=false")
	}
	keys := make([]string, 0, len(e.Labels))
	for k := range e.Labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		args = append(args, "--label", k+"="+e.Labels[k])
	}
	return append(args, b.opts.ExtraArgs...)
}

// Engine returns engine i (0-based).
func (b *Bed) Engine(i int) *Engine { return b.Engines[i] }

// Hosts returns every engine's Host() address.
func (b *Bed) Hosts() []string {
	out := make([]string, len(b.Engines))
	for i, e := range b.Engines {
		out[i] = e.Host()
	}
	return out
}

func (b *Bed) statePath() string { return filepath.Join(b.Dir, "testbed.json") }

// SaveState writes the Bed as JSON to path (Load + Close can tear it down
// from another process).
func (b *Bed) SaveState(path string) error {
	data, err := json.MarshalIndent(b, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	if path != b.statePath() {
		return nil
	}
	return os.WriteFile(b.registryPath(), data, 0o644)
}

// Load reads a Bed saved with SaveState. The returned Bed can Stop, Start,
// Kill and Close its engines by PID.
func Load(path string) (*Bed, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	b := &Bed{logf: func(string, ...any) {}}
	if err := json.Unmarshal(data, b); err != nil {
		return nil, fmt.Errorf("testbed: %s: %w", path, err)
	}
	if b.ID == "" || !strings.HasPrefix(b.ID, b.Prefix) {
		return nil, fmt.Errorf("testbed: %s: not a testbed state file", path)
	}
	b.opts.StartTimeout = 60 * time.Second
	return b, nil
}

// SetLogf sets the progress logger.
func (b *Bed) SetLogf(f func(string, ...any)) {
	if f == nil {
		f = func(string, ...any) {}
	}
	b.logf = f
}

// MustStart reaps dead leftovers with the same prefix (see Reap), starts a
// Bed and registers Close with tb.Cleanup (which runs even
// when the test fails). It fails the test on error.
func MustStart(tb testing.TB, opts Options) *Bed {
	tb.Helper()
	if opts.Logf == nil {
		opts.Logf = tb.Logf
	}
	// Leftovers of an earlier crashed run (only dead Beds are touched).
	prefix := opts.Prefix
	if prefix == "" {
		prefix = DefaultPrefix
	}
	if err := Reap(prefix); err != nil {
		tb.Logf("testbed: reap %s: %v", prefix, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	b, err := Start(ctx, opts)
	if err != nil {
		tb.Fatalf("testbed: %v", err)
	}
	tb.Cleanup(func() {
		b.SetLogf(nil)
		if err := b.Close(); err != nil {
			tb.Errorf("testbed close: %v", err)
		}
	})
	return b
}

func (b *Bed) log(format string, args ...any) {
	if b.logf != nil {
		b.logf(format, args...)
	}
}
