package overlay

import (
	"net"
	"os"
	"reflect"
	"sort"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

func TestRecords(t *testing.T) {
	got := Records([]Member{
		{Name: "web.1.abc", IP: "10.0.1.2", Service: "web", Running: true},
		{Name: "web.2.def", IP: "10.0.1.18", Service: "web", Running: true},
		{Name: "Client", IP: "10.0.1.19", Aliases: []string{"front"}, Running: true},
		{Name: "gone", IP: "10.0.1.20"},
		{Name: "noip", Running: true},
	})
	want := map[string][]string{
		"web.1.abc": {"10.0.1.2"}, "web.2.def": {"10.0.1.18"},
		"web": {"10.0.1.18", "10.0.1.2"}, "tasks.web": {"10.0.1.18", "10.0.1.2"},
		"client": {"10.0.1.19"}, "front": {"10.0.1.19"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("records %v, want %v", got, want)
	}
}

func query(t *testing.T, name string, typ dnsmessage.Type) []byte {
	t.Helper()
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: 7, RecursionDesired: true})
	b.StartQuestions()
	b.Question(dnsmessage.Question{Name: dnsmessage.MustNewName(name), Type: typ, Class: dnsmessage.ClassINET})
	q, err := b.Finish()
	if err != nil {
		t.Fatal(err)
	}
	return q
}

func answers(t *testing.T, resp []byte) []string {
	t.Helper()
	var m dnsmessage.Message
	if err := m.Unpack(resp); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, a := range m.Answers {
		if r, ok := a.Body.(*dnsmessage.AResource); ok {
			out = append(out, net.IP(r.A[:]).String())
		}
	}
	sort.Strings(out)
	return out
}

func TestAnswer(t *testing.T) {
	records := map[string][]string{"web": {"10.0.1.2", "10.0.1.18"}, "tasks.web": {"10.0.1.2", "10.0.1.18"}}
	lookup := func(name string) ([]string, bool) { ips, ok := records[name]; return ips, ok }
	resp, ok := Answer(query(t, "Tasks.Web.", dnsmessage.TypeA), lookup)
	if !ok || !reflect.DeepEqual(answers(t, resp), []string{"10.0.1.18", "10.0.1.2"}) {
		t.Errorf("tasks.web: ok %v %v", ok, resp)
	}
	resp, ok = Answer(query(t, "web.", dnsmessage.TypeAAAA), lookup)
	if !ok || len(answers(t, resp)) != 0 {
		t.Errorf("AAAA of a known name: ok %v, want an empty answer", ok)
	}
	if _, ok := Answer(query(t, "example.com.", dnsmessage.TypeA), lookup); ok {
		t.Error("a name not on the network was answered")
	}
	if _, ok := Answer([]byte{1, 2}, lookup); ok {
		t.Error("garbage was answered")
	}
}

