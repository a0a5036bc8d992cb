package engine

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/shoal-dev/shoal/internal/enginesim"
)

func TestImageStreams(t *testing.T) {
	p, _ := simPool(t, 1, Options{})
	e := p.Engines()[0]
	ctx := context.Background()
	read := func(what string, rc io.ReadCloser, err error) string {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		defer rc.Close()
		b, err := io.ReadAll(rc)
		if err != nil {
			t.Fatalf("%s: reading progress: %v", what, err)
		}
		return string(b)
	}
	rc, err := e.PullImage(ctx, url.Values{"fromImage": {"alpine"}, "tag": {"3"}}, "e30=")
	if out := read("pull", rc, err); !strings.Contains(out, "Downloaded newer image for alpine:3") {
		t.Fatalf("pull progress %q", out)
	}
	rc, err = e.LoadImage(ctx, url.Values{"quiet": {"1"}}, strings.NewReader("tar"))
	if out := read("load", rc, err); !strings.Contains(out, "Loaded image") {
		t.Fatalf("load progress %q", out)
	}
	rc, err = e.ImportImage(ctx, url.Values{"fromSrc": {"-"}, "repo": {"imp"}}, strings.NewReader("tar"))
	if out := read("import", rc, err); !strings.Contains(out, "imp:latest") {
		t.Fatalf("import progress %q", out)
	}
	if _, err := e.PullImage(ctx, url.Values{"fromImage": {"missing/x"}}, ""); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "pull access denied") {
		t.Fatalf("pull of a missing image: %v", err)
	}
	list, err := e.ListImages(ctx, ClientQuery{})
	if err != nil || !strings.Contains(string(jsonOf(t, list)), `"alpine:3"`) {
		t.Fatalf("images after pull: %s %v", jsonOf(t, list), err)
	}
}

func TestImageTagRemovePrune(t *testing.T) {
	p, _ := simPool(t, 1, Options{})
	e := p.Engines()[0]
	ctx := context.Background()
	rc, err := e.PullImage(ctx, url.Values{"fromImage": {"alpine:3"}}, "")
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, rc)
	rc.Close()
	if err := e.TagImage(ctx, "alpine:3", "mine", "v1"); err != nil {
		t.Fatal("tag:", err)
	}
	if err := e.TagImage(ctx, "nope", "mine", "v1"); !errors.Is(err, ErrNotFound) || err.Error() != "No such image: nope" {
		t.Fatalf("tag of a missing image: %v", err)
	}
	del, err := e.RemoveImage(ctx, "mine:v1", url.Values{"noprune": {"1"}})
	if err != nil || len(del) != 1 || del[0].Untagged != "mine:v1" {
		t.Fatalf("rmi: %+v %v", del, err)
	}
	if _, err := e.RemoveImage(ctx, "mine:v1", nil); !errors.Is(err, ErrNotFound) {
		t.Fatalf("rmi twice: %v", err)
	}
	if r, err := e.PruneImages(ctx, ClientQuery{Version: "1.44"}); err != nil || r.ImagesDeleted == nil {
		t.Fatalf("image prune: %+v %v", r, err)
	}
}

