package dockerapi

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"

	"github.com/containerd/errdefs"
)

var hopHeaders = []string{"Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade"}

func copyHeader(dst, src http.Header) {
	for k, v := range src {
		dst[k] = append([]string(nil), v...)
	}
	for _, h := range hopHeaders {
		dst.Del(h)
	}
}

// outRequest builds the request to send to t for path (without version).
func outRequest(ctx context.Context, r *http.Request, t Target, path string, body io.Reader) (*http.Request, error) {
	u := *r.URL
	u.Path = t.APIPath(apiVersion(r), path)
	u.RawPath = ""
	if body == nil {
		body = r.Body
	}
	out, err := http.NewRequestWithContext(ctx, r.Method, u.String(), body)
	if err != nil {
		return nil, err
	}
	copyHeader(out.Header, r.Header)
	out.ContentLength = r.ContentLength
	if r.ContentLength == 0 && r.Body == http.NoBody {
		out.Body = http.NoBody
	}
	return out, nil
}

// forward sends r to t at path and streams the answer back. It returns the
// engine's status (0 if the request never got an answer).
func (s *Server) forward(w http.ResponseWriter, r *http.Request, t Target, path string) (int, error) {
	status := 0
	err := s.forwardThen(w, r, t, path, func(st int) { status = st })
	return status, err
}

// forwardThen is forward, but calls after with the engine's status before
// the answer goes to the client, so that the client's next call sees
// shoal's view updated (docker stop x; docker ps).
func (s *Server) forwardThen(w http.ResponseWriter, r *http.Request, t Target, path string, after func(status int)) error {
	resp, err := roundTrip(r, t, path)
	if err != nil || resp == nil {
		return err
	}
	defer resp.Body.Close()
	after(resp.StatusCode)
	s.copyResponse(w, resp)
	return nil
}

// fetchOK asks t for path on r's behalf and returns the engine's body of a
// 200, for a handler to amend; any other answer goes to the client as the
// engine gave it (ok false), as does nothing when the client went away.
func (s *Server) fetchOK(w http.ResponseWriter, r *http.Request, t Target, path string) (body []byte, ok bool, err error) {
	resp, err := roundTrip(r, t, path)
	if err != nil || resp == nil {
		return nil, false, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		s.copyResponse(w, resp)
		return nil, false, nil
	}
	if body, err = io.ReadAll(resp.Body); err != nil {
		return nil, false, errdefs.ErrUnavailable.WithMessage("node " + t.Name() + ": " + err.Error())
	}
	return body, true, nil
}

// roundTrip sends r to t at path and returns the engine's answer; a nil
// answer with no error means the client went away.
func roundTrip(r *http.Request, t Target, path string) (*http.Response, error) {
	out, err := outRequest(r.Context(), r, t, path, nil)
	if err != nil {
		return nil, err
	}
	resp, err := t.Do(out)
	if err != nil {
		if r.Context().Err() != nil {
			return nil, nil
		}
		var tooLarge errBodyTooLarge
		if errors.As(err, &tooLarge) {
			return nil, tooLarge // the client's fault, not the node's
		}
		return nil, errdefs.ErrUnavailable.WithMessage(fmt.Sprintf("node %s: %v", t.Name(), err))
	}
	return resp, nil
}

// copyResponse streams resp to w, flushing as data arrives (logs -f, stats,
// wait, events all depend on that).
func (s *Server) copyResponse(w http.ResponseWriter, resp *http.Response) {
	copyHeader(w.Header(), resp.Header)
	s.setServerHeaders(w.Header())
	w.WriteHeader(resp.StatusCode)
	streamBody(w, resp.Body)
}

// streamBody copies body to w as it arrives. A read error other than the
// body's end means the engine (or the way to it) died mid-answer: the
// client's answer is aborted (http.ErrAbortHandler: the connection ends
// without the last chunk), so that its client reports "unexpected EOF" as
// it would from the dying engine, instead of taking the cut for a clean end.
func streamBody(w http.ResponseWriter, body io.Reader) {
	rc := http.NewResponseController(w)
	_ = rc.Flush()
	buf := make([]byte, 32<<10)
	for {
		n, err := body.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return
			}
			_ = rc.Flush()
		}
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			panic(http.ErrAbortHandler)
		}
	}
}

