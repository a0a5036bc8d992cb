package discovery

import (
	"reflect"
	"testing"
)

func TestOpenKV(t *testing.T) {
	for _, tc := range []struct {
		uri    string
		hosts  []string
		prefix string
	}{
		{"etcd://h1:2379,h2:2379/prefix", []string{"h1:2379", "h2:2379"}, "prefix"},
		{"etcd://h1/a/b/", []string{"h1:2379"}, "a/b"},
		{"zk://h1,h2:2182/p", []string{"h1:2181", "h2:2182"}, "p"},
		{"consul://h", []string{"h:8500"}, ""},
	} {
		b, err := Open(tc.uri, nil)
		if err != nil {
			t.Fatalf("%s: %v", tc.uri, err)
		}
		kv := b.(*KV)
		if !reflect.DeepEqual(kv.Hosts, tc.hosts) || kv.Prefix != tc.prefix {
			t.Errorf("%s: hosts %v prefix %q", tc.uri, kv.Hosts, kv.Prefix)
		}
	}
	if kv, _ := Open("etcd://h/p", nil); kv.(*KV).key(nodesDir, "a:1") != "p/docker/swarm/nodes/a:1" {
		t.Errorf("key: %s", kv.(*KV).key(nodesDir, "a:1"))
	}
	if kv, _ := Open("etcd://h", nil); kv.(*KV).key(leaderDir) != "docker/swarm/leader" {
		t.Errorf("key without prefix: %s", kv.(*KV).key(leaderDir))
	}
	for _, bad := range []struct {
		uri  string
		opts map[string]string
	}{
		{"etcd:///p", nil},
		{"etcd://h/p", map[string]string{"kv.bogus": "x"}},
		{"etcd://h/p", map[string]string{"kv.certfile": "/x"}},
		{"zk://h/p", map[string]string{"kv.cacertfile": "/does/not/exist"}},
	} {
		if _, err := Open(bad.uri, bad.opts); err == nil {
			t.Errorf("Open(%q, %v): want error", bad.uri, bad.opts)
		}
	}
}

func TestParseOptions(t *testing.T) {
	m, err := ParseOptions([]string{"kv.certfile=/a=b", "kv.keyfile="})
	if err != nil || m["kv.certfile"] != "/a=b" || m["kv.keyfile"] != "" {
		t.Fatalf("%v %v", m, err)
	}
	if _, err := ParseOptions([]string{"novalue"}); err == nil {
		t.Fatal("want error")
	}
}

func TestNodeKey(t *testing.T) {
	if nodeKey("10.0.0.1:2375") != "10.0.0.1:2375" || nodeKey("unix:///run/d.sock") != "unix:%2F%2F%2Frun%2Fd.sock" {
		t.Fatal(nodeKey("unix:///run/d.sock"))
	}
}
