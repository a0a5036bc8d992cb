package engine

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/moby/moby/api/types/image"
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

// The record keeps its times as unix nanoseconds: each comes back as it
// was set, the zero time as the zero time.
func TestContainerTimesRoundTrip(t *testing.T) {
	for _, at := range []time.Time{
		{}, time.Date(2026, 11, 30, 6, 33, 50, 123456789, time.UTC),
		time.Date(1970, 1, 1, 0, 0, 0, 2, time.UTC), time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC),
	} {
		var c Container
		c.SetTimes(at, at.Add(time.Second), at.Add(-time.Nanosecond))
		if !c.StartedAt().Equal(at) || c.StartedAt().IsZero() != at.IsZero() {
			t.Errorf("StartedAt %v gave back %v", at, c.StartedAt())
		}
		if at.IsZero() {
			continue
		}
		if !c.FinishedAt().Equal(at.Add(time.Second)) || !c.CreatedAt().Equal(at.Add(-time.Nanosecond)) {
			t.Errorf("%v: FinishedAt %v, CreatedAt %v", at, c.FinishedAt(), c.CreatedAt())
		}
		if at.Unix() != 0 && c.CreatedNanos() != at.UnixNano()-1 {
			t.Errorf("%v: CreatedNanos %d", at, c.CreatedNanos())
		}
	}
	var c Container
	c.SetTimes(time.Unix(0, 0), time.Time{}, time.Time{}) // 0 is the zero time: the epoch is a nanosecond after
	if c.StartedAt().IsZero() || c.StartedAt().Sub(time.Unix(0, 0)) > time.Nanosecond {
		t.Errorf("the unix epoch gave back %v", c.StartedAt())
	}
	far := time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC)
	c.SetTimes(far, time.Time{}, time.Time{})
	if c.StartedAt().IsZero() || c.StartedAt().Year() != 2262 || !c.FinishedAt().IsZero() {
		t.Errorf("a time past 2262 gave %v, the zero time %v", c.StartedAt(), c.FinishedAt())
	}
	c = Container{Created: 1700000000}
	if c.CreatedNanos() != 1700000000*1e9 {
		t.Errorf("not inspected: CreatedNanos %d", c.CreatedNanos())
	}
}

// A record's ID and names share the bytes of its kept JSON values.
func TestDecodeContainersSharesIDAndNames(t *testing.T) {
	list, err := DecodeContainers([]byte(`[{"Id":"4a6b","Names":["/web","/other/alias"],"Image":"busybox"},
		{"Id":"5c7d","Names":["/db"]},{"Id":"6e8f"},{"Id":"7f","Names":["/a<b"]}]`), "node1")
	if err != nil {
		t.Fatal(err)
	}
	inside := func(s, hay string) bool {
		p, h := uintptr(unsafe.Pointer(unsafe.StringData(s))), uintptr(unsafe.Pointer(unsafe.StringData(hay)))
		return p >= h && p+uintptr(len(s)) <= h+uintptr(len(hay))
	}
	want := []struct {
		id    string
		names []string
	}{{"4a6b", []string{"/web", "/other/alias"}}, {"5c7d", []string{"/db"}}, {"6e8f", nil}, {"7f", []string{"/a<b"}}}
	for i, c := range list {
		if c.ID != want[i].id || !slices.Equal(c.Names, want[i].names) || (c.Names == nil) != (want[i].names == nil) {
			t.Fatalf("record %d: %q %q, want %q %q", i, c.ID, c.Names, want[i].id, want[i].names)
		}
		if !inside(c.ID, c.raw.vals) {
			t.Errorf("%s: ID not in the kept values %q", c.ID, c.raw.vals)
		}
		for _, n := range c.Names {
			if n != "/a<b" && !inside(n, c.raw.vals) { // JSON writes < as \u003c
				t.Errorf("%s: name %q not in the kept values %q", c.ID, n, c.raw.vals)
			}
		}
		if c.Inspected == nil || c.Memory != 0 {
			t.Errorf("%s: not inspected, yet %+v", c.ID, c.Inspected)
		}
	}
	list[0].Names = append(list[0].Names, "/x")
	if list[1].Names[0] != "/db" {
		t.Error("appending to one record's names changed the next one's")
	}
}

