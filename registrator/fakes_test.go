package registrator

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/go-connections/nat"

	"github.com/ecs-registrator/ecs-registrator/health"
	"github.com/ecs-registrator/ecs-registrator/registrator/desired"
)

// The fast layer's recording fakes. They stand in for dockerd and the Consul agent only in tests of the
// reconciler's own logic (ordering, ownership, retries), run in synctest bubbles; what only the real
// components show is proven against them in the integration tests.

// fakeDocker is an in-memory Docker engine: containers, an event stream, and a count of inspects.
type fakeDocker struct {
	mu         sync.Mutex
	containers map[string]container.InspectResponse
	subs       map[chan events.Message]chan error
	inspects   map[string]int
	// hold, when set for an ID, blocks its inspects until the channel is closed (Docker holding a
	// container for kill and removal).
	hold    map[string]chan struct{}
	listErr error
	clock   time.Time // Docker's event clock
}

func newFakeDocker() *fakeDocker {
	return &fakeDocker{containers: map[string]container.InspectResponse{}, subs: map[chan events.Message]chan error{},
		inspects: map[string]int{}, hold: map[string]chan struct{}{}}
}

func (d *fakeDocker) Events(ctx context.Context, _ events.ListOptions) (<-chan events.Message, <-chan error) {
	msgs, errs := make(chan events.Message, 256), make(chan error, 1)
	d.mu.Lock()
	d.subs[msgs] = errs
	d.mu.Unlock()
	context.AfterFunc(ctx, func() {
		d.mu.Lock()
		delete(d.subs, msgs)
		d.mu.Unlock()
	})
	return msgs, errs
}

func (d *fakeDocker) ContainerList(context.Context, container.ListOptions) ([]container.Summary, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.listErr != nil {
		return nil, d.listErr
	}
	var out []container.Summary
	for _, id := range slices.Sorted(maps.Keys(d.containers)) {
		out = append(out, container.Summary{ID: id})
	}
	return out, nil
}

