package dockerapi

import (
	"encoding/json"
	"github.com/containerd/errdefs"
	"net/http"
)

func (s *Server) listImages(w http.ResponseWriter, r *http.Request, _ params) error {
	list, err := s.b.ListImages(r.Context(), apiVersion(r), r.URL.Query())
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, list)
}

func (s *Server) imageForward(action string) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request, p params) error {
		ref := p["name"]
		if tag := r.URL.Query().Get("tag"); action == "push" && tag != "" {
			ref += ":" + tag // push names the repository and the tag apart
		}
		t, err := s.b.ResolveImage(r.Context(), ref)
		if errdefs.IsNotFound(err) {
			// No node has it: let one say so in its own words.
			if any, aerr := s.b.AnyEngine(); aerr == nil {
				t, err = any, nil
			}
		}
		if err != nil {
			return err
		}
		_, err = s.forward(w, r, t, "/images/"+p["name"]+"/"+action)
		return err
	}
}

// saveImages serves `docker save a b` (GET /images/get?names=a&names=b):
// the engine holding the first image answers, so all must be on it.
func (s *Server) saveImages(w http.ResponseWriter, r *http.Request, p params) error {
	names := r.URL.Query()["names"]
	if len(names) == 0 {
		return badRequest("no image names given")
	}
	t, err := s.b.ResolveImage(r.Context(), names[0])
	if err != nil {
		return err
	}
	_, err = s.forward(w, r, t, "/images/get")
	return err
}

// streamJSON is a JSON progress stream answer that starts (200) with its
// first message; an error before that is still a plain Docker error.
func (s *Server) streamJSON(w http.ResponseWriter) *flushWriter {
	return &flushWriter{w: w, rc: http.NewResponseController(w)}
}

type flushWriter struct {
	w       http.ResponseWriter
	rc      *http.ResponseController
	started bool
}

func (f *flushWriter) Write(b []byte) (int, error) {
	if !f.started {
		f.started = true
		f.w.Header().Set("Content-Type", "application/json")
		f.w.WriteHeader(http.StatusOK)
	}
	n, err := f.w.Write(b)
	_ = f.rc.Flush()
	return n, err
}

// finish ends a stream: an error before any output is a plain error
// answer; after, it travels in the stream as dockerd does.
func (f *flushWriter) finish(err error) error {
	if err == nil {
		if !f.started {
			f.Write(nil)
		}
		return nil
	}
	if !f.started {
		return err
	}
	b, _ := json.Marshal(map[string]any{"errorDetail": map[string]string{"message": err.Error()}, "error": err.Error()})
	f.Write(append(b, '\n'))
	return nil
}

func (s *Server) loadImage(w http.ResponseWriter, r *http.Request, _ params) error {
	fw := s.streamJSON(w)
	return fw.finish(s.b.LoadImage(r.Context(), r.Body, r.URL.Query(), fw))
}

func (s *Server) createImage(w http.ResponseWriter, r *http.Request, _ params) error {
	q := r.URL.Query()
	if q.Get("fromImage") == "" {
		if q.Get("fromSrc") == "" {
			return badRequest("fromImage or fromSrc is required")
		}
		fw := s.streamJSON(w)
		return fw.finish(s.b.ImportImage(r.Context(), r.Body, q, fw))
	}
	fw := s.streamJSON(w)
	return fw.finish(s.b.PullImage(r.Context(), q, r.Header.Get("X-Registry-Auth"), fw))
}

func (s *Server) tagImage(w http.ResponseWriter, r *http.Request, p params) error {
	if err := s.b.TagImage(r.Context(), p["name"], r.URL.Query()); err != nil {
		return err
	}
	w.WriteHeader(http.StatusCreated)
	return nil
}

func (s *Server) removeImage(w http.ResponseWriter, r *http.Request, p params) error {
	list, err := s.b.RemoveImage(r.Context(), p["name"], r.URL.Query())
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, list)
}

func (s *Server) listNodes(w http.ResponseWriter, r *http.Request, _ params) error {
	list, err := s.b.Nodes(r.Context(), r.URL.Query())
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, list)
}

func (s *Server) inspectNode(w http.ResponseWriter, r *http.Request, p params) error {
	n, err := s.b.Node(r.Context(), p["id"])
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, n)
}

// anyEngine serves calls any engine answers alike (registry search and
// login checks), through the first healthy one.
func (s *Server) anyEngine(path string) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request, _ params) error {
		t, err := s.b.AnyEngine()
		if err != nil {
			return err
		}
		_, err = s.forward(w, r, t, path)
		return err
	}
}

func (s *Server) distribution(w http.ResponseWriter, r *http.Request, p params) error {
	return s.anyEngine("/distribution/"+p["name"]+"/json")(w, r, p)
}

// commit runs on the container's engine; the new image is there only.
func (s *Server) commit(w http.ResponseWriter, r *http.Request, _ params) error {
	q := r.URL.Query()
	t, _, ref, err := s.b.ResolveContainer(r.Context(), q.Get("container"))
	if err != nil {
		return err
	}
	q.Set("container", ref)
	r.URL.RawQuery = q.Encode()
	status, err := s.forward(w, r, t, "/commit")
	if err == nil && status/100 == 2 {
		s.b.ImagesChanged(t)
	}
	return err
}

// build runs on one engine chosen by the scheduler (constraint:... build
// args steer it); the image is built there only.
func (s *Server) build(w http.ResponseWriter, r *http.Request, _ params) error {
	t, q, err := s.b.PlaceBuild(r.Context(), r.URL.Query())
	if err != nil {
		return err
	}
	r.URL.RawQuery = q.Encode()
	status, err := s.forward(w, r, t, "/build")
	if err == nil && status/100 == 2 {
		s.b.ImagesChanged(t)
	}
	return err
}
