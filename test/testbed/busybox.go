package testbed

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"time"
)

// BusyboxBinary is the static busybox copied into the image.
var BusyboxBinary = "/bin/busybox"

var fixedTime = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// busyboxFallbackApplets are linked if `busybox --list` fails.
var busyboxFallbackApplets = strings.Fields(`sh ash ls cat echo sleep httpd top ps env true false id hostname
wget nc head tail seq yes dd mkdir rm touch date grep sed awk cp mv ln chmod chown kill uname
printf test wc sort uniq tr cut find xargs vi du df free mount umount ping ip ifconfig netstat nslookup
sync tee which whoami basename dirname pwd stat md5sum sha256sum tar gzip gunzip timeout watch`)

// BusyboxTar writes a docker-save archive (loadable with `docker load`) of a
// one-layer image holding a static busybox with all its applets linked in
// /bin, /etc/passwd, /etc/group and /tmp, tagged tag (default
// "busybox:latest"). The output is deterministic for a given busybox binary.
func BusyboxTar(path string, tag string) error {
	if tag == "" {
		tag = BusyboxTag
	}
	if i := strings.LastIndex(tag, ":"); i < 0 || strings.Contains(tag[i:], "/") {
		tag += ":latest"
	}
	bin, err := os.ReadFile(BusyboxBinary)
	if err != nil {
		return fmt.Errorf("testbed: %w", err)
	}
	applets := busyboxFallbackApplets
	if out, err := exec.Command(BusyboxBinary, "--list").Output(); err == nil {
		applets = strings.Fields(string(out))
	}
	layer, err := busyboxLayer(bin, applets)
	if err != nil {
		return err
	}
	sum := sha256.Sum256(layer)
	layerHex := hex.EncodeToString(sum[:])
	diffID := "sha256:" + layerHex

	type cfgT struct {
		Env        []string `json:"Env"`
		Cmd        []string `json:"Cmd"`
		WorkingDir string   `json:"WorkingDir"`
	}
	config := map[string]any{
		"architecture": runtime.GOARCH,
		"os":           "linux",
		"created":      fixedTime.Format(time.RFC3339),
		"config": cfgT{
			Env: []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
			Cmd: []string{"sh"},
		},
		"rootfs": map[string]any{"type": "layers", "diff_ids": []string{diffID}},
		"history": []map[string]any{{
			"created":    fixedTime.Format(time.RFC3339),
			"created_by": "shoal testbed: static busybox",
		}},
	}
	cfgJSON, err := json.Marshal(config)
	if err != nil {
		return err
	}
	csum := sha256.Sum256(cfgJSON)
	cfgHex := hex.EncodeToString(csum[:])
	repo, ver := tag[:strings.LastIndex(tag, ":")], tag[strings.LastIndex(tag, ":")+1:]
	manifest, _ := json.Marshal([]map[string]any{{
		"Config":   cfgHex + ".json",
		"RepoTags": []string{tag},
		"Layers":   []string{layerHex + "/layer.tar"},
	}})
	repos, _ := json.Marshal(map[string]map[string]string{repo: {ver: layerHex}})
	layerJSON, _ := json.Marshal(map[string]any{"id": layerHex, "created": fixedTime.Format(time.RFC3339), "config": cfgT{}})

	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	add := func(name string, data []byte) error {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(data)), ModTime: fixedTime, Typeflag: tar.TypeReg, Format: tar.FormatPAX}); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	if err := tw.WriteHeader(&tar.Header{Name: layerHex + "/", Mode: 0o755, ModTime: fixedTime, Typeflag: tar.TypeDir, Format: tar.FormatPAX}); err != nil {
		return err
	}
	for _, f := range []struct {
		name string
		data []byte
	}{
		{layerHex + "/VERSION", []byte("1.0")},
		{layerHex + "/json", layerJSON},
		{layerHex + "/layer.tar", layer},
		{cfgHex + ".json", cfgJSON},
		{"manifest.json", manifest},
		{"repositories", repos},
	} {
		if err := add(f.name, f.data); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, buf.Bytes(), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// BusyboxImageID returns the image ID ("sha256:...") BusyboxTar produces
// (it does not depend on the tag).
func BusyboxImageID() (string, error) {
	dir, err := os.MkdirTemp("", "tbbb")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(dir)
	p := filepath.Join(dir, "b.tar")
	if err := BusyboxTar(p, ""); err != nil {
		return "", err
	}
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err != nil {
			return "", err
		}
		if h.Name == "manifest.json" {
			var m []struct{ Config string }
			if err := json.NewDecoder(tr).Decode(&m); err != nil || len(m) == 0 {
				return "", fmt.Errorf("bad manifest: %v", err)
			}
			return "sha256:" + strings.TrimSuffix(m[0].Config, ".json"), nil
		}
	}
}

func busyboxLayer(bin []byte, applets []string) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	hdr := func(h *tar.Header) error {
		h.ModTime = fixedTime
		h.Format = tar.FormatPAX
		h.Uname, h.Gname = "", ""
		return tw.WriteHeader(h)
	}
	dir := func(name string, mode int64) error {
		return hdr(&tar.Header{Name: name + "/", Mode: mode, Typeflag: tar.TypeDir})
	}
	file := func(name string, mode int64, data []byte) error {
		if err := hdr(&tar.Header{Name: name, Mode: mode, Size: int64(len(data)), Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	for _, d := range []string{"bin", "dev", "etc", "home", "proc", "root", "sys", "usr", "usr/bin", "usr/sbin", "var", "var/www"} {
		if err := dir(d, 0o755); err != nil {
			return nil, err
		}
	}
	if err := dir("tmp", 0o1777); err != nil {
		return nil, err
	}
	if err := file("bin/busybox", 0o755, bin); err != nil {
		return nil, err
	}
	seen := map[string]bool{"busybox": true}
	sort.Strings(applets)
	for _, a := range applets {
		if seen[a] || strings.ContainsAny(a, "/ ") || a == "" {
			continue
		}
		seen[a] = true
		if err := hdr(&tar.Header{Name: "bin/" + a, Mode: 0o777, Typeflag: tar.TypeSymlink, Linkname: "busybox"}); err != nil {
			return nil, err
		}
	}
	files := []struct {
		name, data string
	}{
		{"etc/passwd", "root:x:0:0:root:/root:/bin/sh\ndaemon:x:1:1:daemon:/usr/sbin:/bin/false\nnobody:x:65534:65534:nobody:/home:/bin/false\n"},
		{"etc/group", "root:x:0:\ndaemon:x:1:\nnogroup:x:65534:\n"},
	}
	for _, f := range files {
		if err := file(f.name, 0o644, []byte(f.data)); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
