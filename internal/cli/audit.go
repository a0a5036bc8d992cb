package cli

import (
	"github.com/spf13/pflag"

	"github.com/shoal-dev/shoal/internal/audit"
)

// auditFlags adds the audit log's flags to a command that serves the
// Docker API (manage, and init/join as managers).
func auditFlags(f *pflag.FlagSet, c *audit.Config) {
	*c = audit.Config{MaxSizeMB: audit.DefaultMaxSizeMB, MaxFiles: audit.DefaultMaxFiles}
	f.StringVar(&c.Path, "audit-log", "",
		`write a JSON line per API call that changes something, execs, attaches, copies data out or shows secrets to this file ("-": stderr; empty: no audit log)`)
	f.IntVar(&c.MaxSizeMB, "audit-log-max-size", c.MaxSizeMB,
		"rotate the audit log file when it would pass this many MiB (0 = never)")
	f.IntVar(&c.MaxFiles, "audit-log-max-files", c.MaxFiles,
		"rotated audit log files kept: <file>.1 (the newest) to <file>.N")
	f.BoolVar(&c.Reads, "audit-reads", false,
		"audit every API call, reads (lists, inspects, logs, events) included")
}
