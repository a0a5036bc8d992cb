package e2e

import (
	"archive/tar"
	"context"
	"encoding/json"
	"io"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
)

// TestPsSpreadLookup: three containers land on three nodes (spread); ps
// merges all engines, names read node/name; every lookup form works.
func TestPsSpreadLookup(t *testing.T) {
	label := "e2e.ps=" + uniq("l")
	var names, ids []string
	for i := 0; i < 3; i++ {
		n := uniq("ps")
		names = append(names, n)
		rmf(t, n)
		ids = append(ids, strings.TrimSpace(dk(t, "run", "-d", "--name", n, "--label", label, "busybox", "sleep", "300")))
	}
	nodes := map[string]string{} // name → node
	for _, n := range names {
		c := inspect(t, n)
		if c.Node == nil {
			t.Fatalf("inspect %s: no Node", n)
		}
		nodes[n] = c.Node.Name
	}
	distinct := map[string]bool{}
	for _, nd := range nodes {
		distinct[nd] = true
	}
	if len(distinct) != 3 {
		t.Errorf("spread: 3 containers on %d nodes: %v", len(distinct), nodes)
	}
	// The engines each see one of them.
	for i := range bed.Engines {
		out := dkOn(t, bed.Engines[i].UnixHost(), "ps", "-q", "--filter", "label="+label)
		if len(lines(out)) != 1 {
			t.Errorf("engine %d holds %d of the containers: %q", i, len(lines(out)), out)
		}
	}
	out := dk(t, "ps", "--filter", "label="+label, "--format", "{{.Names}}")
	got := lines(out)
	if len(got) != 3 {
		t.Fatalf("ps --filter label: %q", out)
	}
	for _, n := range names {
		want := nodes[n] + "/" + n
		if !strings.Contains(out, want) {
			t.Errorf("ps: no %q in %q", want, out)
		}
	}
	// -q, -n, -a and filters.
	if out := dk(t, "ps", "-q", "--filter", "label="+label); len(lines(out)) != 3 || len(lines(out)[0]) != 12 {
		t.Errorf("ps -q: %q", out)
	}
	if out := dk(t, "ps", "-q", "--no-trunc", "--filter", "id="+ids[1]); strings.TrimSpace(out) != ids[1] {
		t.Errorf("ps --filter id=: %q", out)
	}
	if out := dk(t, "ps", "-q", "--filter", "id="+ids[1][:10]); len(lines(out)) != 1 {
		t.Errorf("ps --filter id=<prefix>: %q", out)
	}
	if out := dk(t, "ps", "--filter", "name="+names[2], "--format", "{{.Names}}"); !strings.HasSuffix(strings.TrimSpace(out), "/"+names[2]) || len(lines(out)) != 1 {
		t.Errorf("ps --filter name=: %q", out)
	}
	if out := dk(t, "ps", "-q", "--filter", "label="+label, "--filter", "node="+nodes[names[0]]); len(lines(out)) != 1 {
		t.Errorf("ps --filter node=%s: %q", nodes[names[0]], out)
	}
	if out := dk(t, "ps", "-q", "--filter", "label="+label, "--filter", "ancestor=busybox"); len(lines(out)) != 3 {
		t.Errorf("ps --filter ancestor=busybox: %q", out)
	}
	dk(t, "stop", "-t", "0", names[0])
	if out := dk(t, "ps", "-q", "--filter", "label="+label); len(lines(out)) != 2 {
		t.Errorf("ps (without -a) after stop: %q", out)
	}
	if out := dk(t, "ps", "-aq", "--filter", "label="+label); len(lines(out)) != 3 {
		t.Errorf("ps -a after stop: %q", out)
	}
	if out := dk(t, "ps", "-aq", "--filter", "label="+label, "--filter", "status=exited"); len(lines(out)) != 1 {
		t.Errorf("ps --filter status=exited: %q", out)
	}
	if out := dk(t, "ps", "-aq", "--filter", "label="+label, "--filter", "status=running"); len(lines(out)) != 2 {
		t.Errorf("ps --filter status=running: %q", out)
	}
	// -n 1 / -l: the newest of all the engines'.
	newest := uniq("newest")
	rmf(t, newest)
	nid := strings.TrimSpace(dk(t, "create", "--name", newest, "busybox", "true"))
	if out := dk(t, "ps", "-aq", "--no-trunc", "-n", "1"); strings.TrimSpace(out) != nid {
		t.Errorf("ps -n 1: %q, want the newest %s", out, nid)
	}
	if out := dk(t, "ps", "-q", "--no-trunc", "-l"); strings.TrimSpace(out) != nid {
		t.Errorf("ps -l: %q, want the newest %s", out, nid)
	}
	if out := dk(t, "ps", "-aq", "--no-trunc", "-n", "2"); len(lines(out)) != 2 || lines(out)[0] != nid {
		t.Errorf("ps -n 2: %q", out)
	}
	if out := dk(t, "ps", "-aq", "--no-trunc", "--filter", "status=created", "--filter", "name="+newest); strings.TrimSpace(out) != nid {
		t.Errorf("ps --filter status=created: %q", out)
	}
	// All the engines' containers (also those made behind shoal's back).
	direct := uniq("direct")
	dkOn(t, bed.Engines[2].UnixHost(), "create", "--name", direct, "busybox", "true")
	defer dkOn(t, bed.Engines[2].UnixHost(), "rm", "-f", direct)
	if err := waitFor(ctxT(t, 20*time.Second), 15*time.Second, func() error {
		out := dk(t, "ps", "-a", "--format", "{{.Names}}")
		if !strings.Contains(out, bed.Engines[2].Hostname+"/"+direct) {
			return io.EOF
		}
		return nil
	}); err != nil {
		t.Errorf("container created on engine 3 directly never shows in ps -a")
	}
	// Lookup by full ID, ID prefix, name, /name, node/name, /node/name.
	id := ids[1]
	for _, ref := range []string{id, id[:12], id[:5], names[1], "/" + names[1], nodes[names[1]] + "/" + names[1], "/" + nodes[names[1]] + "/" + names[1]} {
		out, err := runDocker(ctxT(t, 20*time.Second), dockerCmd{host: sh.Host, args: []string{"inspect", "--type", "container", "-f", "{{.Id}}", ref}})
		if err != nil || strings.TrimSpace(out) != id {
			t.Errorf("lookup %q: %q %v", ref, out, err)
		}
	}
	// Ambiguous prefix: find a 1-char prefix shared by two containers.
	all := lines(dk(t, "ps", "-aq", "--no-trunc"))
	count := map[byte]int{}
	for _, x := range all {
		count[x[0]]++
	}
	for c, n := range count {
		if n >= 2 {
			e := dkFail(t, "inspect", "--type", "container", string(c))
			if !strings.Contains(strings.ToLower(e.stderr), "ambiguous") && !strings.Contains(strings.ToLower(e.stderr), "multiple") {
				t.Errorf("ambiguous prefix %q: %q", string(c), e.stderr)
			}
			break
		}
	}
}

