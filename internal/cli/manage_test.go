package cli

import (
	"strings"
	"testing"

	"github.com/shoal-dev/shoal/internal/engine"
)

// --engine-ping-rate reaches the pool: its default is the pool's, 0 means
// no bound (the pool's negative), and a negative rate is refused.
func TestEnginePingRateFlag(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want int
	}{
		{nil, engine.DefaultPingRate},
		{[]string{"--engine-ping-rate", "250"}, 250},
		{[]string{"--engine-ping-rate", "0"}, -1},
	} {
		cmd := newManageCmd()
		if err := cmd.Flags().Parse(tc.args); err != nil {
			t.Fatal(err)
		}
		n, err := cmd.Flags().GetInt("engine-ping-rate")
		if err != nil {
			t.Fatal(err)
		}
		if got := pingRate(n); got != tc.want {
			t.Errorf("%v: the pool's PingRate is %d, want %d", tc.args, got, tc.want)
		}
	}
	code, _, stderr := execute(t, "manage", "-H", "tcp://127.0.0.1:0", "--engine-ping-rate", "-5", "nodes://127.0.0.1:2375")
	if code != 1 || !strings.Contains(stderr, "--engine-ping-rate -5") {
		t.Errorf("a negative rate: exit %d, stderr %q; want 1 and the flag named", code, stderr)
	}
}