// TestDNSServe serves on loopback (as on a gateway) and asks over UDP.
func TestDNSServe(t *testing.T) {
	d := NewDNS(nil)
	d.up, d.port = nil, "0"
	defer d.Close()
	d.Serve([]Network{{Gateway: "127.0.0.1", Records: map[string][]string{"db": {"10.0.1.5"}}}})
	if len(d.servers) != 1 {
		t.Fatal("not serving on 127.0.0.1")
	}
	c, err := net.Dial("udp", d.servers["127.0.0.1"].conn.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	c.Write(query(t, "db.", dnsmessage.TypeA))
	buf := make([]byte, 512)
	n, err := c.Read(buf)
	if err != nil || !reflect.DeepEqual(answers(t, buf[:n]), []string{"10.0.1.5"}) {
		t.Errorf("db: %v %v", buf[:n], err)
	}
	d.Serve(nil)
	if len(d.servers) != 0 {
		t.Error("a server of a gateway no longer wanted is kept")
	}
}

// TestForward passes a name that is not the network's to the node's resolver.
func TestForward(t *testing.T) {
	up, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer up.Close()
	go func() {
		buf := make([]byte, 512)
		n, from, err := up.ReadFrom(buf)
		if err == nil {
			up.WriteTo(append([]byte("answer:"), buf[:n]...), from)
		}
	}()
	q := query(t, "example.com.", dnsmessage.TypeA)
	got := forward(q, []string{"127.0.0.1:1", up.LocalAddr().String()}) // the first answers nothing
	if string(got) != "answer:"+string(q) {
		t.Errorf("forwarded answer %q", got)
	}
	if got := forward(q, nil); got != nil {
		t.Errorf("no resolver: %q", got)
	}
}

func TestUpstreams(t *testing.T) {
	p := t.TempDir() + "/resolv.conf"
	os.WriteFile(p, []byte("# comment\nnameserver 127.0.0.53\nnameserver 2001:db8::1\nsearch example.com\nnameserver bogus\n"), 0o644)
	if got := upstreams(p); !reflect.DeepEqual(got, []string{"127.0.0.53:53", "[2001:db8::1]:53"}) {
		t.Errorf("upstreams %v", got)
	}
}

func TestStale(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	en := func(id, of string, age time.Duration) EngineNetwork {
		labels := map[string]string{}
		if of != "" {
			labels[LabelNetwork] = of
		}
		return EngineNetwork{ID: id, Labels: labels, Created: now.Add(-age)}
	}
	nets := []EngineNetwork{
		en("wanted", "n1", time.Hour),
		en("gone", "n2", time.Hour),
		en("new", "n3", time.Second), // may be of a network created after the node asked
		en("users", "", time.Hour),   // not a cluster network's
	}
	got := Stale(nets, []Network{{ID: "n1"}}, now)
	if len(got) != 1 || got[0].ID != "gone" {
		t.Errorf("stale %+v, want only the one of n2", got)
	}
	raw := []byte(`{"Id":"x","Name":"appnet","Created":"2026-01-01T11:00:00.123456789Z","Labels":{"com.shoal.overlay.network":"n2"},"Containers":{}}`)
	if d, err := DecodeEngineNetwork(raw); err != nil || !d.Created.Equal(now.Add(-time.Hour+123456789)) || !d.Backs("n2") {
		t.Errorf("decoded %+v %v", d, err)
	}
}

// TestLookupAcrossNetworks: a task on two networks asks the first one's
// gateway; names of the second resolve for it, not for a container on the
// first network only.
func TestLookupAcrossNetworks(t *testing.T) {
	d := NewDNS(nil)
	d.nets = []Network{
		{ID: "front", Gateway: "10.0.1.1", Records: map[string][]string{"web.1.a": {"10.0.1.2"}, "web": {"10.0.1.2"}, "client": {"10.0.1.3"}}},
		{ID: "back", Gateway: "10.0.2.1", Records: map[string][]string{"web.1.a": {"10.0.2.2"}, "web": {"10.0.2.2"}, "db": {"10.0.2.9"}}},
	}
	if ips, ok := d.lookupFor("10.0.1.1", "10.0.1.2")("db"); !ok || !reflect.DeepEqual(ips, []string{"10.0.2.9"}) {
		t.Errorf("db for the task on both networks: %v %v", ips, ok)
	}
	if ips, ok := d.lookupFor("10.0.1.1", "10.0.1.2")("web"); !ok || !reflect.DeepEqual(ips, []string{"10.0.1.2"}) {
		t.Errorf("web: %v, want its address on the network asked", ips)
	}
	if ips, ok := d.lookupFor("10.0.1.1", "10.0.1.3")("db"); ok {
		t.Errorf("db resolved for a container not on its network: %v", ips)
	}
	if _, ok := d.lookupFor("10.9.9.9", "10.0.1.2")("web"); ok {
		t.Error("a gateway not served answered")
	}
}