func TestNameConflict(t *testing.T) {
	name := uniq("dup")
	rmf(t, name)
	dk(t, "create", "--name", name, "busybox", "true")
	e := dkFail(t, "create", "--name", name, "busybox", "true")
	if !strings.Contains(e.stderr, "Conflict") {
		t.Errorf("second create with the same name: %q, want Conflict", e.stderr)
	}
	st, _, body, _ := sh.Do(context.Background(), "POST", "/containers/create?name="+name, []byte(`{"Image":"busybox"}`), nil)
	if st != 409 {
		t.Errorf("API create with a taken name: %d %s, want 409", st, body)
	}
	// Ten concurrent creates of one new name: exactly one wins, on any node.
	name2 := uniq("race")
	rmf(t, name2)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var ok, conflict int
	var other []string
	for i := 0; i < 10; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := runDocker(context.Background(), dockerCmd{host: sh.Host, args: []string{"create", "--name", name2, "busybox", "true"}})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				ok++
			case strings.Contains(err.(*dockerErr).stderr, "Conflict"):
				conflict++
			default:
				other = append(other, err.Error())
			}
		}()
	}
	wg.Wait()
	if ok != 1 || conflict != 9 {
		t.Errorf("10 concurrent creates of %s: %d succeeded, %d conflicts, others %q", name2, ok, conflict, other)
	}
	n := 0
	for i := range bed.Engines {
		out := dkOn(t, bed.Engines[i].UnixHost(), "ps", "-aq", "--filter", "name=^/"+name2+"$")
		n += len(lines(out))
	}
	if n != 1 {
		t.Errorf("%d containers named %s exist across the engines, want 1", n, name2)
	}
}

