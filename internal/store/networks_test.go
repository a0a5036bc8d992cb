package store_test

import (
	"context"
	"errors"
	"testing"

	"github.com/shoal-dev/shoal/internal/store"
	"github.com/shoal-dev/shoal/internal/store/storetest"
)

func TestNetworks(t *testing.T) {
	ctx := context.Background()
	nets := store.NewNetworks(storetest.Open(t))
	n := store.Network{ID: store.NewID(), Name: "appnet", Subnet: "10.0.1.0/24", VNI: 4097}
	if err := nets.Create(ctx, n); err != nil {
		t.Fatal(err)
	}
	if err := nets.Create(ctx, n); !errors.Is(err, store.ErrExists) {
		t.Errorf("second create: %v, want ErrExists", err)
	}
	if err := nets.Modify(ctx, n.ID, func(cur *store.Network) error {
		cur.Slots = map[string]int{"node1": 3}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	got, err := nets.Get(ctx, n.ID)
	if err != nil || got.Name != "appnet" || got.Slots["node1"] != 3 {
		t.Errorf("get: %+v %v", got, err)
	}
	if list, err := nets.List(ctx); err != nil || len(list) != 1 {
		t.Errorf("list: %v %v", list, err)
	}
	if err := nets.Delete(ctx, n.ID); err != nil {
		t.Fatal(err)
	}
	if err := nets.Modify(ctx, n.ID, func(*store.Network) error { return nil }); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("modify of a removed network: %v, want ErrNotFound", err)
	}
}
