package bench

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"sync"
	"testing"

	"github.com/docker/docker/client"

	"github.com/ecs-registrator/ecs-registrator/internal/fakeecs"
	"github.com/ecs-registrator/ecs-registrator/internal/testenv"
)

// ecsHost is what a real ECS container instance has beside the daemon, so that its idle cost includes
// what it does there: AWS's instance metadata emulator, which the daemon reads every second for Spot
// and Auto Scaling notices, and an ECS agent, whose task list it reads every second while task
// containers run. The agent's task list is taken from the stand-in agent when the host's tasks change
// (refresh) and served as it is between, so that a poll costs the benchmark's side nothing: the
// stand-in builds it from Docker on every request.
type ecsHost struct {
	imds  *testenv.IMDS
	fake  *fakeecs.Agent
	agent string // the introspection API's URL, serving the cached task list

	mu    sync.Mutex
	tasks []byte
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
		if r.URL.Path == "/v1/tasks" && r.URL.RawQuery == "" {
			h.mu.Lock()
			b := h.tasks
			h.mu.Unlock()
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write(b)
			return
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
	h.mu.Lock()
	h.tasks = b
	h.mu.Unlock()
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
