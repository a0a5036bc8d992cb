package manager_test

import (
	"net/http"
	"testing"

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
