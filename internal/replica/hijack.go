package replica

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
)

// hijack forwards an attach, exec start or other upgrade to the primary on
// a connection of its own. The request goes as the client sent it, so the
// primary answers as it would have answered the client (101, or 200 and a
// raw stream for clients that did not ask for an upgrade); the answer's
// head is copied back and then both directions are spliced, half-close
// included (`echo x | docker run -i` must see its output after stdin ends).
func (h *Handler) hijack(w http.ResponseWriter, r *http.Request, primary string) {
	pconn, err := h.dial(r.Context(), primary)
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, "shoal: primary manager "+primary+" unreachable: "+err.Error())
		return
	}
	out := r.Clone(r.Context())
	out.URL.Scheme, out.URL.Host = "", ""
	out.RequestURI = ""
	out.Header.Set(ForwardedHeader, h.self)
	if err := out.Write(pconn); err != nil {
		pconn.Close()
		writeError(w, http.StatusServiceUnavailable, "shoal: primary manager "+primary+": "+err.Error())
		return
	}
	br := bufio.NewReader(pconn)
	resp, err := http.ReadResponse(br, out)
	if err != nil {
		pconn.Close()
		writeError(w, http.StatusServiceUnavailable, "shoal: primary manager "+primary+": "+err.Error())
		return
	}
	ct := resp.Header.Get("Content-Type")
	upgraded := resp.StatusCode == http.StatusSwitchingProtocols ||
		(resp.StatusCode == http.StatusOK && (strings.Contains(ct, "vnd.docker.raw-stream") || strings.Contains(ct, "vnd.docker.multiplexed-stream")))
	if !upgraded {
		// An error or a detached exec start: an ordinary response.
		defer pconn.Close()
		defer resp.Body.Close()
		for k, v := range resp.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(resp.StatusCode)
		_, _ = io.Copy(w, resp.Body)
		return
	}
	cconn, cbuf, err := http.NewResponseController(w).Hijack()
	if err != nil {
		pconn.Close()
		h.log.Warn("replication: hijack", "error", err)
		return
	}
	fmt.Fprintf(cbuf, "HTTP/%d.%d %s\r\n", resp.ProtoMajor, resp.ProtoMinor, resp.Status)
	_ = resp.Header.Write(cbuf)
	cbuf.WriteString("\r\n")
	// Bytes of the stream the primary sent with its answer are in br.
	if err := cbuf.Flush(); err != nil {
		cconn.Close()
		pconn.Close()
		return
	}
	splice(cconn, cbuf.Reader, pconn, br)
}

type closeWriter interface{ CloseWrite() error }

// splice copies client→primary and primary→client. When the client ends
// its input, the primary's side is half-closed; when the primary ends its
// output, the client's side is half-closed and both are closed.
func splice(cconn net.Conn, cin io.Reader, pconn net.Conn, pin io.Reader) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = io.Copy(pconn, cin)
		if cw, ok := pconn.(closeWriter); ok {
			_ = cw.CloseWrite()
		}
	}()
	_, err := io.Copy(cconn, pin)
	if cw, ok := cconn.(closeWriter); ok && (err == nil || errors.Is(err, io.EOF)) {
		_ = cw.CloseWrite()
	}
	cconn.Close()
	pconn.Close()
	<-done
}
