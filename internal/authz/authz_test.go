package authz

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
)

// verified is the connection state of a handshake that verified a client
// certificate with this CN and these OUs.
func verified(cn string, ous ...string) *tls.ConnectionState {
	leaf := &x509.Certificate{Subject: pkix.Name{CommonName: cn, OrganizationalUnit: ous}}
	return &tls.ConnectionState{PeerCertificates: []*x509.Certificate{leaf}, VerifiedChains: [][]*x509.Certificate{{leaf}}}
}

func TestParseRole(t *testing.T) {
	for s, want := range map[string]Role{"admin": RoleAdmin, "Operator": RoleOperator, " viewer ": RoleViewer, "none": RoleNone} {
		if got, err := ParseRole(s); err != nil || got != want {
			t.Errorf("ParseRole(%q) = %v, %v; want %v", s, got, err, want)
		}
	}
	if _, err := ParseRole("root"); !errors.Is(err, ErrUnknownRole) {
		t.Errorf("ParseRole(root): %v", err)
	}
	if RoleNone >= RoleViewer || RoleViewer >= RoleOperator || RoleOperator >= RoleAdmin {
		t.Error("roles are not ordered none < viewer < operator < admin")
	}
}

func TestIdentityFromTLS(t *testing.T) {
	for _, tc := range []struct {
		name string
		cs   *tls.ConnectionState
		ok   bool
		want Identity
	}{
		{"admin", verified("ann", "shoal-admin"), true, Identity{Name: "ann", Role: RoleAdmin, Source: SourceTLS}},
		{"operator with scope", verified("bob", "shoal-operator", "scope:com.example.team=web", "other"), true,
			Identity{Name: "bob", Role: RoleOperator, Scope: map[string]string{"com.example.team": "web"}, Source: SourceTLS}},
		{"viewer, two scope keys", verified("vic", "shoal-viewer", "scope:a=1", "scope:b="), true,
			Identity{Name: "vic", Role: RoleViewer, Scope: map[string]string{"a": "1", "b": ""}, Source: SourceTLS}},
		{"manager node", verified("n1", "swarm-manager"), true, Identity{Name: "n1", Role: RoleAdmin, Source: SourceTLS}},
		{"worker node", verified("n2", "swarm-worker"), true, Identity{Name: "n2", Role: RoleViewer, Source: SourceTLS}},
		{"conflicting scope fails closed", verified("eve", "shoal-admin", "scope:a=1", "scope:a=2"), true, Identity{Name: "eve", Role: RoleNone, Source: SourceTLS}},
		{"role OU anywhere (DER sorts OUs)", verified("sam", "scope:team=web", "shoal-viewer"), true,
			Identity{Name: "sam", Role: RoleViewer, Scope: map[string]string{"team": "web"}, Source: SourceTLS}},
		{"two roles fail closed", verified("two", "shoal-admin", "shoal-viewer"), true, Identity{Name: "two", Role: RoleNone, Source: SourceTLS}},
		{"no OU", verified("x"), false, Identity{}},
		{"no TLS", nil, false, Identity{}},
		{"certificate not verified", &tls.ConnectionState{PeerCertificates: verified("x", "shoal-admin").PeerCertificates}, false, Identity{}},
	} {
		got, ok := IdentityFromTLS(tc.cs)
		if ok != tc.ok || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: got %+v %v, want %+v %v", tc.name, got, ok, tc.want, tc.ok)
		}
	}
}

func request(remote string, cs *tls.ConnectionState, local net.Addr) *http.Request {
	r := httptest.NewRequest("GET", "/info", nil)
	r.RemoteAddr, r.TLS = remote, cs
	if local != nil {
		r = r.WithContext(context.WithValue(r.Context(), http.LocalAddrContextKey, local))
	}
	return r
}

