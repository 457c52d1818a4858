// Package fakeecs is a faithful stand-in for the ECS agent's two local APIs, introspection (51678) and
// task metadata v4 (51679), built from the wire-format reference. No ECS agent runs off AWS, so its
// answers are derived from real containers on a real dockerd: their com.amazonaws.ecs.* labels, their
// ECS_CONTAINER_METADATA_URI_V4 env, their state and port bindings. What Docker cannot know (service
// name, zone, awsvpc ENI address, a task's desired status) the test sets per task.
package fakeecs

import (
	"encoding/json"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/client"
	"golang.org/x/time/rate"

	"github.com/ecs-registrator/ecs-registrator/ecsmeta"
)

// Fault makes an endpoint misbehave.
type Fault int

const (
	Healthy   Fault = iota
	Slow            // answers after 5 s
	Error500        // HTTP 500
	Throttled       // HTTP 429, as the agent's rate limiter does
	Garbage         // HTTP 200 with a body that is not the JSON asked for
)

// TaskConfig is what the test says about a task that Docker cannot show.
type TaskConfig struct {
	Service          string
	AvailabilityZone string
	ENI              string // awsvpc ENI IPv4 address
	ENIv6            string
	DesiredStatus    string            // default RUNNING
	Health           map[string]string // container name -> HEALTHY or UNHEALTHY
	// NoServiceName: task metadata omits ServiceName, as agents before 1.63.1 do; the ECS API still
	// knows the service.
	NoServiceName bool
	// Tags are the task's tags, in /taskWithTags and the ECS API; TagsDenied makes /taskWithTags report
	// that the agent may not read them (its instance role lacks ecs:ListTagsForResource).
	Tags       map[string]string
	TagsDenied bool
}

// Agent serves both APIs on loopback ports that stay the same across Stop and Start.
type Agent struct {
	Introspection *Server
	TMDS          *Server

	t       testing.TB
	docker  *client.Client
	cluster string

	mu       sync.Mutex
	tagReads map[string]int64 // task ARN -> ListTagsForResource calls the agent made for its /taskWithTags
	tasks    map[string]TaskConfig
	inspect  map[string]inspected // Docker ID -> last inspect, while its state is the same
}

type inspected struct {
	state string
	in    container.InspectResponse
}

// Server is one HTTP listener that can be stopped (connection refused) and started again.
type Server struct {
	addr      string
	handler   http.Handler
	mu        sync.Mutex
	srv       *http.Server
	fault     Fault
	requests  atomic.Int64
	paths     []string // every request's path, in order (guarded by mu)
	throttled atomic.Int64
	limiter   *rate.Limiter // nil: no rate limit
}

// Start runs a fake agent for the containers of docker until the test ends.
func Start(t testing.TB, docker *client.Client) *Agent {
	a := &Agent{t: t, docker: docker, cluster: "test", tasks: map[string]TaskConfig{}, tagReads: map[string]int64{}, inspect: map[string]inspected{}}
	a.Introspection = newServer(t, http.HandlerFunc(a.introspection), nil)
	// The real agent allows 40 requests a second with a burst of 60 per source address.
	a.TMDS = newServer(t, http.HandlerFunc(a.metadata), rate.NewLimiter(40, 60))
	return a
}

func newServer(t testing.TB, h http.Handler, limiter *rate.Limiter) *Server {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{addr: ln.Addr().String(), handler: h, limiter: limiter}
	s.serve(ln)
	t.Cleanup(s.Stop)
	return s
}

// URL is the server's base URL.
func (s *Server) URL() string { return "http://" + s.addr }

// Requests is the number of requests the server has received.
func (s *Server) Requests() int64 { return s.requests.Load() }

// RequestsUnder is the number of requests whose path starts with one of prefixes: a test's own,
// when the daemon under test also sees other tests' task containers on the shared dockerd.
func (s *Server) RequestsUnder(prefixes ...string) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var n int64
	for _, p := range s.paths {
		if slices.ContainsFunc(prefixes, func(pre string) bool { return strings.HasPrefix(p, pre) }) {
			n++
		}
	}
	return n
}

// Throttled is the number of requests its rate limiter refused.
func (s *Server) Throttled() int64 { return s.throttled.Load() }

// SetFault makes every following answer misbehave, or not.
func (s *Server) SetFault(f Fault) {
	s.mu.Lock()
	s.fault = f
	s.mu.Unlock()
}

// Stop closes the listener: clients get connection refused.
func (s *Server) Stop() {
	s.mu.Lock()
	srv := s.srv
	s.srv = nil
	s.mu.Unlock()
	if srv != nil {
		_ = srv.Close()
	}
}

