package services

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os/exec"
	"testing"
	"time"
)

// TestServicePython drives services.create/list/get/update/scale/remove,
// service.tasks() and service.logs() of docker-py 5.0.3 (testdata/services.py,
// under Debian's /usr/bin/python3) at API 1.41, compared with swarm mode.
func TestServicePython(t *testing.T) {
	scenario(t, func(t *testing.T, r *rec) {
		ctx := ctxFor(t, 3*time.Minute)
		cmd := exec.CommandContext(ctx, python, "testdata/services.py", r.tg.Host, "1.41")
		var o, e bytes.Buffer
		cmd.Stdout, cmd.Stderr = &o, &e
		if err := cmd.Run(); err != nil {
			t.Errorf("services.py on %s: %v\n%s", r.tg.Name, err, e.String())
		}
		sc := bufio.NewScanner(&o)
		for sc.Scan() {
			var s struct {
				Step string
				Val  any
			}
			if json.Unmarshal(sc.Bytes(), &s) != nil {
				continue
			}
			v, _ := json.Marshal(s.Val)
			r.add(s.Step, norm(string(v)))
		}
	})
}