func TestPolicyIdentify(t *testing.T) {
	p := &Policy{DefaultRole: RoleViewer}
	if err := p.parse([]byte(`{"rules":[{"cn":"carol","role":"operator","scope":{"team":"db"}},{"ou":"ops","role":"admin"},{"cn":"ann","role":"viewer"}]}`)); err != nil {
		t.Fatal(err)
	}
	tcp := &net.TCPAddr{IP: net.IPv4(10, 0, 0, 1), Port: 2376}
	for _, tc := range []struct {
		name   string
		r      *http.Request
		role   Role
		source Source
		scope  map[string]string
	}{
		{"rule by CN", request("10.0.0.9:5000", verified("carol", "eng"), tcp), RoleOperator, SourceTLS, map[string]string{"team": "db"}},
		{"rule by OU", request("10.0.0.9:5000", verified("dan", "eng", "ops"), tcp), RoleAdmin, SourceTLS, nil},
		{"a rule overrides the convention", request("10.0.0.9:5000", verified("ann", "shoal-admin"), tcp), RoleViewer, SourceTLS, nil},
		{"convention", request("10.0.0.9:5000", verified("bob", "shoal-operator"), tcp), RoleOperator, SourceTLS, nil},
		{"default role", request("10.0.0.9:5000", verified("zed", "eng"), tcp), RoleViewer, SourceTLS, nil},
		{"default role keeps the scope", request("10.0.0.9:5000", verified("zed", "eng", "scope:team=x"), tcp), RoleViewer, SourceTLS, map[string]string{"team": "x"}},
		{"unix socket", request("@", nil, &net.UnixAddr{Name: "/run/shoal.sock", Net: "unix"}), RoleAdmin, SourceUnix, nil},
		{"plain loopback", request("127.0.0.1:4000", nil, tcp), RoleAdmin, SourceLoopbackPlain, nil},
		{"plain, opted out of TLS", request("10.0.0.9:4000", nil, tcp), RoleAdmin, SourceInsecure, nil},
		{"--tls without --tlsverify: the certificate is not read", request("10.0.0.9:4000", &tls.ConnectionState{PeerCertificates: verified("x", "shoal-viewer").PeerCertificates}, tcp), RoleAdmin, SourceInsecure, nil},
	} {
		id := p.Identify(tc.r)
		if id.Role != tc.role || id.Source != tc.source || !reflect.DeepEqual(id.Scope, tc.scope) || id.Addr != tc.r.RemoteAddr {
			t.Errorf("%s: got %+v", tc.name, id)
		}
	}
	if id := (*Policy)(nil).Identify(request("10.0.0.9:5000", verified("zed"), tcp)); id.Role != RoleAdmin {
		t.Errorf("nil policy: a certificate without a role is %v, want admin (dockerd's --tlsverify)", id.Role)
	}
}

