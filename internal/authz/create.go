package authz

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// What the create and exec checks look at, with dockerd's field names
// (encoding/json matches them case-insensitively, as dockerd does).
type hostConfig struct {
	Privileged        bool
	Binds             []string
	Mounts            []mount
	NetworkMode       string
	PidMode           string
	IpcMode           string
	UTSMode           string
	UsernsMode        string
	CgroupnsMode      string
	CapAdd            []string
	Devices           []json.RawMessage
	DeviceCgroupRules []string
	SecurityOpt       []string
	VolumesFrom       []string
	Links             []string
}

type mount struct {
	Type          string
	Source        string
	VolumeOptions *struct {
		DriverConfig *struct {
			Name    string
			Options map[string]string
		}
	}
}

// CreateRequest is what the checks read of a container create body.
type CreateRequest struct {
	Labels     map[string]string
	HostConfig *hostConfig
}

// ErrAmbiguous refuses a body that spells one field twice (in any case):
// which one a decoder keeps depends on key order, and the checks must see
// exactly what the engine will.
var ErrAmbiguous = errors.New("authz: field given twice")

// ParseCreate reads the parts of a container create body the checks need.
func ParseCreate(body []byte) (CreateRequest, error) {
	var c CreateRequest
	if len(body) == 0 {
		return c, nil
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(body, &top); err != nil {
		return c, err
	}
	if err := uniqueKeys(body); err != nil {
		return c, err
	}
	for k, raw := range top {
		if strings.EqualFold(k, "HostConfig") {
			if err := uniqueKeys(raw); err != nil {
				return c, err
			}
		}
	}
	if err := json.Unmarshal(body, &c); err != nil {
		return c, err
	}
	return c, nil
}

// uniqueKeys checks that a JSON object names no field twice, ignoring case.
func uniqueKeys(obj []byte) error {
	dec := json.NewDecoder(bytes.NewReader(obj))
	tok, err := dec.Token()
	if err != nil || tok != json.Delim('{') {
		return nil // not an object: the decoder reports it
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		k, _ := tok.(string)
		lk := strings.ToLower(k)
		if seen[lk] {
			return fmt.Errorf("%w: %q", ErrAmbiguous, k)
		}
		seen[lk] = true
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return err
		}
	}
	return nil
}

// HostAccess lists what a container create asks for that gives the
// container the host's root (privileged mode, host paths, the host's
// namespaces, capabilities, devices, no confinement), each worded as
// "may not ..." finishes it. Admins may; nobody else.
func (c CreateRequest) HostAccess() []string {
	h := c.HostConfig
	if h == nil {
		return nil
	}
	var out []string
	add := func(format string, a ...any) { out = append(out, fmt.Sprintf(format, a...)) }
	if h.Privileged {
		add("run privileged containers")
	}
	for _, b := range h.Binds {
		if src, ok := hostBind(b); ok {
			add("bind-mount host paths (%s)", src)
		}
	}
	for _, m := range h.Mounts {
		if what, ok := m.hostAccess(); ok {
			add("%s", what)
		}
	}
	for _, ns := range []struct{ name, mode string }{
		{"network", h.NetworkMode}, {"PID", h.PidMode}, {"IPC", h.IpcMode},
		{"UTS", h.UTSMode}, {"user", h.UsernsMode}, {"cgroup", h.CgroupnsMode},
	} {
		if strings.EqualFold(ns.mode, "host") {
			add("use the host's %s namespace", ns.name)
		}
	}
	if len(h.CapAdd) > 0 {
		add("add capabilities (%s)", strings.Join(h.CapAdd, ", "))
	}
	if len(h.Devices) > 0 || len(h.DeviceCgroupRules) > 0 {
		add("give containers host devices")
	}
	for _, o := range h.SecurityOpt {
		if unconfined(o) {
			add("lift confinement (--security-opt %s)", clip(o))
		}
	}
	if len(h.VolumesFrom) > 0 {
		// The source's mounts come along, host binds an admin gave it included.
		add("use --volumes-from")
	}
	return out
}

// RunningHostAccess is HostAccess for an existing container, as its
// inspect shows it: the cgroup namespace is left out, since "host" is the
// engine's default on cgroup v1 (every container there has it) and was
// not asked for.
func (c CreateRequest) RunningHostAccess() []string {
	if c.HostConfig == nil {
		return nil
	}
	h := *c.HostConfig
	h.CgroupnsMode = ""
	return CreateRequest{HostConfig: &h}.HostAccess()
}

// hostBind reports whether a Binds entry (src:dst[:opts]) mounts a host
// path; a named volume (name:dst) or an anonymous one (dst) does not.
func hostBind(b string) (string, bool) {
	src, _, ok := strings.Cut(b, ":")
	if !ok {
		return "", false
	}
	return src, strings.HasPrefix(src, "/") || strings.HasPrefix(src, ".") || strings.HasPrefix(src, "~")
}

