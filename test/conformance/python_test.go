package conformance

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"testing"
	"time"
)

// TestPythonSDK runs testdata/sdk.py (python3-docker 5.0.3 under Debian's
// /usr/bin/python3) against both targets and compares its steps.
func TestPythonSDK(t *testing.T) {
	tarPath, err := bed.BusyboxPath()
	if err != nil {
		t.Fatal(err)
	}
	for _, ver := range []string{"auto", "1.41"} {
		t.Run(ver, func(t *testing.T) {
			conform(t, "python-sdk", "docker-py-"+ver, func(r *rec) {
				cmd := exec.CommandContext(ctxT(t, 3*time.Minute), python, "testdata/sdk.py", r.tg.Host, ver, tarPath)
				if r.tg == clus {
					cmd.Env = append(os.Environ(), "SDK_IN_CLUSTER=1")
				}
				var o, e bytes.Buffer
				cmd.Stdout, cmd.Stderr = &o, &e
				if err := cmd.Run(); err != nil {
					t.Errorf("sdk.py on %s: %v\n%s", r.tg.Name, err, e.String())
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
					if s.Step == "container.attrs [json keys]" || s.Step == "images.get attrs keys" || s.Step == "networks.get attrs keys" || s.Step == "volumes.get attrs keys" || s.Step == "version keys" || s.Step == "stats (one) keys" {
						var ks []string
						json.Unmarshal(v, &ks)
						r.add(s.Step, norm(joinSp(ks)))
						continue
					}
					r.add(s.Step, norm(string(v)))
				}
			})
		})
	}
}

func joinSp(ks []string) string {
	var b bytes.Buffer
	for i, k := range ks {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(k)
	}
	return b.String()
}