func TestLoadPolicy(t *testing.T) {
	dir := t.TempDir()
	write := func(s string) string {
		p := filepath.Join(dir, "policy.json")
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	p, err := Config{PolicyFile: write(`{"rules":[{"cn":"a","role":"viewer"}]}`), DefaultRole: "none"}.Load()
	if err != nil || p.DefaultRole != RoleNone || len(p.Rules) != 1 || p.Rules[0].role != RoleViewer {
		t.Fatalf("Load: %+v %v", p, err)
	}
	if p, err := (Config{}).Load(); err != nil || p.DefaultRole != RoleAdmin || len(p.Rules) != 0 {
		t.Errorf("zero Config: %+v %v", p, err)
	}
	for _, bad := range []string{
		`{"rules":[{"cn":"a","role":"root"}]}`,
		`{"rules":[{"cn":"a","ou":"b","role":"admin"}]}`,
		`{"rules":[{"role":"admin"}]}`,
		`{"rules":[{"cn":"a","role":"admin","scopes":{}}]}`,
		`rules: []`,
	} {
		if _, err := LoadPolicy(write(bad), RoleAdmin); !errors.Is(err, ErrPolicy) {
			t.Errorf("%s: %v", bad, err)
		}
	}
	if _, err := LoadPolicy(filepath.Join(dir, "missing.json"), RoleAdmin); !errors.Is(err, ErrPolicy) {
		t.Errorf("missing file: %v", err)
	}
	if _, err := (Config{DefaultRole: "boss"}).Load(); !errors.Is(err, ErrUnknownRole) {
		t.Errorf("bad default role: %v", err)
	}
}

func TestClasses(t *testing.T) {
	want := map[Class]Role{Public: RoleNone, Read: RoleViewer, Operate: RoleOperator, Admin: RoleAdmin}
	for c, r := range want {
		if c.Needs() != r {
			t.Errorf("%v needs %v, want %v", c, c.Needs(), r)
		}
		for role := RoleNone; role <= RoleAdmin; role++ {
			if got := (Identity{Role: role}).Allowed(c); got != (role >= r) {
				t.Errorf("%v allowed %v: %v", role, c, got)
			}
		}
	}
}

func TestDenied(t *testing.T) {
	err := Deny(Identity{Name: "alice", Role: RoleViewer}, "exec into containers")
	if err.Error() != "authorization denied: alice (viewer) may not exec into containers" {
		t.Errorf("message: %s", err)
	}
	if !errors.Is(err, ErrDenied) || !errdefs.IsPermissionDenied(err) {
		t.Errorf("%v is not ErrDenied and a permission error", err)
	}
}

func TestScope(t *testing.T) {
	id := Identity{Scope: map[string]string{"team": "web", "env": "prod"}}
	if !id.InScope(map[string]string{"team": "web", "env": "prod", "x": "y"}) {
		t.Error("labels holding the scope are out of it")
	}
	if id.InScope(map[string]string{"team": "web"}) || id.InScope(map[string]string{"team": "db", "env": "prod"}) || id.InScope(nil) {
		t.Error("labels missing part of the scope are in it")
	}
	if got := id.ScopeFilters(); !reflect.DeepEqual(got, []string{"env=prod", "team=web"}) {
		t.Errorf("ScopeFilters: %v", got)
	}
	if (Identity{}).Scoped() || !id.Scoped() {
		t.Error("Scoped")
	}
}

func TestContext(t *testing.T) {
	if _, ok := From(context.Background()); ok {
		t.Error("an identity in an empty context")
	}
	id := Identity{Name: "a", Role: RoleOperator}
	if got, ok := From(With(context.Background(), id)); !ok || !reflect.DeepEqual(got, id) {
		t.Errorf("From(With) = %+v %v", got, ok)
	}
}

func TestHostAccess(t *testing.T) {
	for _, tc := range []struct {
		body string
		want string // "" for none, else a part of the first reason
	}{
		{`{"Image":"busybox"}`, ""},
		{`{"Image":"busybox","HostConfig":{"Binds":["data:/data","/anon"],"NetworkMode":"bridge","CapDrop":["ALL"],"SecurityOpt":["no-new-privileges","seccomp=builtin"],"Mounts":[{"Type":"volume","Source":"v","Target":"/v"},{"Type":"tmpfs","Target":"/t"}]}}`, ""},
		{`{"HostConfig":{"Privileged":true}}`, "privileged"},
		{`{"hostconfig":{"privileged":true}}`, "privileged"},
		{`{"HostConfig":{"Binds":["/:/host"]}}`, "bind-mount host paths (/)"},
		{`{"HostConfig":{"Binds":["/var/run/docker.sock:/var/run/docker.sock:ro"]}}`, "host paths"},
		{`{"HostConfig":{"Mounts":[{"Type":"bind","Source":"/etc","Target":"/e"}]}}`, "host paths (/etc)"},
		{`{"HostConfig":{"Mounts":[{"Type":"volume","Target":"/e","VolumeOptions":{"DriverConfig":{"Name":"local","Options":{"type":"none","o":"bind","device":"/etc"}}}}]}}`, "volumes that bind host paths"},
		{`{"HostConfig":{"NetworkMode":"host"}}`, "host's network"},
		{`{"HostConfig":{"PidMode":"host"}}`, "host's PID"},
		{`{"HostConfig":{"IpcMode":"host"}}`, "host's IPC"},
		{`{"HostConfig":{"UTSMode":"host"}}`, "host's UTS"},
		{`{"HostConfig":{"UsernsMode":"host"}}`, "host's user"},
		{`{"HostConfig":{"CgroupnsMode":"host"}}`, "host's cgroup"},
		{`{"HostConfig":{"CapAdd":["SYS_ADMIN"]}}`, "capabilities (SYS_ADMIN)"},
		{`{"HostConfig":{"Devices":[{"PathOnHost":"/dev/sda"}]}}`, "devices"},
		{`{"HostConfig":{"DeviceCgroupRules":["c 1:3 mr"]}}`, "devices"},
		{`{"HostConfig":{"SecurityOpt":["seccomp=unconfined"]}}`, "confinement"},
		{`{"HostConfig":{"SecurityOpt":["apparmor:unconfined"]}}`, "confinement"},
		{`{"HostConfig":{"SecurityOpt":["label=disable"]}}`, "confinement"},
		{`{"HostConfig":{"SecurityOpt":["systempaths=unconfined"]}}`, "confinement"},
		{`{"HostConfig":{"SecurityOpt":["seccomp={\"defaultAction\":\"SCMP_ACT_ALLOW\"}"]}}`, "confinement"},
		{`{"HostConfig":{"VolumesFrom":["admins-box"]}}`, "volumes-from"},
	} {
		req, err := ParseCreate([]byte(tc.body))
		if err != nil {
			t.Fatalf("%s: %v", tc.body, err)
		}
		got := req.HostAccess()
		switch {
		case tc.want == "" && len(got) > 0:
			t.Errorf("%s: refused: %v", tc.body, got)
		case tc.want != "" && (len(got) == 0 || !strings.Contains(got[0], tc.want)):
			t.Errorf("%s: got %v, want %q", tc.body, got, tc.want)
		}
	}
}

func TestParseCreateRefusesAmbiguousFields(t *testing.T) {
	for _, body := range []string{
		`{"HostConfig":{},"hostConfig":{"Privileged":true}}`,
		`{"HostConfig":{"Privileged":false,"privileged":true}}`,
		`{"Labels":{},"labels":{}}`,
	} {
		if _, err := ParseCreate([]byte(body)); !errors.Is(err, ErrAmbiguous) {
			t.Errorf("%s: %v", body, err)
		}
	}
	if _, err := ParseCreate([]byte(`{"Image":`)); err == nil {
		t.Error("truncated JSON parsed")
	}
}

func TestContainerRefs(t *testing.T) {
	req, err := ParseCreate([]byte(`{"HostConfig":{"NetworkMode":"container:web","PidMode":"container:db","IpcMode":"shareable","VolumesFrom":["data:ro"],"Links":["cache:c"]}}`))
	if err != nil {
		t.Fatal(err)
	}
	if got := req.ContainerRefs(); !reflect.DeepEqual(got, []string{"web", "db", "data", "cache"}) {
		t.Errorf("ContainerRefs: %v", got)
	}
}

func TestForceScope(t *testing.T) {
	scope := map[string]string{"team": "web"}
	out, err := ForceScope([]byte(`{"Image":"busybox","labels":{"a":"1"}}`), scope)
	if err != nil {
		t.Fatal(err)
	}
	req, err := ParseCreate(out)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(req.Labels, map[string]string{"a": "1", "team": "web"}) || !strings.Contains(string(out), `"Image":"busybox"`) {
		t.Errorf("ForceScope: %s", out)
	}
	if out, err := ForceScope([]byte(`{"Labels":{"team":"web"}}`), scope); err != nil || !strings.Contains(string(out), `"team":"web"`) {
		t.Errorf("same value: %s %v", out, err)
	}
	if _, err := ForceScope([]byte(`{"Labels":{"team":"db"}}`), scope); !errors.Is(err, ErrScopeLabel) || !errors.Is(err, ErrDenied) {
		t.Errorf("other value: %v", err)
	}
	if out, err := ForceScope([]byte(`{"Labels":null}`), scope); err != nil || !strings.Contains(string(out), `"Labels":{"team":"web"}`) {
		t.Errorf("null labels: %s %v", out, err)
	}
	if out, err := ForceScope([]byte(`{"x":1}`), nil); err != nil || string(out) != `{"x":1}` {
		t.Errorf("no scope changed the body: %s %v", out, err)
	}
}

func TestExecAndUpdateBodies(t *testing.T) {
	if p, err := ExecPrivileged([]byte(`{"Cmd":["sh"],"privileged":true}`)); err != nil || !p {
		t.Errorf("privileged exec: %v %v", p, err)
	}
	if p, err := ExecPrivileged([]byte(`{"Cmd":["sh"]}`)); err != nil || p {
		t.Errorf("plain exec: %v %v", p, err)
	}
	if w, err := UpdateHostAccess([]byte(`{"Memory":1000000,"Devices":[{"PathOnHost":"/dev/mem"}]}`)); err != nil || len(w) != 1 {
		t.Errorf("update with devices: %v %v", w, err)
	}
	if w, err := UpdateHostAccess([]byte(`{"Memory":1000000}`)); err != nil || len(w) != 0 {
		t.Errorf("update of memory: %v %v", w, err)
	}
}

func TestRunningHostAccessIgnoresCgroupv1Default(t *testing.T) {
	req, err := ParseCreate([]byte(`{"HostConfig":{"CgroupnsMode":"host","NetworkMode":"bridge","IpcMode":"private"}}`))
	if err != nil {
		t.Fatal(err)
	}
	if got := req.RunningHostAccess(); len(got) != 0 {
		t.Errorf("a plain container on cgroup v1: %v", got)
	}
	if len(req.HostAccess()) != 1 {
		t.Error("a create asking for the host's cgroup namespace passed")
	}
	req, _ = ParseCreate([]byte(`{"HostConfig":{"CgroupnsMode":"host","Privileged":true}}`))
	if got := req.RunningHostAccess(); len(got) != 1 || !strings.Contains(got[0], "privileged") {
		t.Errorf("a privileged container: %v", got)
	}
}

// Over a real unix socket the server's local address says "unix".
func TestIdentifyUnixSocket(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "api.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan Identity, 1)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got <- Default().Identify(r) })}
	go func() { _ = srv.Serve(l) }()
	defer srv.Close()
	c := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
	resp, err := c.Get("http://shoal/_ping")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if id := <-got; id.Source != SourceUnix || id.Role != RoleAdmin {
		t.Errorf("unix socket client: %+v", id)
	}
}
