package consul

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/maphash"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/ecs-registrator/ecs-registrator/registrator"
	"github.com/ecs-registrator/ecs-registrator/registrator/desired"
)

// The agent's service list takes no blocking query, so the core reads it every second. Through
// consul/api each read is a gzip stream and a JSON decode of every service: on a host with 300
// services, 250 KB a second and most of the daemon's idle CPU. Here each answer is read uncompressed
// (the agent is local) into a hash, and read again and decoded only when the hash differs from that
// of the answers the last state was decoded from. Nothing of the answer is kept.

// lister reads the agent's services and maintenance checks.
type lister struct {
	hc    *http.Client // consul/api's client for the agent: its TLS, its socket, its token transport
	base  url.URL      // scheme, host and path prefix of the agent's HTTP API
	token string       // CONSUL_HTTP_TOKEN; a file's or a login's token comes from hc's transport
	seed  maphash.Seed

	mu      sync.Mutex // one read at a time: the agent watch and a full sync may overlap
	buf     []byte     // for hashing a body
	state   registrator.AgentState
	sums    [2]uint64 // of the services and the checks answers state was decoded from
	decoded bool
}

func newLister(cfg *api.Config) *lister {
	host := cfg.Address
	if strings.HasPrefix(host, "/") {
		host = "localhost" // a unix socket, which the transport dials
	}
	return &lister{hc: cfg.HttpClient, base: url.URL{Scheme: cfg.Scheme, Host: host, Path: cfg.PathPrefix}, token: cfg.Token,
		seed: maphash.MakeSeed(), buf: make([]byte, 32<<10)}
}

const servicesPath, checksPath = "/v1/agent/services", "/v1/agent/checks"

// maintFilter selects the checks Consul adds for a service in maintenance mode.
var maintFilter = url.Values{"filter": {fmt.Sprintf("CheckID matches %q", "^"+maintCheckPrefix)}}

// Services returns what the agent holds, sorted into the daemon's own services (with their sidecar
// and maintenance state), foreign ones and unmarked ones. An answer the same as the last returns the
// same AgentState, whose maps callers must not change.
func (a *Agent) Services(ctx context.Context) (registrator.AgentState, error) {
	l := a.list
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.decoded {
		services, err := l.read(ctx, servicesPath, nil, nil)
		if err != nil {
			return registrator.AgentState{}, refused(fmt.Errorf("list agent services: %w", err))
		}
		maint, err := l.read(ctx, checksPath, maintFilter, nil)
		if err != nil {
			return registrator.AgentState{}, refused(fmt.Errorf("list maintenance checks: %w", err))
		}
		if l.sums == [2]uint64{services, maint} {
			return l.state, nil
		}
	}
	l.decoded = false
	var all map[string]*api.AgentService
	var checks map[string]*api.AgentCheck
	services, err := l.read(ctx, servicesPath, nil, &all)
	if err != nil {
		return registrator.AgentState{}, refused(fmt.Errorf("list agent services: %w", err))
	}
	maint, err := l.read(ctx, checksPath, maintFilter, &checks)
	if err != nil {
		return registrator.AgentState{}, refused(fmt.Errorf("list maintenance checks: %w", err))
	}
	l.state, l.sums, l.decoded = sortServices(all, checks), [2]uint64{services, maint}, true
	return l.state, nil
}

// read GETs one agent endpoint, decodes its JSON into out unless out is nil, and returns the hash of
// the answer. An answer other than 200 is an api.StatusError, as consul/api gives it.
func (l *lister) read(ctx context.Context, path string, query url.Values, out any) (uint64, error) {
	u := l.base
	u.Path = strings.TrimSuffix(u.Path, "/") + path
	u.RawQuery = query.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Accept-Encoding", "identity") // the agent is local: compressing costs more than it saves
	if l.token != "" {
		req.Header.Set("X-Consul-Token", l.token)
	}
	resp, err := l.hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		return 0, api.StatusError{Code: resp.StatusCode, Body: strings.TrimSpace(string(b))}
	}
	var h maphash.Hash
	h.SetSeed(l.seed)
	if out != nil {
		// What the decoder reads goes into the hash as well; the rest is copied after it.
		if err := json.NewDecoder(io.TeeReader(resp.Body, &h)).Decode(out); err != nil {
			return 0, err
		}
	}
	if _, err := io.CopyBuffer(onlyWriter{&h}, resp.Body, l.buf); err != nil {
		return 0, err
	}
	return h.Sum64(), nil
}

