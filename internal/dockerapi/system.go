package dockerapi

import (
	"context"
	"io"
	"net/http"
	"runtime"
	"time"

	"github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/system"
	"github.com/shoal-dev/shoal/internal/backend"
)

var startTime = time.Now()

// GitCommit is the commit shoal was built from (set by the CLI at build time).
var GitCommit = "unknown"

func (s *Server) ping(w http.ResponseWriter, r *http.Request, _ params) error {
	h := w.Header()
	h.Set("Builder-Version", "1")
	h.Set("Cache-Control", "no-cache, no-store, must-revalidate")
	h.Set("Pragma", "no-cache")
	if sw := s.swarmHeader(); sw != "" {
		h.Set("Swarm", sw)
	}
	if r.Method == http.MethodHead {
		h.Set("Content-Type", "text/plain; charset=utf-8")
		h.Set("Content-Length", "0")
		w.WriteHeader(http.StatusOK)
		return nil
	}
	h.Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	_, err := w.Write([]byte("OK"))
	return err
}

func (s *Server) getVersion(w http.ResponseWriter, r *http.Request, _ params) error {
	v := system.VersionResponse{
		Platform:      system.PlatformInfo{Name: "shoal " + s.version},
		Version:       "shoal/" + s.version,
		APIVersion:    APIVersion,
		MinAPIVersion: MinAPIVersion,
		Os:            runtime.GOOS,
		Arch:          runtime.GOARCH,
		GoVersion:     runtime.Version(),
		GitCommit:     GitCommit,
		KernelVersion: s.b.System.KernelVersion(),
		BuildTime:     startTime.UTC().Format(time.RFC3339),
		Components: []system.ComponentVersion{{
			Name:    "Engine",
			Version: "shoal/" + s.version,
			Details: map[string]string{
				"ApiVersion":    APIVersion,
				"MinAPIVersion": MinAPIVersion,
				"Os":            runtime.GOOS,
				"Arch":          runtime.GOARCH,
				"GoVersion":     runtime.Version(),
				"GitCommit":     GitCommit,
				"KernelVersion": s.b.System.KernelVersion(),
			},
		}},
	}
	return writeJSON(w, http.StatusOK, v)
}

// infoWriter is a System that can write its info out from where its
// parts are kept (the manager: at 10,000 nodes the answer is megabytes,
// and copying it into one slice per call was most of info's garbage).
type infoWriter interface {
	InfoTo(ctx context.Context) (io.WriterTo, error)
}

func (s *Server) getInfo(w http.ResponseWriter, r *http.Request, _ params) error {
	if iw, ok := s.b.System.(infoWriter); ok {
		info, err := iw.InfoTo(r.Context())
		if err != nil {
			return err
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		if _, err := info.WriteTo(w); err != nil {
			return err
		}
		_, err = io.WriteString(w, "\n")
		return err
	}
	info, err := s.b.System.Info(r.Context())
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, err = w.Write(append(info, '\n'))
	return err
}

// federationNodes answers a shoal above this one (engine.MemberPath).
func (s *Server) federationNodes(w http.ResponseWriter, r *http.Request, _ params) error {
	v, err := s.b.System.FederationNodes(r.Context())
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, err = w.Write(append(v, '\n'))
	return err
}

func (s *Server) diskUsage(w http.ResponseWriter, r *http.Request, _ params) error {
	v, err := s.b.System.DiskUsage(r.Context(), backend.DiskUsageOptions{Version: apiVersion(r), Query: r.URL.Query()})
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, v)
}

func errMethod(method, path string) error {
	return errdefs.ErrNotFound.WithMessage("page not found")
}

func errNotImplemented(method, path string) error {
	return errdefs.ErrNotImplemented.WithMessage(method + " " + path + " is not supported by shoal yet")
}

func notFound(msg string) error { return errdefs.ErrNotFound.WithMessage(msg) }
