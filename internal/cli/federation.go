package cli

import (
	"fmt"
	"strings"

	"github.com/spf13/pflag"
)

// identityOpts are a shoal's own name and labels: what it answers in
// /info, and what a shoal above it (a federation) knows it by and places
// with (constraint:region==eu holds for every node of a shoal labelled
// region=eu).
type identityOpts struct {
	name   string
	labels []string
}

func identityFlags(f *pflag.FlagSet, o *identityOpts) {
	f.StringVar(&o.name, "name", "", "this shoal's name in 'docker info' and, when it is a node of another shoal, its node name there (default: the host name)")
	f.StringArrayVar(&o.labels, "label", nil, "a label of this shoal, key=value, held by all its nodes for placement and shown to a shoal above it (repeatable)")
}

// labelMap checks and collects --label entries.
func (o *identityOpts) labelMap() (map[string]string, error) {
	if len(o.labels) == 0 {
		return nil, nil
	}
	out := make(map[string]string, len(o.labels))
	for _, l := range o.labels {
		k, v, ok := strings.Cut(l, "=")
		if !ok || strings.TrimSpace(k) == "" {
			return nil, fmt.Errorf("--label %q: want key=value", l)
		}
		out[k] = v
	}
	return out, nil
}