// Containers with the same resources, environment and spec share one
// Inspected; it goes once none holds it.
func TestInternInspected(t *testing.T) {
	mk := func(env ...string) Inspected {
		return Inspected{Memory: 64 << 20, Env: env}
	}
	a, b := internInspected(mk("A=1", "B=2")), internInspected(mk("A=1", "B=2"))
	if a != b {
		t.Error("equal contents are not shared")
	}
	for _, other := range []Inspected{mk("A=1"), mk("A=1B=2"), mk("A=1", "B=2", ""), mk(), {Memory: 64 << 20, Env: []string{}},
		{Memory: 64 << 20, Env: []string{"A=1", "B=2"}, Error: "x"}, {Memory: 64 << 20, Env: []string{"A=1", "B=2"}, Spec: []byte(`{}`)},
		{Memory: 1, Env: []string{"A=1", "B=2"}}} {
		if p := internInspected(other); p == a || !reflect.DeepEqual(*p, other) {
			t.Errorf("%+v interned as %+v", other, *p)
		}
	}
	if internInspected(Inspected{}) != notInspected {
		t.Error("nothing inspected is not the shared empty one")
	}
	key := a.key()
	a, b = nil, nil
	if !goneAfterGC(func() bool { return inspected.held(key) }) {
		t.Error("an Inspected no container holds is still held")
	}
}

// goneAfterGC collects until held says no (a weakly held entry's cleanup
// ran), for at most ~100 collections; it says whether that happened.
func goneAfterGC(held func() bool) bool {
	for range 100 {
		runtime.GC()
		if !held() {
			return true
		}
		time.Sleep(time.Millisecond)
	}
	return false
}

// What an inspect says goes to the record; the list's own values stay.
func TestInspectFillsRecord(t *testing.T) {
	e := fakeEngine(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v1.41/containers/json":
			_, _ = w.Write([]byte(`[{"Id":"c1","Names":["/web"],"State":"running","Status":"Up 1 second","Created":1764484430}]`))
		case "/v1.41/containers/c1/json":
			_, _ = w.Write([]byte(`{"Id":"c1","Created":"2026-11-30T06:33:50.5Z","State":{"Status":"running","ExitCode":0,"Pid":42,"Error":"",
				"StartedAt":"2026-11-30T06:33:51Z","FinishedAt":"0001-01-01T00:00:00Z","Health":{"Status":"healthy"}},
				"Config":{"Env":["A=1"]},"HostConfig":{"NanoCpus":500000000,"Memory":1024,"CpuShares":2,"MemoryReservation":512}}`))
		default:
			w.WriteHeader(http.StatusNotFound)
		}
	})
	if err := e.RefreshContainer(context.Background(), "c1"); err != nil {
		t.Fatal(err)
	}
	c := e.Container("c1")
	if c == nil || c.PID != 42 || c.HealthStatus != "healthy" || c.NanoCPUs != 5e8 || c.Memory != 1024 || c.CPUShares != 2 ||
		c.MemoryReservation != 512 || !slices.Equal(c.Env, []string{"A=1"}) || c.Error != "" || c.Spec != nil {
		t.Fatalf("cached %+v %+v", c, c.Inspected)
	}
	if !c.StartedAt().Equal(time.Date(2026, 11, 30, 6, 33, 51, 0, time.UTC)) || !c.FinishedAt().IsZero() ||
		c.CreatedNanos() != time.Date(2026, 11, 30, 6, 33, 50, 5e8, time.UTC).UnixNano() {
		t.Errorf("times %v %v %d", c.StartedAt(), c.FinishedAt(), c.CreatedNanos())
	}
}

// Image lists share their strings across engines and equal label maps
// within a list, keeping nil and empty apart.
func TestShareImages(t *testing.T) {
	list := func() []image.Summary {
		var imgs []image.Summary
		_ = json.Unmarshal([]byte(`[{"Id":"sha256:aa","ParentId":"","RepoTags":["busybox:latest"],"RepoDigests":["busybox@sha256:bb"],"Labels":{}},
			{"Id":"sha256:cc","RepoTags":["redis:7"],"Labels":{}},{"Id":"sha256:dd","Labels":null}]`), &imgs)
		return imgs
	}
	a, b := list(), list()
	shareImages(a)
	shareImages(b)
	same := func(x, y string) bool { return unsafe.StringData(x) == unsafe.StringData(y) }
	if !same(a[0].ID, b[0].ID) || !same(a[0].RepoTags[0], b[0].RepoTags[0]) || !same(a[0].RepoDigests[0], b[0].RepoDigests[0]) {
		t.Error("the same image's strings are not shared across lists")
	}
	if a[0].ID != "sha256:aa" || a[1].RepoTags[0] != "redis:7" || a[0].RepoDigests[0] != "busybox@sha256:bb" {
		t.Errorf("changed: %+v", a)
	}
	if a[0].Labels == nil || a[2].Labels != nil || fmt.Sprintf("%p", a[0].Labels) != fmt.Sprintf("%p", a[1].Labels) {
		t.Errorf("labels %v %v %v", a[0].Labels, a[1].Labels, a[2].Labels)
	}
}

