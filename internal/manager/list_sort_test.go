package manager

import (
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"

	"github.com/shoal-dev/shoal/internal/engine"
)

// The radix sort of a large list gives exactly the comparison sort's
// order: newest first, equal times by ID, negative and zero times too.
func TestSortNewestFirstRadix(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{0, 1, 511, 512, 3000, 30000} {
		items := make([]listed, n)
		for i := range items {
			var created int64
			switch r.IntN(5) {
			case 0:
				created = 1_700_000_000_000_000_000 + r.Int64N(1000) // many ties
			case 1:
				created = -r.Int64N(1 << 40)
			case 2:
				created = 0
			default:
				created = 1_700_000_000_000_000_000 + r.Int64N(1<<42)
			}
			items[i] = listed{c: &engine.Container{ID: strconv.Itoa(r.IntN(1 << 30))}, created: created}
		}
		want := slices.Clone(items)
		slices.SortFunc(want, newestFirst)
		got := sortNewestFirst(items, make([]listed, n))
		for i := range want {
			if got[i].created != want[i].created || got[i].c.ID != want[i].c.ID {
				t.Fatalf("n=%d: at %d got %d %s, want %d %s", n, i, got[i].created, got[i].c.ID, want[i].created, want[i].c.ID)
			}
		}
	}
}