func TestImages(t *testing.T) {
	// Loaded through shoal in TestMain: every engine has the image.
	for i := range bed.Engines {
		out := dkOn(t, bed.Engines[i].UnixHost(), "image", "inspect", "-f", "{{.Id}}", "busybox:latest")
		if strings.TrimSpace(out) != bbID {
			t.Errorf("engine %d: busybox is %q, want %s", i, out, bbID)
		}
	}
	out := dk(t, "images", "--no-trunc", "--format", "{{.ID}} {{.Repository}}:{{.Tag}}")
	rows := 0
	for _, l := range lines(out) {
		if strings.HasPrefix(l, bbID+" busybox:latest") {
			rows++
		}
	}
	if rows != 1 {
		t.Errorf("images: %d rows for busybox, want 1 merged row: %q", rows, out)
	}
	if out := dk(t, "image", "inspect", "-f", "{{.Id}} {{.Os}}", "busybox"); strings.TrimSpace(out) != bbID+" linux" {
		t.Errorf("image inspect: %q", out)
	}
	// docker save (GET /images/get?names=...) streams the archive back.
	saved := t.TempDir() + "/saved.tar"
	if _, err := runDocker(ctxT(t, 60*time.Second), dockerCmd{host: sh.Host, args: []string{"save", "-o", saved, "busybox:latest"}}); err != nil {
		t.Errorf("docker save: %v", err)
	} else if f, err := os.Open(saved); err != nil {
		t.Error(err)
	} else {
		tr := tar.NewReader(f)
		found := false
		for {
			h, err := tr.Next()
			if err != nil {
				break
			}
			if h.Name == "manifest.json" {
				found = true
			}
		}
		f.Close()
		if !found {
			t.Errorf("docker save: archive without manifest.json")
		}
	}
	tag := "e2e/tagged:" + uniq("v")
	dk(t, "tag", "busybox", tag)
	for i := range bed.Engines {
		out, err := runDocker(ctxT(t, 20*time.Second), dockerCmd{host: bed.Engines[i].UnixHost(), args: []string{"image", "inspect", "-f", "{{.Id}}", tag}})
		if err != nil || strings.TrimSpace(out) != bbID {
			t.Errorf("engine %d after tag: %q %v", i, out, err)
		}
	}
	if out := dk(t, "images", "--format", "{{.Repository}}:{{.Tag}}"); !strings.Contains(out, tag) {
		t.Errorf("images after tag: %q", out)
	}
	out = dk(t, "rmi", tag)
	if !strings.Contains(out, "Untagged") {
		t.Errorf("rmi: %q", out)
	}
	for i := range bed.Engines {
		if _, err := runDocker(ctxT(t, 20*time.Second), dockerCmd{host: bed.Engines[i].UnixHost(), args: []string{"image", "inspect", tag}}); err == nil {
			t.Errorf("engine %d still has %s after rmi", i, tag)
		}
	}
	if out := dk(t, "images", "--format", "{{.Repository}}:{{.Tag}}"); strings.Contains(out, tag) {
		t.Errorf("images after rmi: %q", out)
	}
	if e := dkFail(t, "rmi", "e2e/nosuchimage:x"); !strings.Contains(strings.ToLower(e.stderr), "no such image") {
		t.Errorf("rmi unknown: %q", e.stderr)
	}
}

