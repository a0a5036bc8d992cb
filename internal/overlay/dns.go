package overlay

import (
	"bufio"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

// DNS serves the names of the cluster networks on each network's gateway
// address of this node (port 53, UDP). The engines' embedded DNS answers
// the names of its own node's containers and forwards the rest here (the
// containers are created with this address as their DNS server); names
// that are not the network's are passed on to the node's own resolvers.
type DNS struct {
	log *slog.Logger

	mu      sync.Mutex
	servers map[string]*dnsServer // gateway → server
	nets    []Network             // the networks served, with their records
	up      []string              // upstream resolvers, host:53
	port    string                // "53"; tests take any
}

type dnsServer struct {
	conn net.PacketConn
	gw   string
}

// NewDNS returns a DNS that serves nothing until Serve.
func NewDNS(log *slog.Logger) *DNS {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &DNS{log: log, servers: map[string]*dnsServer{}, up: upstreams("/etc/resolv.conf"), port: "53"}
}

// Serve listens on each network's gateway (while the address is on the
// node: a gateway the engine has not set up yet is tried on the next
// call), answering from the networks' records, and stops the servers of
// gateways no longer listed.
func (d *DNS) Serve(want []Network) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.nets = want
	keep := map[string]bool{}
	for _, n := range want {
		if n.Gateway == "" {
			continue
		}
		keep[n.Gateway] = true
		if d.servers[n.Gateway] != nil {
			continue
		}
		conn, err := net.ListenPacket("udp4", net.JoinHostPort(n.Gateway, d.port))
		if err != nil {
			d.log.Debug("overlay: DNS not listening yet", "addr", n.Gateway, "err", err)
			continue
		}
		s := &dnsServer{conn: conn, gw: n.Gateway}
		d.servers[n.Gateway] = s
		go d.serve(s)
	}
	for gw, s := range d.servers {
		if !keep[gw] {
			s.conn.Close()
			delete(d.servers, gw)
		}
	}
}

// Close stops every server.
func (d *DNS) Close() { d.Serve(nil) }

func (d *DNS) serve(s *dnsServer) {
	buf := make([]byte, 1500)
	for {
		n, from, err := s.conn.ReadFrom(buf)
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				d.log.Warn("overlay: DNS", "err", err)
			}
			return
		}
		q := append([]byte(nil), buf[:n]...)
		src := ""
		if ua, ok := from.(*net.UDPAddr); ok {
			src = ua.IP.String()
		}
		lookup := d.lookupFor(s.gw, src)
		go func() {
			resp, ok := Answer(q, lookup)
			if !ok {
				resp = forward(q, d.up)
			}
			if resp != nil {
				s.conn.WriteTo(resp, from)
			}
		}()
	}
}

// lookupFor resolves names for a container at src asking the gateway gw:
// from the gateway's network, then from the other networks of this node
// the same container is on (a task on several networks has the first
// one's gateway as its DNS server).
func (d *DNS) lookupFor(gw, src string) func(name string) ([]string, bool) {
	d.mu.Lock()
	nets := d.nets
	d.mu.Unlock()
	return func(name string) ([]string, bool) {
		var own *Network
		for i := range nets {
			if nets[i].Gateway == gw {
				own = &nets[i]
			}
		}
		if own == nil {
			return nil, false
		}
		if ips, ok := own.Records[name]; ok {
			return ips, true
		}
		for _, who := range namesOf(own.Records, src) {
			for _, n := range nets {
				if ips, ok := n.Records[name]; ok && n.ID != own.ID && len(n.Records[who]) > 0 {
					return ips, true
				}
			}
		}
		return nil, false
	}
}

// namesOf are the names that resolve to ip alone in records: the asking
// container's own names.
func namesOf(records map[string][]string, ip string) []string {
	var out []string
	for name, ips := range records {
		if len(ips) == 1 && ips[0] == ip {
			out = append(out, name)
		}
	}
	return out
}

// Answer answers query from lookup (a name, lower case and without the
// trailing dot → its addresses): A records (rotated, as swarm mode's
// dnsrr answers) for a name it knows; an empty answer for other types of
// such a name. ok is false for a name it does not know.
func Answer(query []byte, lookup func(name string) ([]string, bool)) (resp []byte, ok bool) {
	var p dnsmessage.Parser
	h, err := p.Start(query)
	if err != nil {
		return nil, false
	}
	q, err := p.Question()
	if err != nil {
		return nil, false
	}
	name := lower(strings.TrimSuffix(q.Name.String(), "."))
	ips, found := lookup(name)
	if !found {
		return nil, false
	}
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true, RecursionDesired: h.RecursionDesired, RecursionAvailable: true})
	b.EnableCompression()
	if b.StartQuestions() != nil || b.Question(q) != nil || b.StartAnswers() != nil {
		return nil, false
	}
	if q.Type == dnsmessage.TypeA || q.Type == dnsmessage.TypeALL {
		off := int(h.ID) % max(len(ips), 1)
		for i := range ips {
			a, err := netip.ParseAddr(ips[(i+off)%len(ips)])
			if err != nil || !a.Is4() {
				continue
			}
			hdr := dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: 0}
			if b.AResource(hdr, dnsmessage.AResource{A: a.As4()}) != nil {
				return nil, false
			}
		}
	}
	out, err := b.Finish()
	return out, err == nil
}

// forward passes a query on to the node's resolvers and returns the first
// answer; nil when none answers.
func forward(q []byte, up []string) []byte {
	for _, addr := range up {
		c, err := net.Dial("udp", addr)
		if err != nil {
			continue
		}
		c.SetDeadline(time.Now().Add(2 * time.Second))
		buf := make([]byte, 4096)
		_, err = c.Write(q)
		n := 0
		if err == nil {
			n, err = c.Read(buf)
		}
		c.Close()
		if err == nil {
			return buf[:n]
		}
	}
	return nil
}

// upstreams are the nameservers of a resolv.conf (the agent asks them
// from the node itself, so loopback ones work too).
func upstreams(path string) []string {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) >= 2 && fs[0] == "nameserver" {
			if a, err := netip.ParseAddr(fs[1]); err == nil {
				out = append(out, net.JoinHostPort(a.String(), "53"))
			}
		}
	}
	return out
}
