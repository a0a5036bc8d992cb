package engine

import (
	"fmt"
	"testing"
)

func TestEntryJSONRoundTrips(t *testing.T) {
	for _, in := range []string{
		`{}`,
		`{"Id":"abc"}`,
		`{"Command":"sh -c \"echo }{][\\\\\"","Created":1700000000,"Id":"abc","Labels":{"Id":"x","a":"b\u0000c"},"Names":["/n/web"],"Ports":[]}`,
		`{"HostConfig":{"NetworkMode":"bridge"},"Mounts":[{"Name":"v1","Source":"/s","Destination":"/d","RW":true}],"NetworkSettings":{"Networks":{"bridge":{"EndpointID":"e1","IPAddress":"172.17.0.2","NetworkID":"n1","IPAMConfig":null}}},"SizeRw":-1.5e3,"State":"running"}`,
		`{"Names":[],"Extra":[[1,{"Id":[true,false,null]}],{}]}`,
		`[1,2,{"Id":3}]`,
		`not json`,
		`{"Id":"a"`,
		"{\"Id\":\"a\x00\"}",
	} {
		r := newEntryJSON([]byte(in))
		if got := string(r.bytes()); got != in {
			t.Errorf("round trip of %s gave %s", in, got)
		}
	}
}

func TestEntryJSONSharesSkeletons(t *testing.T) {
	entry := func(i int) entryJSON {
		return newEntryJSON(fmt.Appendf(nil, `{"Created":%d,"Id":"id%d","Image":"busybox","Names":["/n/c%d"],"NetworkSettings":{"Networks":{"bridge":{"EndpointID":"ep%d","NetworkID":"n1"}}}}`, i, i, i, i))
	}
	a, b := entry(1), entry(2)
	if a.skel != b.skel {
		t.Fatalf("skeletons differ: %q and %q", a.skel.Value(), b.skel.Value())
	}
	if a.vals == b.vals || len(a.vals) > 40 {
		t.Errorf("own values %q and %q", a.vals, b.vals)
	}
	if got := string(b.bytes()); got != `{"Created":2,"Id":"id2","Image":"busybox","Names":["/n/c2"],"NetworkSettings":{"Networks":{"bridge":{"EndpointID":"ep2","NetworkID":"n1"}}}}` {
		t.Errorf("served %s", got)
	}
}

func TestDecodeContainersSharesMaps(t *testing.T) {
	list, err := DecodeContainers([]byte(`[{"Id":"a","Names":["/a"],"Image":"busybox","Labels":{"k":"v"},"NetworkSettings":{"Networks":{"bridge":{"NetworkID":"n1"}}}},
		{"Id":"b","Names":["/b"],"Image":"busybox","Labels":{"k":"v"},"NetworkSettings":{"Networks":{"bridge":{"NetworkID":"n1"}}}},
		{"Id":"c","Names":["/c"],"Image":"busybox","Labels":{"k":"w"}}]`), "node1")
	if err != nil {
		t.Fatal(err)
	}
	a, b, c := list[0], list[1], list[2]
	if fmt.Sprintf("%p", a.Labels) != fmt.Sprintf("%p", b.Labels) || fmt.Sprintf("%p", a.Networks) != fmt.Sprintf("%p", b.Networks) {
		t.Error("equal labels or networks are not shared")
	}
	if c.Labels["k"] != "w" || a.Labels["k"] != "v" || c.Networks != nil || b.Networks["bridge"] != "n1" {
		t.Errorf("decoded %v %v %v %v", a.Labels, c.Labels, c.Networks, b.Networks)
	}
	if got := string(b.AppendJSON(nil, "Up")); got != `{"Status":"Up","Id":"b","Image":"busybox","Labels":{"k":"v"},"Names":["/node1/b"],"NetworkSettings":{"Networks":{"bridge":{"NetworkID":"n1"}}}}` {
		t.Errorf("served %s", got)
	}
}

// FuzzEntryJSON: whatever the bytes, the kept entry serves them back as they were.
func FuzzEntryJSON(f *testing.F) {
	f.Add([]byte(`{"Id":"a","Names":["/x"],"Labels":{"Name":"\"}"}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		if got := newEntryJSON(b).bytes(); string(got) != string(b) {
			t.Fatalf("%q came back as %q", b, got)
		}
	})
}
