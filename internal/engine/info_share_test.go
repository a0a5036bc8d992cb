package engine

import (
	"encoding/json"
	"reflect"
	"testing"
	"unsafe"

	"github.com/moby/moby/api/types/system"
)

// Two engines' /info decoded alike share their equal lists, pairs,
// strings and runtimes, and still read (and encode) exactly as decoded;
// different lists stay apart, an empty list stays empty (not null).
func TestShareInfo(t *testing.T) {
	decode := func(s string) *system.Info {
		var in system.Info
		if err := json.Unmarshal([]byte(s), &in); err != nil {
			t.Fatal(err)
		}
		return &in
	}
	const a = `{"Name":"a","Driver":"overlay2","DriverStatus":[["Backing Filesystem","extfs"]],"Plugins":{"Log":["json-file","local"],"Network":["bridge"]},` +
		`"SecurityOptions":["name=seccomp"],"Warnings":[],"Labels":["zone=1"],"Runtimes":{"runc":{"path":"runc"}}}`
	const b = `{"Name":"b","Driver":"overlay2","DriverStatus":[["Backing Filesystem","extfs"]],"Plugins":{"Log":["json-file","local"],"Network":["bridge","host"]},` +
		`"SecurityOptions":["name=seccomp"],"Warnings":[],"Labels":["zone=1\u0000"],"Runtimes":{"runc":{"path":"runc"}}}`
	ia, ib := decode(a), decode(b)
	wantA, wantB := *decode(a), *decode(b)
	shareInfo(ia)
	shareInfo(ib)
	if !reflect.DeepEqual(*ia, wantA) || !reflect.DeepEqual(*ib, wantB) {
		t.Fatalf("sharing changed the info:\n%+v\n%+v", *ia, *ib)
	}
	same := func(what string, x, y []string) {
		if len(x) == 0 || unsafe.SliceData(x) != unsafe.SliceData(y) {
			t.Errorf("%s not shared", what)
		}
	}
	same("log plugins", ia.Plugins.Log, ib.Plugins.Log)
	same("security options", ia.SecurityOptions, ib.SecurityOptions)
	if unsafe.SliceData(ia.DriverStatus) != unsafe.SliceData(ib.DriverStatus) {
		t.Error("driver status not shared")
	}
	if unsafe.SliceData(ia.Plugins.Network) == unsafe.SliceData(ib.Plugins.Network) || ib.Labels[0] != "zone=1\x00" {
		t.Error("different lists shared")
	}
	if ib.Warnings == nil {
		t.Error("an empty list became null")
	}
	if reflect.ValueOf(ia.Runtimes).UnsafePointer() != reflect.ValueOf(ib.Runtimes).UnsafePointer() {
		t.Error("runtimes not shared")
	}
	ja, _ := json.Marshal(ia)
	jw, _ := json.Marshal(&wantA)
	if string(ja) != string(jw) {
		t.Errorf("encodes as\n%s\nwant\n%s", ja, jw)
	}
}
