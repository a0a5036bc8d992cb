package manager

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path"
	"strconv"
	"strings"
	"text/template"
	"time"

	"github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/api/types/swarm"
	"github.com/shoal-dev/shoal/internal/agent"
	"github.com/shoal-dev/shoal/internal/engine"
	"github.com/shoal-dev/shoal/internal/orchestrator"
	"github.com/shoal-dev/shoal/internal/store"
)

// A task's secrets and configs reach its container as files, as swarm
// mode's do: a secret at /run/secrets/<target> (or its absolute target),
// a config at its target, each with the uid, gid and mode its reference
// gives. In the built-in cluster the node's agent keeps them in a tmpfs
// and the container bind-mounts each read-only, so a secret is never
// written to a disk of the node. Under shoal manage no agent runs on the
// nodes: secrets are refused at the service's create, and configs are
// copied into the container once created, before it starts.

// TaskData is what the runtime reads to deliver secrets and configs
// (internal/secrets' Backend): the objects with their data.
type TaskData interface {
	SecretData(ctx context.Context, id string) (swarm.Secret, error)
	ConfigData(ctx context.Context, id string) (swarm.Config, error)
}

// TaskRuntimeWith is TaskRuntime delivering the secrets and configs of
// tasks from data.
func (m *Manager) TaskRuntimeWith(data TaskData) orchestrator.Runtime {
	return taskRuntime{m: m, data: data}
}

// DeliversSecrets says whether task containers can get secrets: only
// through the agents of the built-in cluster's nodes.
func (m *Manager) DeliversSecrets() bool { return m.cfg.Cluster != nil }

// Where swarm mode puts secrets and configs whose target is a bare name.
const (
	secretsDir = "/run/secrets"
	configsDir = "/"
)

// taskFile is one file of a task and where its container sees it.
type taskFile struct {
	agent.TaskFile
	target string
	// ref is the reference's target as given (how templates name the
	// file); secret says the file is a secret's; templated says its data
	// is a Go template to expand for the task.
	ref       string
	secret    bool
	templated bool
}

// noFiles is the after-create step of a task without configs to copy.
func noFiles(context.Context, string) error { return nil }

// prepareFiles readies t's secrets and configs on its node before its
// container is made: on the built-in cluster the agent writes them to
// its tmpfs and req gets their bind mounts; under manage the returned
// step copies the configs into the created container.
func (r taskRuntime) prepareFiles(ctx context.Context, e *engine.Engine, svc swarm.Service, t store.Task, req *container.CreateRequest) (func(context.Context, string) error, error) {
	cs := t.Spec.ContainerSpec
	if cs == nil {
		cs = svc.Spec.TaskTemplate.ContainerSpec
	}
	if cs == nil || (len(cs.Secrets) == 0 && len(cs.Configs) == 0) {
		return noFiles, nil
	}
	if r.data == nil {
		return nil, errdefs.ErrUnavailable.WithMessage("task " + t.ID + ": no store to read its secrets and configs from")
	}
	files, err := r.taskFiles(ctx, cs)
	if err != nil {
		return nil, err
	}
	if err := expandFiles(files, newTaskTemplate(svc, t, engineNodeInfo(e)), req.Config.Env); err != nil {
		return nil, err
	}
	if !r.m.DeliversSecrets() {
		if len(cs.Secrets) > 0 {
			return nil, errdefs.ErrNotImplemented.WithMessage("secrets are delivered only on the built-in cluster (shoal init / shoal join)")
		}
		return func(ctx context.Context, id string) error { return copyFiles(ctx, e, id, files) }, nil
	}
	dir, err := putFiles(ctx, e, t.ID, files)
	if err != nil {
		return nil, err
	}
	for _, f := range files {
		req.HostConfig.Mounts = append(req.HostConfig.Mounts, mount.Mount{
			Type: mount.TypeBind, Source: path.Join(dir, f.Name), Target: f.target, ReadOnly: true,
		})
	}
	return noFiles, nil
}

// taskFiles reads the data of every secret and config cs references.
func (r taskRuntime) taskFiles(ctx context.Context, cs *swarm.ContainerSpec) ([]taskFile, error) {
	var out []taskFile
	for i, ref := range cs.Secrets {
		if ref == nil || ref.File == nil {
			continue
		}
		s, err := r.data.SecretData(ctx, ref.SecretID)
		if err != nil {
			return nil, fmt.Errorf("secret %s: %w", ref.SecretName, err)
		}
		f, err := fileOf("s"+strconv.Itoa(i), secretsDir, s.Spec.Data, ref.File.Name, ref.File.UID, ref.File.GID, ref.File.Mode)
		if err != nil {
			return nil, err
		}
		f.secret, f.templated = true, isGolang(s.Spec.Templating)
		out = append(out, f)
	}
	for i, ref := range cs.Configs {
		if ref == nil || ref.File == nil {
			continue // a runtime target (credential specs) has no file
		}
		c, err := r.data.ConfigData(ctx, ref.ConfigID)
		if err != nil {
			return nil, fmt.Errorf("config %s: %w", ref.ConfigName, err)
		}
		f, err := fileOf("c"+strconv.Itoa(i), configsDir, c.Spec.Data, ref.File.Name, ref.File.UID, ref.File.GID, ref.File.Mode)
		if err != nil {
			return nil, err
		}
		f.templated = isGolang(c.Spec.Templating)
		out = append(out, f)
	}
	return out, nil
}

