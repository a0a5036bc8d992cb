package dockerapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"

	"github.com/shoal-dev/shoal/internal/backend"
)

const maxJSONBody = 16 << 20

func readBody(r *http.Request) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r.Body, maxJSONBody+1))
	var tooLarge errBodyTooLarge
	if errors.As(err, &tooLarge) {
		return nil, err
	}
	if err != nil {
		return nil, badRequest("reading request body: " + err.Error())
	}
	if len(b) > maxJSONBody {
		return nil, badRequest("request body too large")
	}
	return b, nil
}

func (s *Server) listContainers(w http.ResponseWriter, r *http.Request, _ params) error {
	opts, err := containerListOptions(r.URL.Query())
	if err != nil {
		return err
	}
	if lw, ok := s.b.Containers.(containerListWriter); ok {
		write, err := lw.ListContainersTo(r.Context(), opts)
		if err != nil {
			return err
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		return write(w)
	}
	list, err := s.b.Containers.ListContainers(r.Context(), opts)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	return writeContainerList(w, list)
}

// containerListWriter is a Containers backend that writes a list answer
// itself, straight to the client, without building it (the manager: a
// `docker ps -a` of 30,000 containers is 23.6 MiB, issue 16). Errors of
// the options come back before anything is written; write writes the
// whole JSON array, the same bytes as writeContainerList of
// ListContainers, and returns the first write error (the status is sent
// by then: the client sees the answer cut short).
type containerListWriter interface {
	ListContainersTo(ctx context.Context, opts backend.ContainerListOptions) (write func(io.Writer) error, err error)
}

// writeContainerList writes the entries as one JSON array, in chunks.
func writeContainerList(w io.Writer, list backend.ContainerList) error {
	buf := make([]byte, 0, 64<<10)
	buf = append(buf, '[')
	for i, ent := range list {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = ent.Entry.AppendJSON(buf, ent.Status)
		if len(buf) > 48<<10 {
			if _, err := w.Write(buf); err != nil {
				return err
			}
			buf = buf[:0]
		}
	}
	buf = append(buf, ']', '\n')
	_, err := w.Write(buf)
	return err
}

func (s *Server) createContainer(w http.ResponseWriter, r *http.Request, _ params) error {
	body, err := readBody(r)
	if err != nil {
		return err
	}
	req, err := containerCreateRequest(r, body)
	if err != nil {
		return err
	}
	resp, err := s.b.Containers.CreateContainer(r.Context(), req)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, resp)
}

func (s *Server) pruneContainers(w http.ResponseWriter, r *http.Request, _ params) error {
	opts, err := pruneOptions(r)
	if err != nil {
		return err
	}
	rep, err := s.b.Containers.PruneContainers(r.Context(), opts)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, rep)
}

// containerForward serves a call the owning engine answers by itself.
func (s *Server) containerForward(action string, mutates bool) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request, p params) error {
		t, id, ref, err := s.b.Containers.ResolveContainer(r.Context(), p["id"])
		if err != nil {
			return err
		}
		if !mutates {
			_, err := s.forward(w, r, t, "/containers/"+ref+"/"+action)
			return err
		}
		return s.forwardThen(w, r, t, "/containers/"+ref+"/"+action, func(status int) {
			if status/100 == 2 {
				s.b.Containers.ContainerChanged(r.Context(), t, id, false)
			}
		})
	}
}

func (s *Server) removeContainer(w http.ResponseWriter, r *http.Request, p params) error {
	if boolValue(r.URL.Query().Get("link")) {
		return s.removeLink(w, r, p["id"])
	}
	t, id, ref, err := s.b.Containers.ResolveContainer(r.Context(), p["id"])
	if err != nil {
		return err
	}
	return s.forwardThen(w, r, t, "/containers/"+ref, func(status int) {
		if status/100 == 2 {
			s.b.Containers.ContainerChanged(r.Context(), t, id, true)
		}
	})
}

// removeLink serves `docker rm --link /web/db` (DELETE
// /containers/web/db?link=1): the path is parent/alias, not node/name; it
// goes to the parent's engine in that engine's names.
func (s *Server) removeLink(w http.ResponseWriter, r *http.Request, ref string) error {
	t, parentID, pathRef, err := s.b.Containers.ResolveLink(r.Context(), ref)
	if err != nil {
		return err
	}
	return s.forwardThen(w, r, t, "/containers/"+pathRef, func(status int) {
		if status/100 == 2 {
			s.b.Containers.ContainerChanged(r.Context(), t, parentID, false)
		}
	})
}

func (s *Server) renameContainer(w http.ResponseWriter, r *http.Request, p params) error {
	t, id, ref, err := s.b.Containers.ResolveContainer(r.Context(), p["id"])
	if err != nil {
		return err
	}
	if id != "" { // an unknown container gets the engine's 404 below
		name, err := renameTarget(r.URL.Query())
		if err != nil {
			return err
		}
		release, err := s.b.Containers.CheckRename(r.Context(), id, name)
		if err != nil {
			return err
		}
		defer release()
	}
	status, err := s.forward(w, r, t, "/containers/"+ref+"/rename")
	if err != nil {
		return err
	}
	if status/100 == 2 {
		s.b.Containers.ContainerChanged(r.Context(), t, id, false)
	}
	return nil
}

func (s *Server) attachContainer(action string) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request, p params) error {
		t, _, ref, err := s.b.Containers.ResolveContainer(r.Context(), p["id"])
		if err != nil {
			return err
		}
		return s.hijack(w, r, t, "/containers/"+ref+"/"+action)
	}
}

// inspectContainer forwards inspect and adds the "Node" the container runs on.
func (s *Server) inspectContainer(w http.ResponseWriter, r *http.Request, p params) error {
	t, _, ref, err := s.b.Containers.ResolveContainer(r.Context(), p["id"])
	if err != nil {
		return err
	}
	b, ok, err := s.fetchOK(w, r, t, "/containers/"+ref+"/json")
	if !ok {
		return err
	}
	b = addField(b, "Node", s.b.Containers.InspectNode(t))
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, err = w.Write(b)
	return err
}

// addField appends "key": v to a JSON object, keeping the engine's own field order.
func addField(obj []byte, key string, v any) []byte {
	t := bytes.TrimRight(obj, " \r\n\t")
	if len(t) < 2 || t[len(t)-1] != '}' {
		return obj
	}
	vb, err := json.Marshal(v)
	if err != nil {
		return obj
	}
	kb, _ := json.Marshal(key)
	var buf bytes.Buffer
	buf.Write(t[:len(t)-1])
	if !bytes.HasSuffix(bytes.TrimRight(t[:len(t)-1], " \r\n\t"), []byte("{")) {
		buf.WriteByte(',')
	}
	buf.Write(kb)
	buf.WriteByte(':')
	buf.Write(vb)
	buf.WriteString("}\n")
	return buf.Bytes()
}

func readCloser(b []byte) io.ReadCloser { return io.NopCloser(bytes.NewReader(b)) }
