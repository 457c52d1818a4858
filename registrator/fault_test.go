package registrator_test

import (
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/client"
	"github.com/hashicorp/consul/api"

	"github.com/ecs-registrator/ecs-registrator/ecsmeta"
	"github.com/ecs-registrator/ecs-registrator/internal/fakeecs"
	"github.com/ecs-registrator/ecs-registrator/internal/testenv"
	"github.com/ecs-registrator/ecs-registrator/registrator"
)

// The fault suite: each scenario changes containers while a dependency fails, then requires the agent
// to hold exactly the running containers' services within 5 s of recovery: nothing stale, nothing
// missing, foreign services untouched.

const recovery = 5 * time.Second

func (e *env) waitConverged(t *testing.T, f *testenv.Fleet, within time.Duration, since time.Time) time.Duration {
	t.Helper()
	for {
		ok, why := f.Converged(e.api, e.consul.Node)
		if ok {
			return time.Since(since)
		}
		if time.Since(since) > within {
			t.Fatalf("not converged %v after recovery: %s", within, why)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func registerForeign(t *testing.T, a *api.Client) {
	t.Helper()
	if err := a.Agent().ServiceRegister(&api.AgentServiceRegistration{ID: "hand-made", Name: "hand", Port: 7}); err != nil {
		t.Fatal(err)
	}
}

func foreignIntact(t *testing.T, a *api.Client) {
	t.Helper()
	if s, _, err := a.Agent().Service("hand-made", nil); err != nil || s.Port != 7 {
		t.Errorf("foreign service touched: %v %v", s, err)
	}
}

func TestFaultConsulRestartDuringChurn(t *testing.T) {
	t.Parallel()
	d := testenv.Docker(t)
	consul := testenv.StartConsul(t)
	e := run(t, d, consul)
	f := testenv.NewFleet(t, d, "crestart", false)
	f.Start(20, false)
	e.waitConverged(t, f, 30*time.Second, time.Now())

	var wg sync.WaitGroup
	wg.Go(func() { f.Start(10, false); f.Remove(10, false) })
	consul.Restart() // the dev agent comes back empty
	wg.Wait()
	registerForeign(t, e.api)
	took := e.waitConverged(t, f, recovery, time.Now())
	t.Logf("converged %v after the agent was back and the churn over", took)
	foreignIntact(t, e.api)
}

func TestFaultConsulUnreachable30sWhile50Change(t *testing.T) {
	t.Parallel()
	d := testenv.Docker(t)
	consul := testenv.StartConsul(t)
	e := run(t, d, consul)
	f := testenv.NewFleet(t, d, "cdown", false)
	f.Start(25, false)
	e.waitConverged(t, f, 30*time.Second, time.Now())

	consul.Stop()
	outage := time.Now()
	f.Start(25, false)
	f.Remove(25, false)
	time.Sleep(time.Until(outage.Add(30 * time.Second))) // the length of the outage, not synchronisation
	consul.Start()
	registerForeign(t, e.api)
	took := e.waitConverged(t, f, recovery, time.Now())
	t.Logf("converged %v after a 30 s outage with 50 changes", took)
	foreignIntact(t, e.api)
}

func TestFaultDockerdRestartDuringChurn(t *testing.T) {
	t.Parallel()
	dockerd := testenv.StartDockerd(t)
	d := dockerd.Client()
	consul := testenv.StartConsul(t)
	registerForeign(t, consul.API())
	e := run(t, d, consul)
	f := testenv.NewFleet(t, d, "drestart", true)
	f.Mod = func(i int, w *testenv.Workload) {
		if i%2 == 0 {
			w.Restart = "always" // half come back after the restart, half stay stopped
		}
	}
	f.Start(10, false)
	e.waitConverged(t, f, 30*time.Second, time.Now())

	var wg sync.WaitGroup
	wg.Go(func() {
		for range 10 {
			f.Start(2, true) // some of these meet a dockerd that is down
			f.Remove(1, true)
		}
	})
	dockerd.Restart()
	wg.Wait()
	took := e.waitConverged(t, f, recovery, time.Now())
	t.Logf("converged %v after dockerd was back and the churn over", took)
	foreignIntact(t, e.api)
}

// 200 opted-in containers started 10 at a time, then removed at once. Not parallel: the storm loads
// dockerd for half a minute, and the other fault tests time their recovery to 5 s.
func TestFaultEventStorm(t *testing.T) {
	d := testenv.Docker(t)
	consul := testenv.StartConsul(t)
	registerForeign(t, consul.API())
	e := run(t, d, consul)
	e.waitReady(t)
	f := testenv.NewFleet(t, d, "storm", false)
	start := time.Now()
	f.Start(200, false)
	started := time.Since(start)
	took := e.waitConverged(t, f, 30*time.Second, time.Now())
	t.Logf("200 containers started in %v; converged %v after the last start", started, took)
	if n, _ := f.Owned(e.api); len(n) != 200 {
		t.Fatalf("%d services for 200 containers", len(n))
	}
	f.Remove(200, false)
	took = e.waitConverged(t, f, 30*time.Second, time.Now())
	t.Logf("all 200 removed at once; converged %v after", took)
	foreignIntact(t, e.api)
}

// The daemon behind a Docker socket proxy that only lets reads through still does everything: it
// never writes to Docker.
func TestReadOnlyDockerSocket(t *testing.T) {
	t.Parallel()
	upstream := testenv.Docker(t)
	proxy := testenv.StartReadOnlyDocker(t, upstream.DaemonHost())
	d, err := client.NewClientWithOpts(client.WithHost(proxy.Host), client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	e := run(t, d, testenv.StartConsul(t))
	e.waitReady(t)
	name := unique(t, "readonly")
	id := testenv.Start(t, upstream, testenv.Workload{Name: name, TCP: []int{8080}, Publish: true, Drain: time.Second,
		Labels: map[string]string{"SERVICE_NAME": name}})
	e.waitServices(t, id, 1, 5*time.Second)
	go func() { _ = upstream.ContainerStop(t.Context(), id, container.StopOptions{}) }()
	testenv.Eventually(t, time.Second, "no drain through the read-only socket", func() bool { return e.passing(t, name) == 0 })
	if err := upstream.ContainerRemove(t.Context(), id, container.RemoveOptions{Force: true}); err != nil {
		t.Fatal(err)
	}
	e.waitServices(t, id, 0, 5*time.Second)
	if n := proxy.Denied.Load(); n != 0 {
		t.Fatalf("the daemon tried %d writes to Docker", n)
	}
	if proxy.Passed.Load() == 0 {
		t.Fatal("nothing went through the proxy")
	}
	// The proxy really refuses writes.
	_, err = d.ContainerCreate(t.Context(), &container.Config{Image: testenv.WorkloadImage}, nil, nil, nil, "")
	if err == nil || proxy.Denied.Load() != 1 {
		t.Fatalf("a write went through the proxy: %v", err)
	}
}

// Instance metadata that is down, answers after 5 s, with 500, 429 or garbage never delays a registration.
func TestFaultSlowInstanceMetadata(t *testing.T) {
	t.Parallel()
	for name, h := range map[string]http.HandlerFunc{
		"slow": func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-time.After(5 * time.Second):
			case <-r.Context().Done():
			}
		},
		"garbage": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("X-Aws-Ec2-Metadata-Token-Ttl-Seconds", "21600")
			_, _ = w.Write([]byte("<html>\x00\x01"))
		},
		"500":  func(w http.ResponseWriter, r *http.Request) { http.Error(w, "oops", http.StatusInternalServerError) },
		"429":  func(w http.ResponseWriter, r *http.Request) { http.Error(w, "slow down", http.StatusTooManyRequests) },
		"down": nil,
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewServer(h)
			if h == nil {
				srv.Close() // connection refused
			}
			t.Cleanup(srv.Close)
			d := testenv.Docker(t)
			fake := fakeecs.Start(t, d)
			md := imds.New(imds.Options{Endpoint: srv.URL, EnableFallback: aws.FalseTernary})
			src := ecsmeta.New(ecsmeta.Config{AgentURL: fake.AgentURL(), TMDSURL: fake.TMDSURL(), IMDS: md})
			e := run(t, d, testenv.StartConsul(t), func(c *registrator.Config) { c.ECS = src })
			e.waitReady(t)
			task := newTask(t, "imds")
			id := testenv.Start(t, d, task.container("app", testenv.Workload{TCP: []int{8080}, Publish: true,
				Labels: map[string]string{"SERVICE_REGISTER": "true"}}))
			took := testenv.Eventually(t, time.Second, "registration waited for instance metadata", func() bool { return len(e.services(t, id)) == 1 })
			t.Logf("registered %v after start with instance metadata %s", took, name)
		})
	}
}