func (m mount) hostAccess() (string, bool) {
	switch strings.ToLower(m.Type) {
	case "bind", "npipe":
		return "bind-mount host paths (" + m.Source + ")", true
	case "volume", "":
		if m.VolumeOptions != nil && m.VolumeOptions.DriverConfig != nil && LocalVolumeBindsHost(m.VolumeOptions.DriverConfig.Options) {
			return "create volumes that bind host paths", true
		}
	}
	return "", false
}

// LocalVolumeBindsHost reports whether local volume driver options
// (docker volume create -o ...) mount something of the host's: a device
// or a path ("device=/dev/sda1", "o=bind").
func LocalVolumeBindsHost(opts map[string]string) bool {
	for k := range opts {
		if strings.EqualFold(k, "device") {
			return true
		}
	}
	return false
}

// unconfined reports whether a --security-opt value lifts seccomp,
// AppArmor or SELinux confinement or the masked system paths, or replaces
// the seccomp profile (a custom profile may allow every system call).
func unconfined(o string) bool {
	o = strings.ToLower(o)
	if strings.Contains(o, "unconfined") {
		return true
	}
	k, v, _ := strings.Cut(strings.Replace(o, ":", "=", 1), "=")
	switch k {
	case "label":
		return v == "disable"
	case "seccomp":
		return v != "builtin" && v != "default"
	case "writable-cgroups":
		return v == "true"
	}
	return false
}

func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}

// ContainerRefs are the other containers a create names (network, PID
// and IPC "container:<ref>", --volumes-from, --link), whose scope the
// caller must have.
func (c CreateRequest) ContainerRefs() []string {
	h := c.HostConfig
	if h == nil {
		return nil
	}
	var out []string
	for _, mode := range []string{h.NetworkMode, h.PidMode, h.IpcMode} {
		if ref, ok := strings.CutPrefix(mode, "container:"); ok && ref != "" {
			out = append(out, ref)
		}
	}
	for _, v := range h.VolumesFrom {
		ref, _, _ := strings.Cut(v, ":")
		out = append(out, ref)
	}
	for _, l := range h.Links {
		ref, _, _ := strings.Cut(l, ":")
		out = append(out, ref)
	}
	return out
}

// ExecPrivileged reports whether an exec create body asks for a privileged process.
func ExecPrivileged(body []byte) (bool, error) {
	var e struct{ Privileged bool }
	if len(body) == 0 {
		return false, nil
	}
	err := json.Unmarshal(body, &e)
	return e.Privileged, err
}

// UpdateHostAccess is HostAccess for a container update body (only the
// resources can change; devices are among them).
func UpdateHostAccess(body []byte) ([]string, error) {
	var u struct {
		Devices           []json.RawMessage
		DeviceCgroupRules []string
	}
	if len(body) == 0 {
		return nil, nil
	}
	if err := json.Unmarshal(body, &u); err != nil {
		return nil, err
	}
	if len(u.Devices) > 0 || len(u.DeviceCgroupRules) > 0 {
		return []string{"give containers host devices"}, nil
	}
	return nil, nil
}

// ErrScopeLabel is the refusal of a create whose labels contradict the
// caller's scope.
var ErrScopeLabel = fmt.Errorf("%w: label outside scope", ErrDenied)

// ForceScope returns a container create body with the scope's labels set,
// so a scoped client's container stays in its scope. A body that sets one
// of those labels to another value is refused (wrapping ErrScopeLabel).
func ForceScope(body []byte, scope map[string]string) ([]byte, error) {
	if len(scope) == 0 {
		return body, nil
	}
	var m map[string]json.RawMessage
	if len(body) > 0 {
		if err := json.Unmarshal(body, &m); err != nil {
			return nil, err
		}
	}
	if m == nil { // no body, or "null"
		m = map[string]json.RawMessage{}
	}
	labels := map[string]string{}
	for k, raw := range m {
		// dockerd matches field names case-insensitively: every spelling
		// of Labels is merged into the one written back.
		if !strings.EqualFold(k, "Labels") {
			continue
		}
		var l map[string]string
		if err := json.Unmarshal(raw, &l); err != nil {
			return nil, err
		}
		for lk, lv := range l {
			labels[lk] = lv
		}
		delete(m, k)
	}
	for k, v := range scope {
		if old, ok := labels[k]; ok && old != v {
			return nil, fmt.Errorf("%w: %s=%s", ErrScopeLabel, k, old)
		}
		labels[k] = v
	}
	raw, err := json.Marshal(labels)
	if err != nil {
		return nil, err
	}
	m["Labels"] = raw
	return json.Marshal(m)
}
