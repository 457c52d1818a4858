package ecsmeta

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ecs-registrator/ecs-registrator/internal/testenv"
)

// countingECS is a stand-in ECS API that answers DescribeTasks for any task of cluster prod (group
// service:svc-<n> for task .../<n>, tag team=t<n>) and records the tasks each call named.
type countingECS struct {
	*endpoint
	mu       sync.Mutex
	calls    [][]string
	throttle int // answer this many calls with a ThrottlingException first
}

func newCountingECS(t *testing.T) *countingECS {
	c := &countingECS{}
	c.endpoint = newEndpoint(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var in struct {
			Cluster string
			Tasks   []string
		}
		if err := json.Unmarshal(b, &in); err != nil || r.Header.Get("X-Amz-Target") != "AmazonEC2ContainerServiceV20141113.DescribeTasks" {
			t.Errorf("unexpected request %s", b)
		}
		c.mu.Lock()
		c.calls = append(c.calls, in.Tasks)
		throttled := c.throttle > 0
		c.throttle--
		c.mu.Unlock()
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		if throttled {
			w.WriteHeader(400)
			_, _ = w.Write([]byte(`{"__type":"ThrottlingException","message":"Rate exceeded"}`))
			return
		}
		var tasks []string
		for _, arn := range in.Tasks {
			n := arn[strings.LastIndex(arn, "/")+1:]
			tasks = append(tasks, fmt.Sprintf(`{"taskArn":%q,"group":"service:svc-%s","lastStatus":"RUNNING","tags":[{"key":"team","value":"t%s"}]}`, arn, n, n))
		}
		_, _ = w.Write([]byte(`{"failures":[],"tasks":[` + strings.Join(tasks, ",") + `]}`))
	})
	t.Setenv("AWS_ENDPOINT_URL_ECS", c.URL)
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	return c
}

func (c *countingECS) named() (calls int, tasks []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, call := range c.calls {
		tasks = append(tasks, call...)
	}
	return len(c.calls), tasks
}

func testTask(n int) Task {
	return Task{Cluster: "prod", ARN: fmt.Sprintf("arn:aws:ecs:us-west-2:111122223333:task/prod/%d", n)}
}

