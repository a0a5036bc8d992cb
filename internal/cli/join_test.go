package cli

import "testing"

func TestJoinModeOf(t *testing.T) {
	for _, tc := range []struct {
		name   string
		token  string
		args   []string
		member bool
		want   joinMode
		fails  bool
	}{
		{name: "token joins", token: "SWMTKN-1-x", args: []string{"10.0.0.1:2377"}, want: joinCluster},
		{name: "resume without token", args: []string{"10.0.0.1:2377"}, member: true, want: joinCluster},
		{name: "resume without anything", member: true, want: joinCluster},
		{name: "resume with token", token: "SWMTKN-1-x", args: []string{"10.0.0.1:2377"}, member: true, want: joinCluster},
		{name: "key-value discovery", args: []string{"etcd://10.0.0.2:2379/shoal"}, want: joinKV},
		{name: "key-value discovery beside a membership", args: []string{"consul://h:8500/p"}, member: true, want: joinKV},
		{name: "manager address without token or membership", args: []string{"10.0.0.1:2377"}, fails: true},
		{name: "token without manager address", token: "SWMTKN-1-x", fails: true},
		{name: "nothing", fails: true},
	} {
		got, err := joinModeOf(tc.token, tc.args, "/var/lib/shoal", tc.member)
		if tc.fails != (err != nil) || (!tc.fails && got != tc.want) {
			t.Errorf("%s: got %v, %v", tc.name, got, err)
		}
	}
}