func TestInfoAndNodes(t *testing.T) {
	ctx := ctxT(t, 30*time.Second)
	ncpu, mem := 0, 0.0
	for i := range bed.Engines {
		info, err := bed.Info(ctx, i)
		if err != nil {
			t.Fatal(err)
		}
		ncpu += int(info["NCPU"].(float64))
		mem += info["MemTotal"].(float64)
	}
	var info struct {
		Name, ServerVersion string
		NCPU                int
		MemTotal            int64
		Containers          int
		ContainersRunning   int
		Images              int
		Warnings            []string
	}
	out := dk(t, "info", "--format", "{{json .}}")
	if err := json.Unmarshal([]byte(out), &info); err != nil {
		t.Fatalf("info: %v: %s", err, out)
	}
	if info.NCPU != ncpu || info.MemTotal != int64(mem) {
		t.Errorf("info NCPU=%d MemTotal=%d, want sums %d %d", info.NCPU, info.MemTotal, ncpu, int64(mem))
	}
	if !strings.Contains(strings.ToLower(info.Name+info.ServerVersion), "shoal") || !strings.Contains(strings.ToLower(info.ServerVersion), "shoal") {
		t.Errorf("info Name %q ServerVersion %q should say shoal", info.Name, info.ServerVersion)
	}
	if info.Images < 1 {
		t.Errorf("info Images=%d", info.Images)
	}
	// Container totals equal the engines' (poll: other tests' leftovers may settle).
	if err := waitFor(ctx, 10*time.Second, func() error {
		total, running := 0, 0
		for i := range bed.Engines {
			ei, err := bed.Info(ctx, i)
			if err != nil {
				return err
			}
			total += int(ei["Containers"].(float64))
			running += int(ei["ContainersRunning"].(float64))
		}
		out := dk(t, "info", "--format", "{{.Containers}} {{.ContainersRunning}}")
		var c, r int
		if _, err := fmtSscan(out, &c, &r); err != nil || c != total || r != running {
			return &mismatch{out, total, running}
		}
		return nil
	}); err != nil {
		t.Errorf("info container counts: %v", err)
	}
	if len(info.Warnings) != 0 {
		t.Errorf("info warnings with every node healthy: %q", info.Warnings)
	}
	out = dk(t, "node", "ls", "--format", "{{.Hostname}} {{.Status}}")
	for _, e := range bed.Engines {
		if !strings.Contains(out, e.Hostname+" Ready") {
			t.Errorf("node ls lacks %q: %q", e.Hostname+" Ready", out)
		}
	}
	if len(lines(out)) != 3 {
		t.Errorf("node ls: %q", out)
	}
	out = dk(t, "node", "inspect", "node2")
	var ns []struct {
		ID          string
		Description struct {
			Hostname  string
			Resources struct{ NanoCPUs, MemoryBytes int64 }
		}
		Status struct{ State, Addr string }
	}
	if err := json.Unmarshal([]byte(out), &ns); err != nil || len(ns) != 1 {
		t.Fatalf("node inspect: %v %s", err, out)
	}
	n := ns[0]
	if n.Description.Hostname != "node2" || n.Status.State != "ready" || n.Status.Addr != bed.Engines[1].IP || n.Description.Resources.NanoCPUs <= 0 {
		t.Errorf("node inspect node2: %+v", n)
	}
	if e := dkFail(t, "node", "inspect", "nosuchnode"); !strings.Contains(strings.ToLower(e.stderr), "not found") {
		t.Errorf("node inspect unknown: %q", e.stderr)
	}
}