// Engines whose /images/json answers are the same hold one decoded list;
// a different answer gets its own; a list no engine holds goes.
func TestSharedImageList(t *testing.T) {
	const same = `[{"Id":"sha256:aa","RepoTags":["busybox:latest"],"RepoDigests":[],"Created":1,"Size":2,"Containers":-1,"SharedSize":-1,"Labels":{}}]`
	answers := []string{same, same, `[{"Id":"sha256:cc","RepoTags":["redis:7"],"Containers":-1,"SharedSize":-1}]`, `[]`, `not json`}
	var engines []*Engine
	for _, a := range answers {
		engines = append(engines, fakeEngine(t, func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/v1.41/images/json" {
				w.WriteHeader(http.StatusNotFound)
				return
			}
			_, _ = w.Write([]byte(a))
		}))
	}
	ctx := context.Background()
	for i, e := range engines[:4] {
		if err := e.RefreshImages(ctx); err != nil {
			t.Fatalf("engine %d: %v", i, err)
		}
	}
	if err := engines[4].RefreshImages(ctx); err == nil || engines[4].Images() != nil {
		t.Errorf("a bad answer: error %v, images %v", err, engines[4].Images())
	}
	a, b, c := engines[0].Images(), engines[1].Images(), engines[2].Images()
	if len(a) != 1 || &a[0] != &b[0] {
		t.Fatalf("equal answers are not one list: %v %v", a, b)
	}
	if a[0].ID != "sha256:aa" || a[0].RepoTags[0] != "busybox:latest" || a[0].Size != 2 || a[0].Containers != -1 || a[0].Labels == nil {
		t.Errorf("decoded %+v", a[0])
	}
	if len(c) != 1 || c[0].ID != "sha256:cc" || len(engines[3].Images()) != 0 {
		t.Errorf("other answers: %+v %+v", c, engines[3].Images())
	}
	if cap(a) != len(a) {
		t.Errorf("the kept list has room for %d images, holds %d", cap(a), len(a))
	}
	key := sha256.Sum256([]byte(same))
	engines[0].images, engines[1].images = nil, nil
	a, b = nil, nil
	if !goneAfterGC(func() bool { return imageLists.held(key) }) {
		t.Error("a list no engine holds is still held")
	}
}

// The cache's set answers as the maps it replaced: by ID, and by name the
// container indexed under it.
func TestContainerSetMatchesMaps(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	var s containerSet
	byID := map[string]*Container{}
	for i := range 5000 {
		id := fmt.Sprintf("c%02d", r.IntN(40))
		switch op := r.IntN(10); {
		case op < 6:
			c := &Container{ID: id, Names: []string{fmt.Sprintf("/n%d", r.IntN(30))}}
			s.put(c)
			byID[id] = c
		case op < 9:
			s.remove(id)
			delete(byID, id)
		default:
			m := map[string]*Container{}
			for k, v := range byID {
				if r.IntN(2) == 0 {
					m[k] = v
				}
			}
			s, byID = newContainerSet(m), m
		}
		if s.len() != len(byID) || len(s.byName) != len(byID) {
			t.Fatalf("op %d: %d and %d held, want %d", i, s.len(), len(s.byName), len(byID))
		}
		names := map[string]bool{}
		for id, c := range byID {
			if s.get(id) != c {
				t.Fatalf("op %d: get(%s) = %v", i, id, s.get(id))
			}
			names[c.Name()] = true
		}
		for n := range 30 {
			name := fmt.Sprintf("n%d", n)
			if c := s.named(name); (c != nil) != names[name] || c != nil && (c.Name() != name || byID[c.ID] != c) {
				t.Fatalf("op %d: named(%s) = %v", i, name, c)
			}
		}
		if !slices.IsSortedFunc(s.byID, func(a, b *Container) int { return strings.Compare(a.ID, b.ID) }) {
			t.Fatalf("op %d: not sorted by ID", i)
		}
	}
}

