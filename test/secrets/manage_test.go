package secrets

import (
	"encoding/base64"
	"strings"
	"testing"
	"time"
)

// TestConfigsUnderManage: under `shoal manage` (no agent on its nodes) a
// config reaches its task container at its target with its owner and
// mode, copied in before the container starts; a service with a secret
// is refused, naming the built-in cluster; the local store holds the
// secret's data encrypted.
func TestConfigsUnderManage(t *testing.T) {
	tg := manage
	t0 := time.Now()
	marker := randomMarker(t)
	t.Cleanup(func() {
		runCLI(t.Context(), tg.Host, nil, "service", "rm", "mweb")
		waitNoTaskContainers(t, tg)
		runCLI(t.Context(), tg.Host, nil, "secret", "rm", "msec")
		runCLI(t.Context(), tg.Host, nil, "config", "rm", "mconf")
	})
	mustDockerIn(t, tg, marker, "secret", "create", "msec", "-")
	mustDockerIn(t, tg, "m=1\n", "config", "create", "mconf", "-")
	res := runCLI(t.Context(), tg.Host, nil, append([]string{"service", "create", "-d", "--name", "msec", "--secret", "msec", "busybox"}, sleeper...)...)
	if res.Exit == 0 || !strings.Contains(res.Err, "built-in cluster") {
		t.Errorf("a service with a secret under manage: exit %d %s", res.Exit, res.Err)
	}
	mustDocker(t, tg, append([]string{"service", "create", "-d", "--quiet", "--name", "mweb", "--stop-grace-period", "1s",
		"--config", "source=mconf,target=/etc/m.conf,uid=5,gid=6,mode=0440", "busybox"}, sleeper...)...)
	ids := waitTasks(t, tg, "mweb", 1, func(string) error { return nil })
	expect(t, tg, ids[0], "stat -c '%a %u %g' /etc/m.conf; cat /etc/m.conf", "440 5 6\nm=1")
	for _, needle := range []string{marker, base64.StdEncoding.EncodeToString([]byte(marker))} {
		if where := grepSameDevice(t, tg.DataDir, needle); where != "" {
			t.Errorf("the secret is in clear in manage's data dir: %s", where)
		}
	}
	t.Logf("TestConfigsUnderManage took %s", time.Since(t0).Round(time.Millisecond))
}
