package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/docker/docker/client"

	"github.com/ecs-registrator/ecs-registrator/ecsmeta"
	"github.com/ecs-registrator/ecs-registrator/internal/fakeecs"
	"github.com/ecs-registrator/ecs-registrator/internal/testenv"
)

// ecsHost is what a real ECS container instance has beside the daemon, so that its idle cost includes
// what it does there: AWS's instance metadata emulator, which the daemon reads every second for Spot
// and Auto Scaling notices, and an ECS agent, whose task list it reads every second while task
// containers run. The agent's task list is taken from the stand-in agent when the host's tasks change
// (refresh) and served as it is between, and so is one container's task (?dockerid=), as the agent
// answers both from memory: the stand-in builds them from Docker on every request, which under
// hundreds of lookups at once is slower than the daemon's timeout.
type ecsHost struct {
	imds  *testenv.IMDS
	fake  *fakeecs.Agent
	agent string // the introspection API's URL, serving the cached task list

	mu    sync.Mutex
	tasks []byte              // the task list as the stand-in answered it
	list  []ecsmeta.AgentTask // the same, decoded

	agentRequests atomic.Int64 // to the introspection API, cached or not
}

// requests is how many requests the daemon made of the ECS agent: its introspection API and task
// metadata.
func (h *ecsHost) requests() (agent, tmds int64) {
	return h.agentRequests.Load(), h.fake.TMDS.Requests()
}

func startECSHost(t *testing.T, d *client.Client) *ecsHost {
	h := &ecsHost{imds: testenv.StartIMDS(t), fake: fakeecs.Start(t, d)}
	up, err := url.Parse(h.fake.AgentURL())
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(up)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.agentRequests.Add(1)
		if r.URL.Path == "/v1/tasks" && r.URL.RawQuery == "" {
			h.mu.Lock()
			b := h.tasks
			h.mu.Unlock()
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write(b)
			return
		}
		// One container's task, from the same list, as the agent answers it from memory.
		if id := r.URL.Query().Get("dockerid"); r.URL.Path == "/v1/tasks" && len(r.URL.Query()) == 1 && id != "" {
			h.mu.Lock()
			t, ok := h.byDockerID(id)
			h.mu.Unlock()
			if ok {
				w.Header().Set("Content-Type", "application/json")
				_ = json.NewEncoder(w).Encode(t)
				return
			}
		}
		proxy.ServeHTTP(w, r)
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	h.agent = "http://" + ln.Addr().String()
	h.refresh(t)
	return h
}

// refresh takes the stand-in agent's task list again: call it after the host's tasks change.
func (h *ecsHost) refresh(t *testing.T) {
	resp, err := http.Get(h.fake.AgentURL() + "/v1/tasks")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("the stand-in agent's task list: %s %v", resp.Status, err)
	}
	var list ecsmeta.AgentTasks
	if err := json.Unmarshal(b, &list); err != nil {
		t.Fatal(err)
	}
	h.mu.Lock()
	h.tasks, h.list = b, list.Tasks
	h.mu.Unlock()
}

// byDockerID is the task of a container in the cached list, by its ID or a prefix of 12 or fewer.
func (h *ecsHost) byDockerID(id string) (ecsmeta.AgentTask, bool) {
	for _, t := range h.list {
		for _, c := range t.Containers {
			if c.DockerId == id || len(id) <= 12 && strings.HasPrefix(c.DockerId, id) {
				return t, true
			}
		}
	}
	return ecsmeta.AgentTask{}, false
}

// env points the daemon at the host's instance metadata and ECS agent.
func (h *ecsHost) env() []string {
	return []string{"AWS_EC2_METADATA_SERVICE_ENDPOINT=" + h.imds.URL, "REGISTRATOR_ECS_AGENT_URI=" + h.agent,
		"REGISTRATOR_ECS_TMDS_URI=" + h.fake.TMDSURL()}
}

// taskWorkload is a bench workload as the only container of an ECS task, labelled as the ECS agent
// labels it. Its Docker name is ECS's (ecs-<family>-<revision>-<container>-<20 hex>), so the board
// knows it by the family: ecs-<family>-.
func taskWorkload(family string, i int, service string) testenv.Workload {
	task := fakeecs.Task{ARN: fmt.Sprintf("arn:aws:ecs:us-east-1:111122223333:task/test/%016x%016x", os.Getpid(), i), Family: family, Revision: "7"}
	return task.Container("app", workload("", service))
}

// quiet waits until no task metadata request came for window, and returns when the last one came
// (the counter is read once a second in this process; nothing is asked of the daemon).
func (h *ecsHost) quiet(t *testing.T, window, timeout time.Duration) time.Time {
	_, last := h.requests()
	lastAt := time.Now()
	deadline := time.Now().Add(timeout)
	for time.Since(lastAt) < window {
		if time.Now().After(deadline) {
			t.Fatalf("task metadata still read %v on", timeout)
		}
		time.Sleep(time.Second) // sampling a counter, not waiting for the daemon
		if _, n := h.requests(); n != last {
			last, lastAt = n, time.Now()
		}
	}
	return lastAt
}
