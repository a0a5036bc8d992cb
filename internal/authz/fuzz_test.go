package authz

import (
	"errors"
	"reflect"
	"testing"
)

// FuzzCreateChecks feeds container create bodies through the checks and
// the scope rewrite: whatever the body, a rewrite the checks accept
// carries the scope's labels and asks for exactly the host access the
// original did, so forcing the scope can never hide (or add) a privilege.
func FuzzCreateChecks(f *testing.F) {
	for _, s := range []string{
		`{"Image":"busybox"}`,
		`{"Image":"busybox","Labels":{"team":"db"},"HostConfig":{"Privileged":true}}`,
		`{"labels":{"a":"1"},"HostConfig":{"Binds":["/:/host","v:/v"],"NetworkMode":"host","CapAdd":["ALL"]}}`,
		`{"HostConfig":{},"hostConfig":{"Privileged":true}}`,
		`{"HostConfig":{"Mounts":[{"Type":"volume","VolumeOptions":{"DriverConfig":{"Options":{"device":"/dev/sda"}}}}],"SecurityOpt":["seccomp:unconfined"]}}`,
		`{"HostConfig":{"VolumesFrom":["x:ro"],"Links":["a:b"],"PidMode":"container:y"}}`,
		`{"Labels":null}`, `[]`, `null`, `{"Labels":{"team":"web"}}`, `{"Labels":{"team":"web"},"LABELS":{"team":"db"}}`,
	} {
		f.Add([]byte(s))
	}
	scope := map[string]string{"team": "web"}
	f.Fuzz(func(t *testing.T, body []byte) {
		orig, err := ParseCreate(body)
		if err != nil {
			return
		}
		out, err := ForceScope(body, scope)
		if err != nil {
			if errors.Is(err, ErrDenied) && orig.Labels["team"] == "web" {
				t.Fatalf("refused a body already in scope: %s", body)
			}
			return
		}
		got, err := ParseCreate(out)
		if err != nil {
			return // e.g. a duplicate inside HostConfig: refused before forwarding either way
		}
		if got.Labels["team"] != "web" {
			t.Fatalf("rewrite %s of %s lacks the scope label", out, body)
		}
		if !reflect.DeepEqual(got.HostAccess(), orig.HostAccess()) {
			t.Fatalf("rewrite changed the host access: %v -> %v (%s -> %s)", orig.HostAccess(), got.HostAccess(), body, out)
		}
	})
}

// FuzzPolicy feeds policy files: a policy that loads has only valid roles
// and rules naming exactly one of cn and ou.
func FuzzPolicy(f *testing.F) {
	for _, s := range []string{
		`{"rules":[{"cn":"alice","role":"operator","scope":{"team":"web"}},{"ou":"ops","role":"admin"}]}`,
		`{"rules":[]}`, `{}`, `{"rules":[{"cn":"a","ou":"b","role":"admin"}]}`, `{"rules":[{"cn":"a","role":"Root"}]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		p := &Policy{}
		if p.parse(b) != nil {
			return
		}
		for _, r := range p.Rules {
			if (r.CN == "") == (r.OU == "") || r.role < RoleNone || r.role > RoleAdmin {
				t.Fatalf("accepted rule %+v", r)
			}
		}
	})
}