// fileOf is a file named name on the node, at target in the container
// (under dir unless absolute).
func fileOf(name, dir string, data []byte, target, uid, gid string, mode os.FileMode) (taskFile, error) {
	u, err := idOf(uid)
	if err != nil {
		return taskFile{}, err
	}
	g, err := idOf(gid)
	if err != nil {
		return taskFile{}, err
	}
	ref := target
	if !path.IsAbs(target) {
		target = path.Join(dir, target)
	}
	return taskFile{TaskFile: agent.TaskFile{Name: name, Data: data, UID: u, GID: g, Mode: mode}, target: target, ref: ref}, nil
}

func isGolang(t *swarm.Driver) bool { return t != nil && t.Name == "golang" }

// expandFiles fills in the templated files (Templating "golang"), as
// swarm mode's nodes do: the service's templates (.Service, .Node,
// .Task), and the functions env (the task's environment), secret and
// config (the raw data of another of the task's files, by its target as
// the reference gives it).
func expandFiles(files []taskFile, x *taskTemplate, env []string) error {
	raw := map[bool]map[string]string{true: {}, false: {}}
	for _, f := range files {
		raw[f.secret][f.ref] = string(f.Data)
	}
	lookup := func(secret bool, kind string) func(string) (string, error) {
		return func(target string) (string, error) {
			if v, ok := raw[secret][target]; ok {
				return v, nil
			}
			return "", fmt.Errorf("%s target %s not found", kind, target)
		}
	}
	funcs := template.FuncMap{"join": templateFuncs["join"], "secret": lookup(true, "secret"), "config": lookup(false, "config"),
		"env": func(k string) string {
			for i := len(env) - 1; i >= 0; i-- {
				if name, v, ok := strings.Cut(env[i], "="); ok && name == k {
					return v
				}
			}
			return ""
		}}
	for i, f := range files {
		if !f.templated {
			continue
		}
		tmpl, err := template.New(f.ref).Option("missingkey=error").Funcs(funcs).Parse(string(f.Data))
		if err != nil {
			return errdefs.ErrInvalidArgument.WithMessage(fmt.Sprintf("failed to expand templated %s: %v", f.ref, err))
		}
		var b bytes.Buffer
		if err := tmpl.Execute(&b, x); err != nil {
			return errdefs.ErrInvalidArgument.WithMessage(fmt.Sprintf("failed to expand templated %s: %v", f.ref, err))
		}
		files[i].Data = b.Bytes()
	}
	return nil
}

// idOf reads a reference's UID or GID ("" is root, as swarm mode takes it).
func idOf(s string) (int, error) {
	if s == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0, errdefs.ErrInvalidArgument.WithMessage("invalid uid or gid " + strconv.Quote(s))
	}
	return n, nil
}

// filesPatience bounds the agent's writing of a task's files.
const filesPatience = 30 * time.Second

// putFiles has the node's agent keep the files of task taskID in memory
// and returns the directory on the node holding them.
func putFiles(ctx context.Context, e *engine.Engine, taskID string, files []taskFile) (string, error) {
	req := agent.TaskFilesRequest{Files: make([]agent.TaskFile, len(files))}
	for i, f := range files {
		req.Files[i] = f.TaskFile
	}
	body, err := json.Marshal(req)
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(ctx, filesPatience)
	defer cancel()
	resp, err := callAgent(ctx, e, http.MethodPut, agent.TaskFilesPath(taskID), body)
	if err != nil {
		return "", errdefs.ErrUnavailable.WithMessage(fmt.Sprintf("node %s: task files: %v", e.Name(), err))
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return "", errdefs.ErrUnavailable.WithMessage(fmt.Sprintf("node %s: its agent did not take the task's secrets and configs: %s: %s",
			e.Name(), resp.Status, bytes.TrimSpace(msg)))
	}
	var ans agent.TaskFilesAnswer
	if err := json.Unmarshal(msg, &ans); err != nil || !path.IsAbs(ans.Dir) {
		return "", errdefs.ErrUnavailable.WithMessage(fmt.Sprintf("node %s: task files: bad answer %q", e.Name(), msg))
	}
	return ans.Dir, nil
}

// callAgent makes a call to the node's agent on a stream of its own.
func callAgent(ctx context.Context, e *engine.Engine, method, path string, body []byte) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, "http://engine"+path, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	conn, err := e.Dial(ctx)
	if err != nil {
		return nil, err
	}
	return agent.CallLocal(conn, req)
}

// copyFiles copies files into the created container id (an archive
// upload at /: the engine makes the missing directories).
func copyFiles(ctx context.Context, e *engine.Engine, id string, files []taskFile) error {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		hdr := &tar.Header{Name: f.target[1:], Mode: int64(f.Mode.Perm()), Uid: f.UID, Gid: f.GID,
			Size: int64(len(f.Data)), Typeflag: tar.TypeReg, ModTime: time.Now()}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if _, err := tw.Write(f.Data); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	resp, err := e.Client().Raw(ctx, http.MethodPut, e.APIPath("", "/containers/"+id+"/archive"),
		map[string][]string{"path": {"/"}}, &buf, http.Header{"Content-Type": {"application/x-tar"}})
	if err != nil {
		return fmt.Errorf("copying configs into the container: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("copying configs into the container: %s: %s", resp.Status, bytes.TrimSpace(msg))
	}
	return nil
}