// onlyWriter hides a writer's other methods, so that io.CopyBuffer uses the buffer it is given.
type onlyWriter struct{ io.Writer }

// sortServices sorts the agent's services into the daemon's own, foreign and unmarked.
func sortServices(all map[string]*api.AgentService, maint map[string]*api.AgentCheck) registrator.AgentState {
	st := registrator.AgentState{Owned: map[string]desired.Service{}, Foreign: map[string]bool{}, Unmarked: map[string]desired.Service{}}
	// A sidecar registered with an owned service is part of that service's registration: Consul
	// gives it the service's Meta and removes it with the service. It is neither a service of its
	// own to reap nor a foreign one.
	sidecars := map[string]*api.AgentService{}
	for id, s := range all {
		// Ours only when Consul registered it with our service: it then carries our Meta. A proxy of
		// another tool under that ID stays foreign.
		if parent, ok := all[sidecarOf(s)]; ok && id == parent.ID+desired.SidecarSuffix && parent.Meta[desired.MetaExternalSource] == desired.ExternalSource &&
			s.Meta[desired.MetaExternalSource] == desired.ExternalSource {
			sidecars[parent.ID] = s
		}
	}
	for id, s := range all {
		if sc, ok := sidecars[sidecarOf(s)]; ok && sc == s {
			continue
		}
		// The daemon's own registration (registrator/self.go) has no container: it is not a service to
		// reconcile, and no container may take its ID.
		if s.Meta[desired.MetaExternalSource] != desired.ExternalSource || s.Meta[desired.MetaContainerID] == "" {
			st.Foreign[id] = true
			if _, marked := s.Meta[desired.MetaExternalSource]; !marked {
				st.Unmarked[id] = desired.Service{ID: id, Name: s.Service, Address: s.Address, Port: s.Port}
			}
			continue
		}
		svc := desired.Service{
			ID: id, Name: s.Service, Tags: nilIfEmpty(s.Tags), Address: s.Address, Port: s.Port,
			Meta: s.Meta, ContainerID: s.Meta[desired.MetaContainerID], Connect: connectOf(sidecars[id]),
		}
		if c, ok := maint[maintCheckPrefix+id]; ok {
			svc.Maintenance = c.Notes
			if svc.Maintenance == "" {
				svc.Maintenance = "maintenance"
			}
		}
		st.Owned[id] = svc
	}
	return st
}

// sidecarOf is the ID of the service a sidecar proxy registration serves, "" for any other service.
func sidecarOf(s *api.AgentService) string {
	if s.Kind != api.ServiceKindConnectProxy || s.Proxy == nil {
		return ""
	}
	return s.Proxy.DestinationServiceID
}

// connectOf reads back what Register wrote of a sidecar; nil for none.
func connectOf(sc *api.AgentService) *desired.Connect {
	if sc == nil {
		return nil
	}
	c := &desired.Connect{Address: sc.Address, Port: sc.Port, LocalPort: sc.Proxy.LocalServicePort}
	if p, ok := sc.Proxy.Config["bind_port"].(float64); ok {
		c.BindPort = int(p)
	}
	for _, u := range sc.Proxy.Upstreams {
		if u.CentrallyConfigured {
			continue // merged in by the agent (transparent proxy), not registered by the daemon
		}
		c.Upstreams = append(c.Upstreams, desired.Upstream{Name: u.DestinationName, LocalPort: u.LocalBindPort})
	}
	return c
}

func nilIfEmpty(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return slices.Clone(s)
}

// WaitChange blocks until the catalog's services of node change after index, or five minutes pass,
// and returns the index to wait on next. The agent syncs its services to the catalog the moment they
// change, so an idle daemon waits here instead of reading the agent every second. The answer is
// filtered to nothing: only its index matters. A stale read spares the leader. No server to ask, or
// a refusal, is an error, and the core reads the agent every second instead.
func (a *Agent) WaitChange(ctx context.Context, node string, index uint64) (uint64, error) {
	q := (&api.QueryOptions{WaitIndex: index, WaitTime: 5 * time.Minute, AllowStale: true, Filter: `ID == ""`}).WithContext(ctx)
	_, meta, err := a.c.Catalog().NodeServiceList(node, q)
	if err != nil {
		return 0, refused(fmt.Errorf("wait for the catalog's services of %s: %w", node, err))
	}
	return meta.LastIndex, nil
}