// TestMobyClient drives shoal with the moby Go client, latest API and 1.41.
func TestMobyClient(t *testing.T) {
	for _, ver := range []string{"", "1.41"} {
		t.Run("api"+ver, func(t *testing.T) {
			ctx := ctxT(t, 60*time.Second)
			opts := []client.Opt{client.WithHost(sh.Host)}
			if ver != "" {
				opts = append(opts, client.WithVersion(ver))
			}
			c, err := client.New(opts...)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			p, err := c.Ping(ctx, client.PingOptions{})
			if err != nil || p.APIVersion == "" || p.OSType != "linux" {
				t.Fatalf("ping: %+v %v", p, err)
			}
			name := uniq("moby")
			rmf(t, name)
			cr, err := c.ContainerCreate(ctx, client.ContainerCreateOptions{
				Name:   name,
				Config: &container.Config{Image: "busybox", Cmd: []string{"sh", "-c", "echo out-line; echo err-line >&2; exit 2"}},
			})
			if err != nil {
				t.Fatalf("create: %v", err)
			}
			if _, err := c.ContainerStart(ctx, cr.ID, client.ContainerStartOptions{}); err != nil {
				t.Fatalf("start: %v", err)
			}
			wr := c.ContainerWait(ctx, cr.ID, client.ContainerWaitOptions{})
			select {
			case r := <-wr.Result:
				if r.StatusCode != 2 {
					t.Errorf("wait: status %d, want 2", r.StatusCode)
				}
			case err := <-wr.Error:
				t.Fatalf("wait: %v", err)
			}
			rc, err := c.ContainerLogs(ctx, name, client.ContainerLogsOptions{ShowStdout: true, ShowStderr: true})
			if err != nil {
				t.Fatalf("logs: %v", err)
			}
			var so, se strings.Builder
			_, err = stdcopy.StdCopy(&so, &se, rc)
			rc.Close()
			if err != nil || so.String() != "out-line\n" || se.String() != "err-line\n" {
				t.Errorf("logs: %v stdout %q stderr %q", err, so.String(), se.String())
			}
			l, err := c.ContainerList(ctx, client.ContainerListOptions{All: true})
			if err != nil {
				t.Fatalf("list: %v", err)
			}
			found := false
			for _, s := range l.Items {
				if s.ID == cr.ID {
					found = len(s.Names) > 0 && strings.HasSuffix(s.Names[0], "/"+name) && strings.Count(s.Names[0], "/") == 2
					if !found {
						t.Errorf("list: names %q", s.Names)
					}
				}
			}
			if !found {
				t.Errorf("list: %s not found among %d", cr.ID, len(l.Items))
			}
			il, err := c.ImageList(ctx, client.ImageListOptions{})
			if err != nil {
				t.Fatalf("image list: %v", err)
			}
			hasBB := false
			for _, im := range il.Items {
				if im.ID == bbID {
					hasBB = true
				}
			}
			if !hasBB {
				t.Errorf("image list lacks %s: %+v", bbID, il.Items)
			}
			info, err := c.Info(ctx, client.InfoOptions{})
			if err != nil || info.Info.NCPU <= 0 || !strings.Contains(strings.ToLower(info.Info.ServerVersion), "shoal") {
				t.Errorf("info: %v %+v", err, info.Info.ServerVersion)
			}
			if _, err := c.ContainerRemove(ctx, cr.ID, client.ContainerRemoveOptions{}); err != nil {
				t.Errorf("remove: %v", err)
			}
		})
	}
}

// TestPsBeforeSince: --filter before=/since= order containers created
// within the same second too (dockerd compares nanosecond times).
func TestPsBeforeSince(t *testing.T) {
	label := "e2e.bs=" + uniq("l")
	var names []string
	for i := 0; i < 3; i++ {
		n := uniq("bs")
		names = append(names, n)
		rmf(t, n)
		dk(t, "create", "--label", label, "--name", n, "busybox", "true")
	}
	get := func(f string) string {
		out := dk(t, "ps", "-a", "--filter", "label="+label, "--filter", f, "--format", "{{.Names}}")
		var short []string
		for _, l := range lines(out) {
			short = append(short, l[strings.LastIndex(l, "/")+1:])
		}
		return strings.Join(short, ",")
	}
	if got, want := get("before="+names[2]), names[1]+","+names[0]; got != want {
		t.Errorf("ps --filter before=%s: %q, want %q", names[2], got, want)
	}
	if got, want := get("since="+names[0]), names[2]+","+names[1]; got != want {
		t.Errorf("ps --filter since=%s: %q, want %q", names[0], got, want)
	}
	// The same with --size (shoal then asks the engines live).
	out := dk(t, "ps", "-a", "--size", "--filter", "label="+label, "--filter", "before="+names[2], "--format", "{{.Names}}")
	if len(lines(out)) != 2 || !strings.HasSuffix(lines(out)[0], "/"+names[1]) {
		t.Errorf("ps --size --filter before=%s: %q", names[2], out)
	}
}
