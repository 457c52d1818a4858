package testenv

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/client"
	"github.com/hashicorp/consul/api"
)

// Fleet is a set of opted-in workload containers that a fault test starts and removes in bulk. The
// truth about which should be in Consul is Docker's: its running containers of the fleet.
type Fleet struct {
	t      testing.TB
	d      *client.Client
	Prefix string
	Host   bool // host-network containers on free ports (private dockerds have no usable bridge)
	Mod    func(i int, w *Workload)

	mu   sync.Mutex
	n    int
	live []string // container IDs, oldest first
}

const fleetLabel = "ecsr.fleet"

// NewFleet returns an empty fleet whose container names start with prefix.
func NewFleet(t testing.TB, d *client.Client, prefix string, host bool) *Fleet {
	return &Fleet{t: t, d: d, Prefix: fmt.Sprintf("%s-%d", prefix, FreePort(t)), Host: host}
}

// Start starts n containers, parallel at most 10 at a time. Errors (a dockerd restarting) are
// tolerated when tolerate is set; the container is then simply not part of the fleet.
func (f *Fleet) Start(n int, tolerate bool) {
	f.t.Helper()
	sem := make(chan struct{}, 10)
	var wg sync.WaitGroup
	for range n {
		f.mu.Lock()
		i := f.n
		f.n++
		f.mu.Unlock()
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			w := Workload{Name: fmt.Sprintf("%s-%d", f.Prefix, i), Publish: !f.Host,
				Labels: map[string]string{"SERVICE_NAME": f.Prefix, fleetLabel: f.Prefix}}
			if f.Host {
				w.Network, w.TCP = "host", []int{FreePort(f.t)}
			} else {
				w.TCP = []int{8080}
			}
			if f.Mod != nil {
				f.Mod(i, &w)
			}
			id, err := f.create(w)
			if err != nil {
				if !tolerate {
					f.t.Errorf("start %s: %v", w.Name, err)
				}
				return
			}
			f.mu.Lock()
			f.live = append(f.live, id)
			f.mu.Unlock()
		})
	}
	wg.Wait()
}

func (f *Fleet) create(w Workload) (string, error) {
	image := BuildWorkload(f.t, f.d)
	cfg, hc := w.configs(image)
	resp, err := f.d.ContainerCreate(f.t.Context(), cfg, hc, nil, nil, w.Name)
	if err != nil {
		return "", err
	}
	f.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = f.d.ContainerRemove(ctx, resp.ID, containerRemoveForce)
	})
	return resp.ID, f.d.ContainerStart(f.t.Context(), resp.ID, container.StartOptions{})
}

// Remove force-removes the n oldest containers, all at once.
func (f *Fleet) Remove(n int, tolerate bool) {
	f.t.Helper()
	f.mu.Lock()
	n = min(n, len(f.live))
	victims := slices.Clone(f.live[:n])
	f.live = f.live[n:]
	f.mu.Unlock()
	var wg sync.WaitGroup
	for _, id := range victims {
		wg.Go(func() {
			if err := f.d.ContainerRemove(f.t.Context(), id, containerRemoveForce); err != nil && !tolerate {
				f.t.Errorf("remove %.12s: %v", id, err)
			}
		})
	}
	wg.Wait()
}

// Expected lists the service IDs the agent of node should hold for the fleet: one per running container.
func (f *Fleet) Expected(node string) ([]string, error) {
	list, err := f.d.ContainerList(f.t.Context(), container.ListOptions{Filters: filters.NewArgs(filters.Arg("label", fleetLabel+"="+f.Prefix))})
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, c := range list {
		if c.State != "running" || len(c.Names) == 0 {
			continue
		}
		in, err := f.d.ContainerInspect(f.t.Context(), c.ID)
		if err != nil || !in.State.Running {
			continue
		}
		port := "8080"
		for p := range in.Config.ExposedPorts {
			port = p.Port()
		}
		ids = append(ids, fmt.Sprintf("%s:%s:%s", node, strings.TrimPrefix(c.Names[0], "/"), port))
	}
	slices.Sort(ids)
	return ids, nil
}

// Owned lists the fleet's services the agent holds.
func (f *Fleet) Owned(a *api.Client) ([]string, error) {
	svcs, err := a.Agent().ServicesWithFilter(fmt.Sprintf("Service == %q", f.Prefix))
	if err != nil {
		return nil, err
	}
	var ids []string
	for id := range svcs {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids, nil
}

// Converged reports whether the agent holds exactly the fleet's running containers, and says what differs.
func (f *Fleet) Converged(a *api.Client, node string) (bool, string) {
	want, err := f.Expected(node)
	if err != nil {
		return false, err.Error()
	}
	got, err := f.Owned(a)
	if err != nil {
		return false, err.Error()
	}
	if slices.Equal(want, got) {
		return true, ""
	}
	var missing, stale []string
	for _, id := range want {
		if !slices.Contains(got, id) {
			missing = append(missing, id)
		}
	}
	for _, id := range got {
		if !slices.Contains(want, id) {
			stale = append(stale, id)
		}
	}
	return false, fmt.Sprintf("%d missing %v, %d stale %v", len(missing), head(missing), len(stale), head(stale))
}

func head(s []string) []string { return s[:min(3, len(s))] }