type closeWriter interface{ CloseWrite() error }

// hijack forwards an attach or exec start: the engine upgrades the
// connection and both directions are spliced, with half-close carried
// through so `echo x | docker run -i` sees its output after stdin ends.
func (s *Server) hijack(w http.ResponseWriter, r *http.Request, t Target, path string) error {
	ctx := r.Context()
	econn, err := t.Dial(ctx)
	if err != nil {
		return errdefs.ErrUnavailable.WithMessage(fmt.Sprintf("node %s: %v", t.Name(), err))
	}
	out, err := outRequest(ctx, r, t, path, nil)
	if err != nil {
		econn.Close()
		return err
	}
	for _, h := range []string{"Connection", "Upgrade"} {
		if v := r.Header.Get(h); v != "" {
			out.Header.Set(h, v)
		}
	}
	if out.Header.Get("Upgrade") == "" {
		out.Header.Set("Connection", "Upgrade")
		out.Header.Set("Upgrade", "tcp")
	}
	if err := out.Write(econn); err != nil {
		econn.Close()
		return errdefs.ErrUnavailable.WithMessage(fmt.Sprintf("node %s: %v", t.Name(), err))
	}
	br := bufio.NewReader(econn)
	resp, err := http.ReadResponse(br, out)
	if err != nil {
		econn.Close()
		return errdefs.ErrUnavailable.WithMessage(fmt.Sprintf("node %s: %v", t.Name(), err))
	}
	ct := resp.Header.Get("Content-Type")
	upgraded := resp.StatusCode == http.StatusSwitchingProtocols ||
		(resp.StatusCode == http.StatusOK && (strings.Contains(ct, "vnd.docker.raw-stream") || strings.Contains(ct, "vnd.docker.multiplexed-stream")))
	if !upgraded {
		defer econn.Close()
		defer resp.Body.Close()
		s.copyResponse(w, resp)
		return nil
	}
	cconn, cbuf, err := http.NewResponseController(w).Hijack()
	if err != nil {
		econn.Close()
		return fmt.Errorf("hijack: %w", err)
	}
	// The status line and headers go to the client as the engine sent them,
	// except that a client that asked for no upgrade must not get a 101
	// (we asked the engine for one): it gets 200 and the raw stream, as
	// from dockerd.
	status := resp.Status
	h := resp.Header.Clone()
	if resp.StatusCode == http.StatusSwitchingProtocols && r.Header.Get("Upgrade") == "" {
		status = "200 OK"
		h.Del("Connection")
		h.Del("Upgrade")
	}
	fmt.Fprintf(cbuf, "HTTP/%d.%d %s\r\n", resp.ProtoMajor, resp.ProtoMinor, status)
	s.setServerHeaders(h)
	_ = h.Write(cbuf)
	cbuf.WriteString("\r\n")
	if err := cbuf.Flush(); err != nil {
		cconn.Close()
		econn.Close()
		return nil
	}
	splice(cconn, cbuf.Reader, econn, br)
	return nil
}

// splice copies client→engine and engine→client until the engine side ends.
func splice(cconn net.Conn, cin io.Reader, econn net.Conn, ein io.Reader) {
	var once sync.Once
	closeAll := func() {
		cconn.Close()
		econn.Close()
	}
	done := make(chan struct{})
	go func() {
		_, _ = io.Copy(econn, cin)
		if cw, ok := econn.(closeWriter); ok {
			_ = cw.CloseWrite()
		}
		<-done
	}()
	_, err := io.Copy(cconn, ein)
	if err != nil {
		// The engine's side broke (not a clean end): the client's
		// connection is reset rather than closed cleanly, as a dying
		// engine's would be.
		resetOnClose(cconn)
	} else if cw, ok := cconn.(closeWriter); ok {
		_ = cw.CloseWrite()
	}
	close(done)
	once.Do(closeAll)
}

// resetOnClose makes closing c reset the connection (RST) instead of
// ending it cleanly (FIN), where c is TCP (under TLS or not).
func resetOnClose(c net.Conn) {
	if tc, ok := c.(interface{ NetConn() net.Conn }); ok {
		c = tc.NetConn()
	}
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
}