// Start listens again on the same address.
func (s *Server) Start(t testing.TB) {
	var ln net.Listener
	var err error
	for range 50 { // the port was ours a moment ago; TIME_WAIT does not block a listener
		if ln, err = net.Listen("tcp", s.addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	s.serve(ln)
}

func (s *Server) serve(ln net.Listener) {
	srv := &http.Server{Handler: http.HandlerFunc(s.handle), ReadHeaderTimeout: 5 * time.Second}
	s.mu.Lock()
	s.srv = srv
	s.mu.Unlock()
	go func() { _ = srv.Serve(ln) }()
}

func (s *Server) handle(w http.ResponseWriter, r *http.Request) {
	s.requests.Add(1)
	s.mu.Lock()
	s.paths = append(s.paths, r.URL.Path)
	fault := s.fault
	s.mu.Unlock()
	if s.limiter != nil && !s.limiter.Allow() {
		s.throttled.Add(1)
		fault = Throttled
	}
	switch fault {
	case Slow:
		select {
		case <-time.After(5 * time.Second):
		case <-r.Context().Done():
			return
		}
	case Error500:
		http.Error(w, "internal server error", http.StatusInternalServerError)
		return
	case Throttled:
		// The agent's throttler answers with this plain text body.
		http.Error(w, "You have reached maximum request limit.", http.StatusTooManyRequests)
		return
	case Garbage:
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"Tasks":"<html>not json`))
		return
	}
	s.handler.ServeHTTP(w, r)
}

// URL of the introspection API and base URL of task metadata.
func (a *Agent) AgentURL() string { return a.Introspection.URL() }
func (a *Agent) TMDSURL() string  { return a.TMDS.URL() }

// SetTask says what Docker cannot show about a task.
func (a *Agent) SetTask(arn string, c TaskConfig) {
	a.mu.Lock()
	a.tasks[arn] = c
	a.mu.Unlock()
}

// StopTask marks a task DesiredStatus STOPPED, as ECS does before it signals the containers.
func (a *Agent) StopTask(arn string) {
	a.mu.Lock()
	c := a.tasks[arn]
	c.DesiredStatus = ecsmeta.StatusStopped
	a.tasks[arn] = c
	a.mu.Unlock()
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func (a *Agent) introspection(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/v1/metadata":
		writeJSON(w, 200, ecsmeta.AgentMetadata{Cluster: a.cluster,
			ContainerInstanceArn: "arn:aws:ecs:us-east-1:111122223333:container-instance/" + a.cluster + "/2dd1b186f39845a584488d2ef155c131",
			Version:              "Amazon ECS Agent - v1.89.1 (fakeecs)"})
	case "/v1/tasks":
		tasks, err := a.snapshot(r.Context())
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		q := r.URL.Query()
		dockerID, arn := q.Get("dockerid"), q.Get("taskarn")
		if dockerID != "" && arn != "" {
			writeJSON(w, 400, ecsmeta.AgentTask{})
			return
		}
		if dockerID == "" && arn == "" {
			out := ecsmeta.AgentTasks{Tasks: []ecsmeta.AgentTask{}}
			for _, t := range tasks {
				out.Tasks = append(out.Tasks, t.agentTask())
			}
			writeJSON(w, 200, out)
			return
		}
		var found []*task
		for _, t := range tasks {
			match := t.arn == arn
			for _, c := range t.containers {
				if c.pause {
					continue // internal containers are not listed
				}
				if dockerID != "" && (c.id == dockerID || len(dockerID) <= 12 && strings.HasPrefix(c.id, dockerID)) {
					match = true
				}
			}
			if match {
				found = append(found, t)
			}
		}
		switch len(found) {
		case 0:
			writeJSON(w, 404, ecsmeta.AgentTask{})
		case 1:
			writeJSON(w, 200, found[0].agentTask())
		default:
			writeJSON(w, 400, ecsmeta.AgentTask{})
		}
	default:
		writeJSON(w, 404, map[string][]string{"AvailableCommands": {"/v1/metadata", "/v1/tasks", "/license"}})
	}
}

func (a *Agent) metadata(w http.ResponseWriter, r *http.Request) {
	rest, ok := strings.CutPrefix(r.URL.Path, "/v4/")
	uuid, sub, _ := strings.Cut(rest, "/")
	if ok {
		tasks, err := a.snapshot(r.Context())
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		for _, t := range tasks {
			for _, c := range t.containers {
				if c.uuid != uuid || uuid == "" {
					continue
				}
				switch sub {
				case "":
					writeJSON(w, 200, c.tmds(t))
				case "task":
					writeJSON(w, 200, t.tmdsTask())
				case "taskWithTags":
					a.mu.Lock()
					a.tagReads[t.arn] += 2 // the agent asks ECS for the task's and the instance's tags
					a.mu.Unlock()
					writeJSON(w, 200, t.tmdsTaskWithTags())
				default:
					writeJSON(w, 404, "V4 task metadata handler: unknown path")
				}
				return
			}
		}
	}
	writeJSON(w, 404, "V4 task metadata handler: unable to get task arn from request: unable to get container id from request: unable to get task ARN for endpoint ID "+uuid)
}

// TagReads is the number of ListTagsForResource calls the agent made to answer /taskWithTags for the
// task arn. (Other tests' task containers on the same dockerd are the agent's too.)
func (a *Agent) TagReads(arn string) int64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.tagReads[arn]
}
