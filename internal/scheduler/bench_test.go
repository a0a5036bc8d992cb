package scheduler

import (
	"fmt"
	"testing"
)

// benchPool builds n nodes shaped like a busy cluster: 4 CPUs, 16 GiB,
// five engine labels, 30 containers (a third exited), 10 images.
func benchPool(n int) []*Node {
	zones := []string{"eu-1", "eu-2", "us-1"}
	pool := make([]*Node, n)
	for i := range pool {
		node := &Node{
			ID:       fmt.Sprintf("%064x", i),
			Name:     fmt.Sprintf("node-%05d", i),
			Health:   Healthy,
			NanoCPUs: 4e9,
			Memory:   16 << 30,
			Labels: map[string]string{
				"zone": zones[i%3], "disk": "ssd", "rack": fmt.Sprint(i % 40),
				"env": "prod", "node.labels.team": "core",
			},
			OSType: "linux", Architecture: "x86_64", StorageDriver: "overlay2",
		}
		for j := range 30 {
			state := "running"
			if j%3 == 2 {
				state = "exited"
			}
			node.Containers = append(node.Containers, Container{
				ID:     fmt.Sprintf("%032x%032x", i, j),
				Name:   fmt.Sprintf("c-%d-%d", i, j),
				Image:  "app:1",
				State:  state,
				Memory: int64(64+j%4*64) << 20,
				Labels: map[string]string{"app": fmt.Sprint("svc", j%7)},
			})
		}
		for j := range 10 {
			node.Images = append(node.Images, Image{ID: fmt.Sprintf("sha256:%064x", j), RepoTags: []string{fmt.Sprintf("app:%d", j)}})
		}
		pool[i] = node
	}
	return pool
}

func BenchmarkPlace(b *testing.B) {
	for _, n := range []int{100, 1000, 10000} {
		b.Run(fmt.Sprintf("nodes=%d", n), func(b *testing.B) {
			pool := benchPool(n)
			s := New(Spread{}, Options{Overcommit: DefaultOvercommit})
			req := &Request{
				Name:   "web",
				Image:  "app:3",
				Memory: 256 << 20,
				Env:    []string{"PATH=/bin", "constraint:zone==eu-1"},
			}
			benchDecisions(b, s, req, pool)
		})
	}
}

// BenchmarkPlaceGen is BenchmarkPlace with Node.Gen set, as the manager
// sets it; with churn=k, k nodes (a round-robin choice) are republished
// before each decision, as new *Nodes with a new Gen and one container
// more, the way the manager publishes an engine whose cache changed. The
// time of a churn run includes building those nodes (and the GC they cause
// on a large heap), not only Place.
func BenchmarkPlaceGen(b *testing.B) {
	for _, c := range []struct{ nodes, churn int }{{1000, 0}, {10000, 0}, {10000, 10}} {
		b.Run(fmt.Sprintf("nodes=%d/churn=%d", c.nodes, c.churn), func(b *testing.B) {
			pool := benchPool(c.nodes)
			for i, n := range pool {
				n.Gen = uint64(i + 1)
			}
			s := New(Spread{}, Options{Overcommit: DefaultOvercommit})
			req := &Request{
				Name:   "web",
				Image:  "app:3",
				Memory: 256 << 20,
				Env:    []string{"PATH=/bin", "constraint:zone==eu-1"},
			}
			if _, err := s.Place(req, pool); err != nil {
				b.Fatal(err)
			}
			next := 0
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				for range c.churn {
					cp := *pool[next]
					cp.Gen++
					cp.Containers = append(cp.Containers[:len(cp.Containers):len(cp.Containers)], Container{ID: "new", State: "created", Memory: 64 << 20})
					pool[next] = &cp
					next = (next + 1) % len(pool)
				}
				if _, err := s.Place(req, pool); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "decisions/s")
		})
	}
}

// BenchmarkPlaceImageAffinity is a create as the manager asks it: the
// soft affinity image==~<image> it adds to every create (prefer nodes
// that have the image), over nodes with Gen set.
func BenchmarkPlaceImageAffinity(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("nodes=%d", n), func(b *testing.B) {
			pool := benchPool(n)
			for i, node := range pool {
				node.Gen = uint64(i + 1)
			}
			s := New(Spread{}, Options{Overcommit: DefaultOvercommit})
			rules, _, err := ParseRules([]string{"affinity:image==~app:3"}, nil)
			if err != nil {
				b.Fatal(err)
			}
			req := &Request{Image: "app:3", Memory: 256 << 20, Rules: &rules}
			benchDecisions(b, s, req, pool)
		})
	}
}

// benchDecisions times placing req on pool, after one placement that
// warms the memoized totals, and reports decisions a second.
func benchDecisions(b *testing.B, s *Scheduler, req *Request, pool []*Node) {
	b.Helper()
	if _, err := s.Place(req, pool); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := s.Place(req, pool); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "decisions/s")
}
