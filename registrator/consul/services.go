package consul

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"

	"github.com/hashicorp/consul/api"

	"github.com/ecs-registrator/ecs-registrator/registrator"
	"github.com/ecs-registrator/ecs-registrator/registrator/desired"
)

// The agent's service list takes no blocking query, so the core reads it every second. Through
// consul/api each read is a gzip stream and a JSON decode of every service: on a host with 300
// services, 200 KB a second and most of the daemon's idle CPU. Here the two answers are read as
// bytes, uncompressed (the agent is local), and decoded only when they differ from the last ones.

// lister reads the agent's services and maintenance checks, remembering the last answers.
type lister struct {
	hc    *http.Client // consul/api's client for the agent: its TLS, its socket, its token transport
	base  url.URL      // scheme, host and path prefix of the agent's HTTP API
	token string       // CONSUL_HTTP_TOKEN; a file's or a login's token comes from hc's transport

	mu              sync.Mutex // one read at a time: the agent watch and a full sync may overlap
	services, maint answer
	state           registrator.AgentState
	decoded         bool // state is the decoding of services.last and maint.last
}

// answer is an endpoint's last answer, and the buffer the next one is read into.
type answer struct{ last, next []byte }

func newLister(cfg *api.Config) *lister {
	host := cfg.Address
	if strings.HasPrefix(host, "/") {
		host = "localhost" // a unix socket, which the transport dials
	}
	return &lister{hc: cfg.HttpClient, base: url.URL{Scheme: cfg.Scheme, Host: host, Path: cfg.PathPrefix}, token: cfg.Token}
}

// maintFilter selects the checks Consul adds for a service in maintenance mode.
var maintFilter = url.Values{"filter": {fmt.Sprintf("CheckID matches %q", "^"+maintCheckPrefix)}}

// Services returns what the agent holds, sorted into the daemon's own services (with their sidecar
// and maintenance state), foreign ones and unmarked ones. An answer the same as the last returns the
// same AgentState, whose maps callers must not change.
func (a *Agent) Services(ctx context.Context) (registrator.AgentState, error) {
	l := a.list
	l.mu.Lock()
	defer l.mu.Unlock()
	newServices, err := l.get(ctx, "/v1/agent/services", nil, &l.services)
	if err != nil {
		return registrator.AgentState{}, refused(fmt.Errorf("list agent services: %w", err))
	}
	newMaint, err := l.get(ctx, "/v1/agent/checks", maintFilter, &l.maint)
	if err != nil {
		return registrator.AgentState{}, refused(fmt.Errorf("list maintenance checks: %w", err))
	}
	if l.decoded && !newServices && !newMaint {
		return l.state, nil
	}
	l.decoded = false
	var all map[string]*api.AgentService
	var checks map[string]*api.AgentCheck
	if err := json.Unmarshal(l.services.last, &all); err != nil {
		return registrator.AgentState{}, fmt.Errorf("list agent services: %w", err)
	}
	if err := json.Unmarshal(l.maint.last, &checks); err != nil {
		return registrator.AgentState{}, fmt.Errorf("list maintenance checks: %w", err)
	}
	l.state, l.decoded = sortServices(all, checks), true
	return l.state, nil
}

// get reads one agent endpoint's answer into a, and reports whether it differs from the last one.
// An answer other than 200 is an api.StatusError, as consul/api gives it.
func (l *lister) get(ctx context.Context, path string, query url.Values, a *answer) (changed bool, err error) {
	u := l.base
	u.Path = strings.TrimSuffix(u.Path, "/") + path
	u.RawQuery = query.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return false, err
	}
	req.Header.Set("Accept-Encoding", "identity") // the agent is local: compressing costs more than it saves
	if l.token != "" {
		req.Header.Set("X-Consul-Token", l.token)
	}
	resp, err := l.hc.Do(req)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	b := bytes.NewBuffer(a.next[:0])
	if _, err := b.ReadFrom(resp.Body); err != nil {
		return false, err
	}
	if resp.StatusCode != http.StatusOK {
		return false, api.StatusError{Code: resp.StatusCode, Body: strings.TrimSpace(b.String())}
	}
	if bytes.Equal(b.Bytes(), a.last) {
		a.next = b.Bytes()
		return false, nil
	}
	a.last, a.next = b.Bytes(), a.last
	return true, nil
}

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
		if s.Meta[desired.MetaExternalSource] != desired.ExternalSource {
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
