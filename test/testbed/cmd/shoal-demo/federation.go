package main

import (
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/shoal-dev/shoal/test/testbed"
)

// The federation demo (up --federation): member siteA (region=eu) over
// the first engines, member siteB (region=us) over the last one, each a
// `shoal manage` on a loopback port of its own, and the demo's shoal on
// --listen over the two members: a shoal of shoals on one machine.

// memberPorts are the loopback ports of siteA and siteB's APIs.
var memberPorts = []int{2395, 2396}

// startMembers starts siteA and siteB, records them in the state file and
// waits for their APIs; it returns their addresses for the top's nodes://.
func startMembers(st *state, statePath, bin string, wait time.Duration) ([]string, error) {
	engines := st.Bed.Engines
	groups := [][]int{{}, {len(engines) - 1}}
	for i := 0; i < len(engines)-1; i++ {
		groups[0] = append(groups[0], i)
	}
	names, regions := []string{"siteA", "siteB"}, []string{"eu", "us"}
	var addrs []string
	for i, g := range groups {
		var nodes []string
		for _, j := range g {
			nodes = append(nodes, strings.TrimPrefix(engines[j].TCPAddr, "tcp://"))
		}
		addr := fmt.Sprintf("127.0.0.1:%d", memberPorts[i])
		sp := &shoalProcess{
			Binary: bin,
			Args: []string{"manage", "-H", "tcp://" + addr, "--name", names[i], "--label", "region=" + regions[i],
				"--data-dir", filepath.Join(st.Dir, "manage-"+names[i]), "nodes://" + strings.Join(nodes, ",")},
			Log: filepath.Join(st.Dir, names[i]+".log"),
		}
		if err := startShoal(sp); err != nil {
			return nil, err
		}
		st.Members = append(st.Members, sp)
		if err := writeState(statePath, st); err != nil {
			return nil, err
		}
		if err := waitPing("tcp://"+addr, sp, wait); err != nil {
			return nil, fmt.Errorf("%s: %w\n--- tail of %s ---\n%s", names[i], err, sp.Log, testbed.Tail(sp.Log, 20))
		}
		logf("member %s (pid %d) answers on %s over %s", names[i], sp.PID, addr, strings.Join(nodes, ","))
		addrs = append(addrs, addr)
	}
	return addrs, nil
}

// dataDir is the --data-dir of a shoal the demo started.
func (sp *shoalProcess) dataDir() string {
	for i, a := range sp.Args {
		if a == "--data-dir" && i+1 < len(sp.Args) {
			return sp.Args[i+1]
		}
	}
	return ""
}

// printFederation tells how to use the federation demo.
func printFederation(st *state, listen string) {
	for i, m := range st.Members {
		fmt.Printf("# member %s: DOCKER_HOST=tcp://127.0.0.1:%d  (log %s)\n", []string{"siteA", "siteB"}[i], memberPorts[i], m.Log)
	}
	fmt.Printf("export DOCKER_HOST=%s\n", listen)
	fmt.Println("# docker info                    # two members: siteA (region=eu), siteB (region=us), their nodes and totals")
	fmt.Println("# docker node ls")
	fmt.Println("# docker run -d --name web -e constraint:region==us busybox httpd -f -p 8080")
	fmt.Printf("# docker run -d --name db -e constraint:node==siteA/%s busybox sleep 1d\n", st.Bed.Engines[0].Hostname)
	fmt.Println("# docker ps                      # NAMES: siteB/<node>/web, siteA/<node>/db")
	fmt.Println("# docker logs web; docker exec -it db sh; docker rm -f web db")
	fmt.Println("# docker service create --name hello --replicas 4 --placement-pref spread=node.labels.region --no-resolve-image busybox sleep 1d")
	fmt.Println("# docker service ps hello        # two tasks on each member")
}
