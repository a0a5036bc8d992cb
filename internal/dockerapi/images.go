package dockerapi

import (
	"encoding/json"
	"net/http"

	"github.com/containerd/errdefs"
	"github.com/shoal-dev/shoal/internal/backend"
)

func (s *Server) listImages(w http.ResponseWriter, r *http.Request, _ params) error {
	opts, err := imageListOptions(r)
	if err != nil {
		return err
	}
	list, err := s.b.Images.ListImages(r.Context(), opts)
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
		t, err := s.b.Images.ResolveImage(r.Context(), ref)
		if errdefs.IsNotFound(err) {
			// No node has it: let one say so in its own words.
			if any, aerr := s.b.Images.AnyEngine(); aerr == nil {
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
	t, err := s.b.Images.ResolveImage(r.Context(), names[0])
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
	return fw.finish(s.b.Images.LoadImage(r.Context(), backend.ImageStreamRequest{Query: r.URL.Query(), Body: r.Body}, fw))
}

func (s *Server) createImage(w http.ResponseWriter, r *http.Request, _ params) error {
	q := r.URL.Query()
	if q.Get("fromImage") == "" {
		if q.Get("fromSrc") == "" {
			return badRequest("fromImage or fromSrc is required")
		}
		fw := s.streamJSON(w)
		return fw.finish(s.b.Images.ImportImage(r.Context(), backend.ImageStreamRequest{Query: q, Body: r.Body}, fw))
	}
	fw := s.streamJSON(w)
	return fw.finish(s.b.Images.PullImage(r.Context(), backend.ImageStreamRequest{Query: q, Auth: r.Header.Get("X-Registry-Auth")}, fw))
}

func (s *Server) tagImage(w http.ResponseWriter, r *http.Request, p params) error {
	q := r.URL.Query()
	if err := s.b.Images.TagImage(r.Context(), p["name"], backend.ImageTagOptions{Repo: q.Get("repo"), Tag: q.Get("tag")}); err != nil {
		return err
	}
	w.WriteHeader(http.StatusCreated)
	return nil
}

func (s *Server) removeImage(w http.ResponseWriter, r *http.Request, p params) error {
	q := r.URL.Query()
	list, err := s.b.Images.RemoveImage(r.Context(), p["name"], backend.ImageRemoveOptions{Force: boolValue(q.Get("force")), Query: q})
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, list)
}

// anyEngine serves calls any engine answers alike (registry search and
// login checks), through the first healthy one.
func (s *Server) anyEngine(path string) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request, _ params) error {
		t, err := s.b.Images.AnyEngine()
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
	t, _, ref, err := s.b.Containers.ResolveContainer(r.Context(), q.Get("container"))
	if err != nil {
		return err
	}
	q.Set("container", ref)
	r.URL.RawQuery = q.Encode()
	status, err := s.forward(w, r, t, "/commit")
	if err == nil && status/100 == 2 {
		s.b.Images.ImagesChanged(t)
	}
	return err
}

// build runs on one engine chosen by the scheduler (constraint:... build
// args steer it, and where its cachefrom images and network are); the
// image is built there only.
func (s *Server) build(w http.ResponseWriter, r *http.Request, _ params) error {
	q := r.URL.Query()
	args, err := buildArgs(q)
	if err != nil {
		return err
	}
	req := backend.BuildPlacement{Args: args, CacheFrom: cacheFrom(q), NetworkMode: q.Get("networkmode")}
	t, send, err := s.b.Builds.PlaceBuild(r.Context(), req)
	if err != nil {
		return err
	}
	if send.Args != nil {
		b, err := json.Marshal(send.Args)
		if err != nil {
			return err
		}
		q.Set("buildargs", string(b))
	}
	if send.NetworkMode != req.NetworkMode {
		q.Set("networkmode", send.NetworkMode)
	}
	r.URL.RawQuery = q.Encode()
	status, err := s.forward(w, r, t, "/build")
	if err == nil && status/100 == 2 {
		s.b.Images.ImagesChanged(t)
	}
	return err
}