func (d *fakeDocker) ContainerInspect(ctx context.Context, id string) (container.InspectResponse, error) {
	d.mu.Lock()
	d.inspects[id]++
	hold := d.hold[id]
	d.mu.Unlock()
	if hold != nil {
		select {
		case <-hold:
		case <-ctx.Done():
			return container.InspectResponse{}, ctx.Err()
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	in, ok := d.containers[id]
	if !ok {
		return in, fmt.Errorf("no such container: %s: %w", id, cerrdefs.ErrNotFound)
	}
	return in, nil
}

func (d *fakeDocker) ClientVersion() string { return "1.41" }

func (d *fakeDocker) inspected(id string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.inspects[id]
}

// emit sends a container event to every subscriber, stamped with Docker's clock.
func (d *fakeDocker) emit(id, action string, attrs map[string]string) time.Time {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.clock = later(d.clock.Add(time.Millisecond), time.Now())
	m := events.Message{Type: events.ContainerEventType, Action: events.Action(action), Actor: events.Actor{ID: id, Attributes: attrs},
		TimeNano: d.clock.UnixNano()}
	for msgs := range d.subs {
		msgs <- m
	}
	return d.clock
}

// breakStream ends every event stream with an error, as a restarting dockerd does.
func (d *fakeDocker) breakStream() {
	d.mu.Lock()
	defer d.mu.Unlock()
	for msgs, errs := range d.subs {
		errs <- errors.New("unexpected EOF")
		delete(d.subs, msgs)
	}
}

// spec is a container as a test describes it.
type spec struct {
	id, name   string
	labels     map[string]string
	port       int // container port, published on 30000+port
	stopSignal string
	health     string // Docker HEALTHCHECK status; "" for none
	network    string // network mode, "bridge" when empty; "container:<id>" exposes port unpublished
	ip         string // the container's address on the bridge network
}

// start creates (or restarts) the container, running, and sends its start event.
func (d *fakeDocker) start(s spec) {
	d.mu.Lock()
	d.clock = later(d.clock.Add(time.Millisecond), time.Now())
	started := d.clock
	labels := map[string]string{}
	maps.Copy(labels, s.labels)
	in := container.InspectResponse{
		ContainerJSONBase: &container.ContainerJSONBase{ID: s.id, Name: "/" + s.name,
			State:      &container.State{Running: true, StartedAt: started.Format(time.RFC3339Nano)},
			HostConfig: &container.HostConfig{NetworkMode: "bridge"}},
		Config:          &container.Config{Image: "img", Labels: labels, StopSignal: s.stopSignal},
		NetworkSettings: &container.NetworkSettings{},
	}
	if s.network != "" {
		in.HostConfig.NetworkMode = container.NetworkMode(s.network)
	}
	if s.ip != "" {
		in.NetworkSettings.Networks = map[string]*network.EndpointSettings{"bridge": {IPAddress: s.ip}}
	}
	if s.port != 0 {
		p := nat.Port(strconv.Itoa(s.port) + "/tcp")
		in.Config.ExposedPorts = nat.PortSet{p: {}}
		if s.network == "" {
			in.NetworkSettings.Ports = nat.PortMap{p: {{HostIP: "0.0.0.0", HostPort: strconv.Itoa(30000 + s.port)}}}
		}
	}
	if s.health != "" {
		in.Config.Healthcheck = &container.HealthConfig{Test: []string{"CMD", "/probe"}}
		in.State.Health = &container.Health{Status: s.health, Log: []*container.HealthcheckResult{{Output: "probe says " + s.health}}}
	}
	d.containers[s.id] = in
	d.mu.Unlock()
	d.emit(s.id, "start", map[string]string{"name": s.name})
}

// setHealth changes a running container's Docker health and sends the event.
func (d *fakeDocker) setHealth(id, status string) {
	d.mu.Lock()
	in := d.containers[id]
	h := *in.State.Health
	h.Status, h.Log = status, []*container.HealthcheckResult{{Output: "probe says " + status}}
	st := *in.State
	st.Health = &h
	base := *in.ContainerJSONBase
	base.State = &st
	in.ContainerJSONBase = &base
	d.containers[id] = in
	d.mu.Unlock()
	d.emit(id, "health_status: "+status, nil)
}

// kill sends the kill event only: the container still runs (a graceful stop's grace period).
func (d *fakeDocker) kill(id, signal string) { d.emit(id, "kill", map[string]string{"signal": signal}) }

// stop ends the container's run and sends die.
func (d *fakeDocker) stop(id string) { d.exit(id, 0) }

// exit ends the container's run with an exit code and sends die.
func (d *fakeDocker) exit(id string, code int) {
	d.mu.Lock()
	in := d.containers[id]
	st := *in.State
	st.Running, st.ExitCode = false, code
	base := *in.ContainerJSONBase
	base.State = &st
	in.ContainerJSONBase = &base
	d.containers[id] = in
	d.mu.Unlock()
	d.emit(id, "die", map[string]string{"exitCode": strconv.Itoa(code)})
}

// remove is docker rm -f: kill, die, destroy.
func (d *fakeDocker) remove(id string) {
	d.kill(id, "9")
	d.stop(id)
	d.mu.Lock()
	delete(d.containers, id)
	d.mu.Unlock()
	d.emit(id, "destroy", nil)
}

// fakeAgent is an in-memory Consul agent that records writes and answers blocking queries.
type fakeAgent struct {
	mu       sync.Mutex
	node     string
	services map[string]desired.Service // owned and foreign; foreign ones lack the external-source meta
	ttl      map[string]health.State
	writes   []string
	gen      int
	changed  chan struct{} // closed and replaced on every change
	down     bool
	refuse   map[string]int  // service ID -> HTTP status the agent answers its registration with
	hang     map[string]bool // service ID -> its registration never gets an answer
	reads    int             // Services calls
}

func newFakeAgent() *fakeAgent {
	return &fakeAgent{node: "node1", services: map[string]desired.Service{}, ttl: map[string]health.State{}, changed: make(chan struct{}),
		refuse: map[string]int{}, hang: map[string]bool{}}
}

var errAgentDown = errors.New("dial tcp 127.0.0.1:8500: connect: connection refused")

func (a *fakeAgent) bumpLocked() {
	a.gen++
	close(a.changed)
	a.changed = make(chan struct{})
}

func (a *fakeAgent) NodeName(context.Context) (string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.down {
		return "", errAgentDown
	}
	return a.node, nil
}

func (a *fakeAgent) Services(context.Context) (AgentState, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.reads++
	if a.down {
		return AgentState{}, errAgentDown
	}
	st := AgentState{Owned: map[string]desired.Service{}, Foreign: map[string]bool{}, Unmarked: map[string]desired.Service{}}
	for id, s := range a.services {
		if s.Meta[desired.MetaExternalSource] != desired.ExternalSource {
			st.Foreign[id] = true
			if _, marked := s.Meta[desired.MetaExternalSource]; !marked { // as the Consul adapter reads it
				st.Unmarked[id] = desired.Service{ID: id, Name: s.Name, Address: s.Address, Port: s.Port}
			}
			continue
		}
		// What the agent's service list shows: no checks, no health.
		s.Checks, s.Health = nil, nil
		st.Owned[id] = s
	}
	return st, nil
}

func (a *fakeAgent) Register(ctx context.Context, s desired.Service, _ bool) error {
	a.mu.Lock()
	if a.hang[s.ID] {
		a.mu.Unlock()
		<-ctx.Done()
		return fmt.Errorf("register %s: %w", s.ID, ctx.Err())
	}
	defer a.mu.Unlock()
	if a.down {
		return errAgentDown
	}
	if code := a.refuse[s.ID]; code != 0 {
		return fmt.Errorf("register %s: %w: %d (Permission denied)", s.ID, ErrRefused, code)
	}
	if old, ok := a.services[s.ID]; ok && old.Maintenance != "" && s.Maintenance == "" {
		s.Maintenance = old.Maintenance // Consul keeps a maintenance check across a re-registration
	}
	a.services[s.ID] = s
	if s.Health != nil {
		a.ttl[health.MirrorID(s.ID)] = health.State{Status: s.Health.Status}
	}
	a.writes = append(a.writes, "register "+s.ID)
	a.bumpLocked()
	return nil
}

func (a *fakeAgent) Deregister(_ context.Context, id string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.down {
		return errAgentDown
	}
	delete(a.services, id)
	delete(a.ttl, health.MirrorID(id))
	a.writes = append(a.writes, "deregister "+id)
	a.bumpLocked()
	return nil
}

func (a *fakeAgent) Maintain(_ context.Context, id, note string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.down {
		return errAgentDown
	}
	s, ok := a.services[id]
	if !ok {
		return fmt.Errorf("maintenance mode of %s: %w: 404 (Unknown service ID)", id, ErrRefused)
	}
	s.Maintenance = note
	a.services[id] = s
	a.writes = append(a.writes, "maintain "+id)
	a.bumpLocked()
	return nil
}

func (a *fakeAgent) UpdateTTL(_ context.Context, checkID string, st health.State) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.down {
		return errAgentDown
	}
	if _, ok := a.ttl[checkID]; !ok {
		return fmt.Errorf("update check %s: %w: 404 (CheckID does not have associated TTL)", checkID, ErrRefused)
	}
	a.ttl[checkID] = st
	a.writes = append(a.writes, "ttl "+checkID+" "+st.Status)
	return nil
}

// restart forgets everything, as a dev agent does.
func (a *fakeAgent) restart() {
	a.mu.Lock()
	defer a.mu.Unlock()
	clear(a.services)
	clear(a.ttl)
	a.bumpLocked()
}

func (a *fakeAgent) setDown(down bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.down = down
	a.bumpLocked()
}

// addForeign registers a service another tool owns.
func (a *fakeAgent) addForeign(id string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.services[id] = desired.Service{ID: id, Name: "hand-made", Meta: map[string]string{}}
	a.bumpLocked()
}

// addUnmarked registers a service without an external-source at an address, as gliderlabs (or an
// operator by hand) does.
func (a *fakeAgent) addUnmarked(id, name, addr string, port int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.services[id] = desired.Service{ID: id, Name: name, Address: addr, Port: port}
	a.bumpLocked()
}

func (a *fakeAgent) service(id string) (desired.Service, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	s, ok := a.services[id]
	return s, ok
}

// owner is the container ID the agent's service id is registered for, "" when it is not there.
func (a *fakeAgent) owner(id string) string {
	s, _ := a.service(id)
	return s.ContainerID
}

func (a *fakeAgent) log() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.writes)
}

func (a *fakeAgent) countWrites(prefix string) int {
	n := 0
	for _, w := range a.log() {
		if strings.HasPrefix(w, prefix) {
			n++
		}
	}
	return n
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
