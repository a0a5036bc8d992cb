package engine

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"

	"github.com/moby/moby/api/types/image"
)

// ClientQuery is a call made for a client: at the client's API version
// ("": the engine's), with the client's parameters (filters, ...) passed
// on as sent, so the engine words its answer as it would to that client.
type ClientQuery struct {
	Version string
	Query   url.Values
}

// ListImages lists the engine's images, each as the engine sent it.
func (e *Engine) ListImages(ctx context.Context, cq ClientQuery) ([]json.RawMessage, error) {
	var list []json.RawMessage
	if err := e.call(ctx, "GET", e.APIPath(cq.Version, "/images/json"), cq.Query, nil, &list); err != nil {
		return nil, err
	}
	return list, nil
}

// PullImage starts a pull (POST /images/create) with the client's query
// (fromImage, tag, platform...) and registry auth ("" for none). The
// caller reads the engine's JSON-lines progress and closes it. An engine's
// refusal before any progress is its error; ErrUnreachable means it could
// not be asked.
func (e *Engine) PullImage(ctx context.Context, q url.Values, auth string) (io.ReadCloser, error) {
	h := http.Header{}
	if auth != "" {
		h.Set("X-Registry-Auth", auth)
	}
	return e.stream(ctx, "/images/create", q, nil, h)
}

// ImportImage imports an image (POST /images/create?fromSrc=...): archive
// is the uploaded tarball when fromSrc is "-", else nil (the engine
// fetches fromSrc itself). Its progress is read as PullImage's.
func (e *Engine) ImportImage(ctx context.Context, q url.Values, archive io.Reader) (io.ReadCloser, error) {
	return e.stream(ctx, "/images/create", q, archive, tarHeader())
}

// LoadImage loads the images of a `docker save` archive (POST
// /images/load). Its progress is read as PullImage's.
func (e *Engine) LoadImage(ctx context.Context, q url.Values, archive io.Reader) (io.ReadCloser, error) {
	return e.stream(ctx, "/images/load", q, archive, tarHeader())
}

func tarHeader() http.Header { return http.Header{"Content-Type": {"application/x-tar"}} }

// stream POSTs body and returns the engine's streamed answer.
func (e *Engine) stream(ctx context.Context, path string, q url.Values, body io.Reader, h http.Header) (io.ReadCloser, error) {
	resp, err := e.client.Raw(ctx, "POST", e.apiPath(path), q, body, h)
	if err != nil {
		return nil, unreachable("%v", err)
	}
	if resp.StatusCode/100 != 2 {
		defer resp.Body.Close()
		return nil, ResponseError(resp)
	}
	return resp.Body, nil
}

// TagImage tags image ref as repo:tag (tag "" is the engine's default).
func (e *Engine) TagImage(ctx context.Context, ref, repo, tag string) error {
	q := url.Values{}
	if repo != "" {
		q.Set("repo", repo)
	}
	if tag != "" {
		q.Set("tag", tag)
	}
	return e.post(ctx, "/images/"+ref+"/tag", q)
}

// RemoveImage removes (untags, then deletes) image ref with the client's
// query (force, noprune, platforms...) and says what it did.
func (e *Engine) RemoveImage(ctx context.Context, ref string, q url.Values) ([]image.DeleteResponse, error) {
	var out []image.DeleteResponse
	if err := e.call(ctx, "DELETE", e.apiPath("/images/"+ref), q, nil, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// PruneImages removes unused images.
func (e *Engine) PruneImages(ctx context.Context, cq ClientQuery) (image.PruneReport, error) {
	var r image.PruneReport
	return r, e.call(ctx, "POST", e.APIPath(cq.Version, "/images/prune"), cq.Query, nil, &r)
}

// call sends body (nil: none) and decodes a success into out (nil: the
// answer is dropped), with do's errors; an answer that does not decode
// is ErrUnreachable (its outcome is unknown).
func (e *Engine) call(ctx context.Context, method, path string, q url.Values, body json.RawMessage, out any) error {
	resp, err := e.do(ctx, method, path, q, body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return unreachable("decoding the answer to %s %s: %v", method, path, err)
	}
	return nil
}
