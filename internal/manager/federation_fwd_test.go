package manager_test

import (
	"bufio"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/enginesim"
)

// The shoal above prefers the inner node that holds a create's image, as
// it does for an engine of its own: the member's other node would have to
// pull it (and fail, for an image built or loaded there).
func TestFederationPlacesByLeafImages(t *testing.T) {
	e1 := sim(t, enginesim.Options{Name: "e1", NCPU: 2, MemTotal: 2 << 30})
	e2 := sim(t, enginesim.Options{Name: "e2", NCPU: 2, MemTotal: 2 << 30, Images: 2})
	siteA := startLevel(t, "siteA", nil, e1.Addr(), e2.Addr())
	top := startLevel(t, "top", nil, siteA.addr())
	for _, name := range []string{"i1", "i2", "i3"} {
		if code, msg := top.create(t, name, map[string]any{"Image": "sim/image-1:latest"}); code != http.StatusCreated {
			t.Fatalf("create %s: %d %s", name, code, msg)
		}
	}
	if running(e2) != 3 || running(e1) != 0 {
		t.Errorf("e1 holds %d, e2 %d; want all 3 on e2, which has the image", running(e1), running(e2))
	}
}

// Events from a member name the inner node under the member, stacked as
// containers' names are.
func TestFederationEventsStackNodeNames(t *testing.T) {
	e1 := sim(t, enginesim.Options{Name: "e1", NCPU: 2, MemTotal: 2 << 30})
	siteA := startLevel(t, "siteA", nil, e1.Addr())
	top := startLevel(t, "top", nil, siteA.addr())
	resp, err := http.Get(top.url + "/v1.47/events?filters=" + `{"type":["container"],"event":["create"]}`)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got := make(chan map[string]string, 1)
	go func() {
		var ev struct {
			Actor struct{ Attributes map[string]string }
		}
		if json.NewDecoder(bufio.NewReader(resp.Body)).Decode(&ev) == nil {
			got <- ev.Actor.Attributes
		}
	}()
	if code, msg := top.create(t, "web", map[string]any{"Image": "busybox"}); code != http.StatusCreated {
		t.Fatalf("create: %d %s", code, msg)
	}
	select {
	case a := <-got:
		if a["node.name"] != "siteA/e1" || a["name"] != "web" {
			t.Errorf("create event at the top: node.name %q name %q; want siteA/e1, web", a["node.name"], a["name"])
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no create event at the top")
	}
}