// Name is Path().Base(), without allocating.
func TestNameIsPathBase(t *testing.T) {
	for _, names := range [][]string{nil, {}, {"/web"}, {"web"}, {"/node1/web"}, {"/a/b/link", "/b"}, {"/b", "/a/link"},
		{"//x//y//"}, {"/"}, {"", "/z"}, {"/m/n1/web", "/n1/web"}, {"/x/one", "/y/two"}} {
		c := &Container{Names: names}
		if got, want := c.Name(), c.Path().Base(); got != want {
			t.Errorf("%q: Name %q, Path().Base() %q", names, got, want)
		}
	}
	c := &Container{Names: []string{"/node1/web", "/other/web/alias"}}
	if n := testing.AllocsPerRun(100, func() { _ = c.Name() }); n != 0 {
		t.Errorf("Name allocates %v times", n)
	}
}

// DecodeContainers keeps each entry as json.Marshal of its top-level
// values (keys sorted, Status left out, names under the node) would write
// it: values are taken from the answer without copies and written through
// one reused encoder, which must not change a byte (HTML escaping
// included) nor let one entry's values leak into the next.
func TestDecodeContainersKeepsMarshalledEntry(t *testing.T) {
	list := `[{"Id":"a1","Names":["/web"],"Status":"Up","Labels":{"x":"<b>&amp;</b>","é":"\u00e9"},"Command":"sh -c \"a\u003cb\"","Zeta":[1,{"b":2,"a":1}],"Created":1700000000},` +
		`{"Names":["/db","/web/db"],"Id":"b2","State":"exited","Ports":[{"PrivatePort":80,"Type":"tcp"}]},` +
		`{"Id":"c3"}]`
	cs, err := DecodeContainers([]byte(list), "node1")
	if err != nil {
		t.Fatal(err)
	}
	var entries []map[string]json.RawMessage
	if err := json.Unmarshal([]byte(list), &entries); err != nil {
		t.Fatal(err)
	}
	for i, obj := range entries {
		delete(obj, "Status")
		names := []string{} // a list without names keeps []
		_ = json.Unmarshal(obj["Names"], &names)
		for j, n := range names {
			names[j] = ParseNamePath(n).Under("node1").String()
		}
		obj["Names"], _ = json.Marshal(names)
		want, _ := json.Marshal(obj)
		got := cs[i].AppendJSON(nil, "S")
		wantAll := `{"Status":"S",` + string(want[1:])
		if string(got) != wantAll {
			t.Errorf("entry %d:\n got %s\nwant %s", i, got, wantAll)
		}
	}
}

// DecodeContainers keeps nothing of its input (List decodes from a read
// buffer that is reused): records and kept JSON read the same after the
// input is overwritten.
func TestDecodeContainersKeepsNothingOfInput(t *testing.T) {
	list := []byte(`[{"Id":"a1","Names":["/web"],"Image":"busybox","ImageID":"sha256:1","State":"running","Status":"Up",` +
		`"Labels":{"k":"v"},"Ports":[{"PrivatePort":80,"PublicPort":8080,"Type":"tcp"}],"Mounts":[{"Name":"v","Destination":"/d"}],` +
		`"NetworkSettings":{"Networks":{"bridge":{"NetworkID":"n1"}}}}]`)
	cs, err := DecodeContainers(list, "node1")
	if err != nil {
		t.Fatal(err)
	}
	want := string(cs[0].AppendJSON(nil, "S"))
	rec := fmt.Sprintf("%s %v %s %s %s %v %v %v", cs[0].ID, cs[0].Names, cs[0].Image, cs[0].ImageID, cs[0].State, cs[0].Labels, cs[0].Ports, cs[0].Networks)
	for i := range list {
		list[i] = 'x'
	}
	if got := string(cs[0].AppendJSON(nil, "S")); got != want {
		t.Errorf("kept JSON changed with the input:\n%s\n%s", got, want)
	}
	if got := fmt.Sprintf("%s %v %s %s %s %v %v %v", cs[0].ID, cs[0].Names, cs[0].Image, cs[0].ImageID, cs[0].State, cs[0].Labels, cs[0].Ports, cs[0].Networks); got != rec {
		t.Errorf("record changed with the input:\n%s\n%s", got, rec)
	}
	if !strings.Contains(want, `"Id":"a1"`) || !strings.Contains(rec, "busybox") {
		t.Errorf("decoded %s / %s", want, rec)
	}
}