func TestNetworksAndVolumes(t *testing.T) {
	p, _ := simPool(t, 1, Options{})
	e := p.Engines()[0]
	ctx := context.Background()
	n, err := e.CreateNetwork(ctx, "1.44", json.RawMessage(`{"Name":"front","Driver":"bridge"}`))
	if err != nil || n.ID == "" || !strings.Contains(string(n.Raw), n.ID) {
		t.Fatalf("network create: %+v %v", n, err)
	}
	if _, err := e.CreateNetwork(ctx, "", json.RawMessage(`{"Name":"front"}`)); !errors.Is(err, ErrConflict) {
		t.Fatalf("network create twice: %v", err)
	}
	nets, err := e.ListNetworks(ctx, ClientQuery{Version: "1.44"})
	if err != nil || len(nets) != 4 || !strings.Contains(string(nets[3]), `"Name":"front"`) {
		t.Fatalf("networks: %s %v", jsonOf(t, nets), err)
	}
	v, err := e.CreateVolume(ctx, "", json.RawMessage(`{"Name":"data","Labels":{"a":"b"}}`))
	if err != nil || v.Name != "data" || !strings.Contains(string(v.Raw), `"Mountpoint"`) {
		t.Fatalf("volume create: %+v %v", v, err)
	}
	if again, err := e.CreateVolume(ctx, "", json.RawMessage(`{"Name":"data"}`)); err != nil || again.Name != "data" {
		t.Fatalf("volume create of an existing name: %+v %v", again, err)
	}
	vols, err := e.ListVolumes(ctx, ClientQuery{Query: url.Values{"filters": {`{"dangling":{"true":true}}`}}})
	if err != nil || len(vols) != 1 || !strings.Contains(string(vols[0]), `"a":"b"`) {
		t.Fatalf("volumes: %s %v", jsonOf(t, vols), err)
	}
	if r, err := e.PruneNetworks(ctx, ClientQuery{}); err != nil || len(r.NetworksDeleted) != 1 || r.NetworksDeleted[0] != "front" {
		t.Fatalf("network prune: %+v %v", r, err)
	}
	if r, err := e.PruneVolumes(ctx, ClientQuery{}); err != nil || len(r.VolumesDeleted) != 1 {
		t.Fatalf("volume prune: %+v %v", r, err)
	}
	if _, err := e.CreateNetwork(ctx, "", json.RawMessage(`{}`)); !errors.Is(err, ErrInvalid) {
		t.Fatalf("network create without a name: %v", err)
	}
}

func TestPrunesAndDiskUsage(t *testing.T) {
	p, sims := simPool(t, 1, Options{})
	e := p.Engines()[0]
	ctx := context.Background()
	stopped, err := sims[0].Create(enginesim.CreateSpec{Name: "old", Image: "busybox"})
	if err != nil {
		t.Fatal(err)
	}
	running, err := sims[0].Create(enginesim.CreateSpec{Name: "up", Image: "busybox"})
	if err != nil {
		t.Fatal(err)
	}
	if err := sims[0].StartContainer(running); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "both containers cached", func() bool { return e.Container(stopped) != nil && e.Container(running) != nil })
	df, err := e.DiskUsage(ctx, ClientQuery{Version: "1.44"})
	if cs, _ := df["Containers"].([]any); err != nil || len(cs) != 2 {
		t.Fatalf("disk usage: %v %v", df, err)
	}
	r, err := e.PruneContainers(ctx, ClientQuery{})
	if err != nil || len(r.ContainersDeleted) != 1 || r.ContainersDeleted[0] != stopped {
		t.Fatalf("container prune: %+v %v", r, err)
	}
	if e.Container(stopped) != nil || e.Container(running) == nil {
		t.Fatal("the pruned container is still cached, or the running one is gone")
	}
	if r, err := e.PruneBuildCache(ctx, ClientQuery{Query: url.Values{"all": {"1"}}}); err != nil || r.CachesDeleted == nil {
		t.Fatalf("build cache prune: %+v %v", r, err)
	}
	_ = sims[0].Close()
	if _, err := e.PruneContainers(ctx, ClientQuery{}); !errors.Is(err, ErrUnreachable) {
		t.Fatalf("prune on a gone engine: %v", err)
	}
	if _, err := e.PullImage(ctx, url.Values{"fromImage": {"alpine"}}, ""); !errors.Is(err, ErrUnreachable) {
		t.Fatalf("pull on a gone engine: %v", err)
	}
}

func jsonOf(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Calls made for a client go at the client's API version (never above the
// engine's) with the client's query as sent.
func TestClientQueryVersionAndQuery(t *testing.T) {
	var got []string
	e := fakeEngine(t, func(w http.ResponseWriter, r *http.Request) {
		got = append(got, r.Method+" "+r.URL.Path+"?"+r.URL.RawQuery)
		_, _ = w.Write([]byte(`[]`))
	})
	ctx := context.Background()
	q := url.Values{"filters": {`{"label":{"a":true}}`}}
	for _, v := range []string{"1.40", "", "1.50"} {
		if _, err := e.ListNetworks(ctx, ClientQuery{Version: v, Query: q}); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{
		"GET /v1.40/networks?" + q.Encode(),
		"GET /v1.41/networks?" + q.Encode(),
		"GET /v1.41/networks?" + q.Encode(),
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("requests:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
