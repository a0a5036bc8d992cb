package shoaltest

import (
	"strconv"
	"strings"
)

// Obs is one observed fact of a scenario, already normalised, as the
// scenario tests compare shoal's with swarm mode's (and record them).
type Obs struct{ Step, Val string }

// AddStep appends an observation to list; a step seen before gets " #2",
// " #3"... so that each keeps its own value.
func AddStep(list []Obs, step, val string) []Obs {
	n := 1
	for _, o := range list {
		if o.Step == step || strings.HasPrefix(o.Step, step+" #") {
			n++
		}
	}
	if n > 1 {
		step += " #" + strconv.Itoa(n)
	}
	return append(list, Obs{step, val})
}
