package cli

import "github.com/spf13/pflag"

// lockOpts are shoal init's autolock flags.
type lockOpts struct{ autolock bool }

func (l *lockOpts) flags(f *pflag.FlagSet) {
	f.BoolVar(&l.autolock, "autolock", false, "wrap the managers' keys (CA key, node keys, the store's encryption key) with an unlock key, printed once: a restarted manager waits for 'docker swarm unlock' (as docker swarm init --autolock)")
}
