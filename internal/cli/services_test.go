package cli

import (
	"testing"

	"github.com/spf13/pflag"

	"github.com/shoal-dev/shoal/internal/run"
)

// --data-dir defaults to run's choice and says whether it was given, which
// decides whether a directory that cannot be made is an error.
func TestDataDirFlag(t *testing.T) {
	for _, tc := range []struct {
		args    []string
		wantDir string
		wantSet bool
	}{
		{nil, run.DefaultManageDataDir(), false},
		{[]string{"--data-dir", "/srv/shoal"}, "/srv/shoal", true},
		{[]string{"--data-dir="}, "", true},
	} {
		f := pflag.NewFlagSet("manage", pflag.ContinueOnError)
		var o dataDirOpts
		dataDirFlag(f, &o)
		if err := f.Parse(tc.args); err != nil {
			t.Fatal(err)
		}
		c := o.applied(run.ManageConfig{Strategy: "spread"})
		if c.DataDir != tc.wantDir || c.DataDirSet != tc.wantSet || c.Strategy != "spread" {
			t.Errorf("%v: DataDir %q set %v, want %q %v", tc.args, c.DataDir, c.DataDirSet, tc.wantDir, tc.wantSet)
		}
	}
}