// Requests within the window share calls of at most 100 tasks; each gets its own task's answer.
func TestDescribeBatches(t *testing.T) {
	api := newCountingECS(t)
	d := newDescriber(&ecsAPI{}, 200*time.Millisecond, time.Millisecond)
	var wg sync.WaitGroup
	errs := make(chan error, 150)
	for i := range 150 {
		wg.Go(func() {
			got, err := d.describe(t.Context(), testTask(i))
			if err == nil && (got.service != fmt.Sprintf("svc-%d", i) || got.tags["team"] != fmt.Sprintf("t%d", i)) {
				err = fmt.Errorf("task %d got %+v", i, got)
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	calls, tasks := api.named()
	if calls != 2 || len(tasks) != 150 {
		t.Errorf("%d calls naming %d tasks, want 2 calls (100 and 50) naming 150", calls, len(tasks))
	}
}

// Requests that come while a call of their cluster is less than the interval old wait for it, and go
// together: a host makes at most one call per interval however its tasks trickle in.
func TestDescribeSpacesCalls(t *testing.T) {
	api := newCountingECS(t)
	d := newDescriber(&ecsAPI{}, 10*time.Millisecond, 500*time.Millisecond)
	var wg sync.WaitGroup
	for i := range 3 {
		if i > 0 {
			// The first call has gone (it answered); the next two come within its interval.
			testenv.Eventually(t, 5*time.Second, "first call never made", func() bool { n, _ := api.named(); return n == 1 })
		}
		wg.Go(func() {
			if _, err := d.describe(t.Context(), testTask(i)); err != nil {
				t.Error(err)
			}
		})
		if i == 0 {
			wg.Wait()
		}
	}
	wg.Wait()
	api.mu.Lock()
	defer api.mu.Unlock()
	if len(api.calls) != 2 || len(api.calls[0]) != 1 || len(api.calls[1]) != 2 {
		t.Errorf("calls %v; want the first alone and the two that came within its interval together", api.calls)
	}
}

// A ThrottlingException fails that batch and holds the next call back for a backoff.
func TestDescribeBacksOffWhenThrottled(t *testing.T) {
	api := newCountingECS(t)
	api.throttle = 1
	d := newDescriber(&ecsAPI{}, time.Millisecond, time.Millisecond)
	if _, err := d.describe(t.Context(), testTask(1)); err == nil || !strings.Contains(err.Error(), "ThrottlingException") {
		t.Fatalf("first call: %v, want the ThrottlingException", err)
	}
	d.mu.Lock()
	wait := time.Until(d.notBefore)
	d.mu.Unlock()
	if wait <= 0 {
		t.Fatal("no backoff after a ThrottlingException")
	}
	began := time.Now()
	if _, err := d.describe(t.Context(), testTask(2)); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(began); took < wait/2 {
		t.Errorf("the call after the throttling went out after %v, before the %v backoff", took, wait)
	}
}

// The ECS API is asked only for a task that a container wants registered, only when task metadata
// lacks what is asked for, and never for a task whose services a daemon before this one described.
func TestSourceAsksTheAPIOnlyWhenNeeded(t *testing.T) {
	body := string(fixture(t, "tmds-task-awsvpc.json")) // has ServiceName curl-svc
	noService := strings.Replace(body, `,"ServiceName":"curl-svc"`, "", 1)
	withTags := strings.Replace(body, `"Containers"`, `"TaskTags":{"team":"tmds-team"},"Containers"`, 1)
	tagError := strings.Replace(body, `"Containers"`, `"Errors":[{"ErrorField":"TaskTags","ErrorCode":"AccessDeniedException","ErrorMessage":"not authorized","StatusCode":400,"ResourceARN":"`+awsvpcARN+`"}],"Containers"`, 1)
	for _, tc := range []struct {
		name    string
		tmds    string // task metadata's /task answer ("" disables task metadata)
		tagged  string // its /taskWithTags answer
		tagMeta []string
		wanted  bool
		known   *Known
		calls   int
		service string
		team    string
	}{
		{name: "service name from task metadata, no tag Meta", tmds: body, wanted: true, calls: 0, service: "curl-svc"},
		{name: "not wanted: never described", tmds: noService, wanted: false, calls: 0},
		{name: "no service name in task metadata", tmds: noService, wanted: true, calls: 1, service: "svc-8f03e41243824aea923aca126495f665"},
		{name: "tags from taskWithTags", tmds: body, tagged: withTags, tagMeta: []string{"team"}, wanted: true, calls: 0, service: "curl-svc", team: "tmds-team"},
		{name: "taskWithTags could not read the tags", tmds: body, tagged: tagError, tagMeta: []string{"team"}, wanted: true, calls: 1,
			service: "curl-svc", team: "t8f03e41243824aea923aca126495f665"},
		{name: "no task metadata", wanted: true, calls: 1, service: "svc-8f03e41243824aea923aca126495f665"},
		{name: "a daemon before this one described it", tmds: noService, tagMeta: []string{"team"}, wanted: true,
			known: &Known{TaskARN: awsvpcARN, Service: "old-svc", Tags: map[string]string{"team": "old-team"}}, calls: 0, service: "old-svc", team: "old-team"},
		{name: "a daemon before this one lacked a tag", tmds: noService, tagMeta: []string{"team"}, wanted: true,
			known: &Known{TaskARN: awsvpcARN, Service: "old-svc"}, calls: 1, service: "svc-8f03e41243824aea923aca126495f665", team: "t8f03e41243824aea923aca126495f665"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			api := newCountingECS(t)
			cfg := Config{API: true, TagMeta: tc.tagMeta, DescribeWindow: time.Millisecond, DescribeInterval: time.Millisecond}
			var tmds *endpoint
			if tc.tmds != "" {
				tmds = newEndpoint(t, func(w http.ResponseWriter, r *http.Request) {
					switch r.URL.Path {
					case "/v4/uuid-curl/task":
						_, _ = w.Write([]byte(tc.tmds))
					case "/v4/uuid-curl/taskWithTags":
						_, _ = w.Write([]byte(tc.tagged))
					default:
						w.WriteHeader(404)
					}
				})
				cfg.TMDSURL = tmds.URL
			}
			s, _ := runSource(t, cfg)
			if tc.known != nil {
				s.Remember([]Known{*tc.known})
			}
			c := Ref{ID: awsvpcApp, Labels: awsvpcLabels, Env: awsvpcEnv, Running: true, Wanted: tc.wanted}
			var task Task
			testenv.EventuallyExplain(t, 10*time.Second, func() bool {
				task, _ = s.Lookup(c)
				calls, _ := api.named()
				return calls == tc.calls && task.Service == tc.service && task.Tags["team"] == tc.team &&
					(tmds == nil || tmds.requests.Load() > 0)
			}, func() string {
				calls, _ := api.named()
				return fmt.Sprintf("service %q tags %v after %d calls; want %q, team %q, %d calls", task.Service, task.Tags, calls, tc.service, tc.team, tc.calls)
			})
			// Settled: more lookups and the background fetching ask nothing more.
			for range 20 {
				s.Lookup(c)
			}
			if calls, tasks := api.named(); calls != tc.calls || slices.ContainsFunc(tasks, func(a string) bool { return a != awsvpcARN }) {
				t.Errorf("%d calls naming %v; want %d", calls, tasks, tc.calls)
			}
		})
	}
}
