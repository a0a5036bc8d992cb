package cli

import (
	"github.com/spf13/pflag"

	"github.com/shoal-dev/shoal/internal/run"
)

// dataDirOpts is manage's --data-dir: where its own store keeps services.
// It is a flag value of its own to know whether it was given: a default
// that cannot be made only disables services, a given one must work.
type dataDirOpts struct {
	dir string
	set bool
}

func (o *dataDirOpts) String() string     { return o.dir }
func (o *dataDirOpts) Type() string       { return "string" }
func (o *dataDirOpts) Set(v string) error { o.dir, o.set = v, true; return nil }

// dataDirFlag adds --data-dir to `shoal manage`; its default depends on
// the user (run.DefaultManageDataDir).
func dataDirFlag(f *pflag.FlagSet, o *dataDirOpts) {
	o.dir = run.DefaultManageDataDir()
	f.Var(o, "data-dir", "directory of this manager's own store, where services and their tasks are kept across restarts; one shoal manage per directory; not with --replication")
}

// applied is manage's configuration c with the flag in it.
func (o *dataDirOpts) applied(c run.ManageConfig) run.ManageConfig {
	c.DataDir, c.DataDirSet = o.dir, o.set
	return c
}
