package backend

import (
	"net/url"
	"reflect"
	"testing"
)

func TestFiltersEncode(t *testing.T) {
	if got := (Filters{}).Encode(); got != "" {
		t.Errorf("no filters: %q", got)
	}
	f := Filters{"type": {"container"}, "label": {"a=b", "c"}}
	if got := f.Encode(); got != `{"label":{"a=b":true,"c":true},"type":{"container":true}}` {
		t.Errorf("Encode = %s", got)
	}
	if !reflect.DeepEqual(f.Keys(), []string{"label", "type"}) {
		t.Errorf("Keys = %v", f.Keys())
	}
}

func TestEngineQueries(t *testing.T) {
	ev := EventsOptions{Since: "1", Filters: Filters{"type": {"node"}}}
	if got := ev.Query().Encode(); got != "filters="+url.QueryEscape(`{"type":{"node":true}}`)+"&since=1" {
		t.Errorf("events query %s", got)
	}
	img := ImageListOptions{All: true, Digests: true}
	if got := img.Query().Encode(); got != "all=1&digests=1" {
		t.Errorf("images query %s", got)
	}
	// A prune passes the client's other parameters on, with the filters re-encoded.
	p := PruneOptions{Filters: Filters{"until": {"24h"}}, Query: url.Values{"keep-storage": {"10"}, "filters": {"stale"}}}
	q := p.EngineQuery()
	if q.Get("keep-storage") != "10" || q.Get("filters") != `{"until":{"24h":true}}` {
		t.Errorf("prune query %v", q)
	}
	if p.Query.Get("filters") != "stale" {
		t.Error("EngineQuery changed the options' query")
	}
}

func TestObject(t *testing.T) {
	o := Object{"Name": []byte(`"net"`), "Driver": []byte(`"bridge"`)}
	cp := o.Clone()
	if err := cp.Set("Name", "node1/net"); err != nil {
		t.Fatal(err)
	}
	if o.String("Name") != "net" || cp.String("Name") != "node1/net" || cp.String("Driver") != "bridge" || cp.String("None") != "" {
		t.Errorf("object %v, clone %v", o, cp)
	}
}
