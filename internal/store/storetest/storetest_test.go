package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/moby/moby/api/types/swarm"
	"github.com/shoal-dev/shoal/internal/store"
)

func TestOpen(t *testing.T) {
	s := Open(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	svc, err := store.NewServices(s).Create(ctx, "s1", swarm.ServiceSpec{Annotations: swarm.Annotations{Name: "web"}}, time.Now())
	if err != nil || svc.SpecVersion != 1 {
		t.Fatalf("create = %+v, %v", svc, err)
	}
	if got, err := store.NewServices(s).Get(ctx, "s1"); err != nil || got.Spec.Name != "web" {
		t.Fatalf("get = %+v, %v", got, err)
	}
}
