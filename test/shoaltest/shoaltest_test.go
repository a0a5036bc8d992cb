package shoaltest

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/enginesim"
)

func TestPrepareCompletesManage(t *testing.T) {
	for _, tc := range []struct {
		name     string
		args     []string
		wantTCP  bool   // Start picked a loopback address
		wantUnix string // the unix -H path
		wantLog  bool   // --log-level debug was added
	}{
		{"bare manage", []string{"manage", "nodes://a"}, true, "", true},
		{"unix only", []string{"manage", "-H", "unix:///tmp/s.sock", "nodes://a"}, true, "/tmp/s.sock", true},
		{"own tcp", []string{"manage", "--host=tcp://127.0.0.1:1", "--log-level", "warn", "nodes://a"}, false, "", false},
		{"join untouched", []string{"join", "--advertise", "1.2.3.4:2375", "etcd://x/y"}, false, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := prepare(t, Options{Args: tc.args, InProcess: true})
			if added := s.Addr != "" && !slices.Contains(tc.args, s.Host) && !slices.Contains(tc.args, "--host="+s.Host); added != tc.wantTCP {
				t.Errorf("args %v: Host %q added %v, want %v", s.opts.Args, s.Host, added, tc.wantTCP)
			}
			if tc.wantTCP && !strings.HasPrefix(s.Addr, "127.0.0.1:") {
				t.Errorf("Addr %q, want a loopback port", s.Addr)
			}
			if s.Unix != tc.wantUnix {
				t.Errorf("Unix %q, want %q", s.Unix, tc.wantUnix)
			}
			if got := slices.Contains(s.opts.Args, "debug"); got != tc.wantLog {
				t.Errorf("args %v: debug log level %v, want %v", s.opts.Args, got, tc.wantLog)
			}
			if last := s.opts.Args[len(s.opts.Args)-1]; last != tc.args[len(tc.args)-1] {
				t.Errorf("the last argument moved: %v", s.opts.Args)
			}
		})
	}
}

// In-process shoal serves the same API as the binary, and Stop ends it.
func TestStartInProcess(t *testing.T) {
	e, err := enginesim.Start(enginesim.Options{Name: "node1"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	s := Start(t, Options{Args: []string{"manage", "--log-level", "error", "nodes://" + e.Addr()}, InProcess: true})
	if err := s.WaitNodes(context.Background(), 1, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	ns, err := s.Nodes(context.Background())
	if err != nil || len(ns) != 1 || ns[0].Description.Hostname != "node1" {
		t.Fatalf("nodes: %+v %v", ns, err)
	}
	s.Stop()
	if s.Alive() {
		t.Fatal("in-process shoal alive after Stop")
	}
	if _, err := http.Get("http://" + s.Addr + "/_ping"); err == nil {
		t.Error("in-process shoal still answers after Stop")
	}
	if err := s.Restart(); err != nil {
		t.Fatalf("restart: %v", err)
	}
	if exited, _ := s.Wait(100 * time.Millisecond); exited {
		t.Fatal("restarted shoal exited")
	}
}

// Each manage gets a data directory of its own, unless it names one or
// replicates (no store); other subcommands are left alone.
func TestPrepareGivesManageADataDir(t *testing.T) {
	dataDir := func(args []string) string {
		for i, a := range args {
			if a == "--data-dir" && i+1 < len(args) {
				return args[i+1]
			}
		}
		return ""
	}
	a := prepare(t, Options{Args: []string{"manage", "nodes://a"}, InProcess: true})
	b := prepare(t, Options{Args: []string{"manage", "nodes://a"}, InProcess: true})
	da, db := dataDir(a.opts.Args), dataDir(b.opts.Args)
	if da == "" || db == "" || da == db {
		t.Errorf("data dirs %q and %q: want two distinct ones", da, db)
	}
	if last := a.opts.Args[len(a.opts.Args)-1]; last != "nodes://a" {
		t.Errorf("the discovery moved: %v", a.opts.Args)
	}
	for _, args := range [][]string{
		{"manage", "--data-dir", "/mine", "nodes://a"},
		{"manage", "--replication", "--advertise", "x:1", "etcd://x/y"},
		{"init", "--data-dir", "/d"},
	} {
		s := prepare(t, Options{Args: args, InProcess: true})
		if n := strings.Count(strings.Join(s.opts.Args, " "), "--data-dir"); n != strings.Count(strings.Join(args, " "), "--data-dir") {
			t.Errorf("%v became %v", args, s.opts.Args)
		}
	}
}
