package ecsmeta

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"golang.org/x/time/rate"
)

// ErrRateLimited is an HTTP 429 from task metadata: the agent allows 40 requests a second per source.
var ErrRateLimited = errors.New("rate limited (HTTP 429)")

// ErrNotFound is an HTTP 404: the agent does not know the container or task (yet).
var ErrNotFound = errors.New("not found (HTTP 404)")

// maxBody bounds what is read of one response; a task with many containers is a few tens of KiB.
const maxBody = 4 << 20

// agentClient talks to the ECS agent's introspection API and task metadata v4 on this host.
type agentClient struct {
	http    *http.Client
	slow    *http.Client // for /taskWithTags: tagsTimeout
	agent   string       // introspection base URL, "" when disabled
	tmds    string       // task metadata base URL, "" when disabled
	limiter *rate.Limiter

	// The task list's last answer (tasks): a buffer reused between reads, and its hash.
	buf     bytes.Buffer
	seed    maphash.Seed
	sum     uint64
	decoded bool
}

// tagsTimeout bounds a /taskWithTags read. For it the ECS agent asks ECS for the container
// instance's tags and then for the task's (agent/handlers/v2/response.go, propagateTagsToMetadata),
// and each GetResourceTags retries a throttled ListTagsForResource for up to 30 s
// (ecs-agent/api/ecs/client/ecs_client.go, getResourceTagsTimeout): up to a minute, plus the last
// call. The read outwaits it, so that the daemon never gives up on a read the agent is still
// working on and asks again, piling more lookups on an API that is throttling. (An answer slower
// than the agent's 5 s write timeout, agent/handlers/task_server_setup.go, comes back as a closed
// connection: a failure, counted towards tagFailuresMax.)
const tagsTimeout = 2*30*time.Second + 5*time.Second

func newAgentClient(agentURL, tmdsURL string, timeout time.Duration) *agentClient {
	transport := &http.Transport{MaxIdleConnsPerHost: 4, IdleConnTimeout: time.Minute}
	return &agentClient{
		http:  &http.Client{Timeout: timeout, Transport: transport},
		slow:  &http.Client{Timeout: max(timeout, tagsTimeout), Transport: transport},
		agent: strings.TrimRight(agentURL, "/"),
		tmds:  strings.TrimRight(tmdsURL, "/"),
		// Task metadata allows 40 req/s with a burst of 60 per source, and every host process shares
		// 127.0.0.1's bucket: use a quarter of it.
		limiter: rate.NewLimiter(10, 15),
		seed:    maphash.MakeSeed(),
	}
}

func (c *agentClient) metadata(ctx context.Context) (AgentMetadata, error) {
	b, err := c.get(ctx, c.http, c.agent+"/v1/metadata")
	if err != nil {
		return AgentMetadata{}, err
	}
	return DecodeAgentMetadata(b)
}

// tasks reads the agent's task list; changed is false, with no tasks, when the answer is the same
// as the last one: the list is read every second and, on a host with hundreds of tasks, is hundreds
// of KiB that rarely change. The answer goes into a buffer kept between reads and is decoded only
// when its hash differs. One caller at a time (the poller).
func (c *agentClient) tasks(ctx context.Context) (tasks []AgentTask, changed bool, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.agent+"/v1/tasks", nil)
	if err != nil {
		return nil, false, err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, false, err
	}
	defer resp.Body.Close()
	c.buf.Reset()
	if _, err := c.buf.ReadFrom(io.LimitReader(resp.Body, maxBody)); err != nil {
		return nil, false, fmt.Errorf("GET %s: %w", req.URL.Path, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, false, fmt.Errorf("GET %s: HTTP %d: %s", req.URL.Path, resp.StatusCode, snippet(c.buf.Bytes()))
	}
	sum := maphash.Bytes(c.seed, c.buf.Bytes())
	if c.decoded && sum == c.sum {
		return nil, false, nil
	}
	if tasks, err = DecodeAgentTasks(c.buf.Bytes()); err != nil {
		return nil, false, err
	}
	c.sum, c.decoded = sum, true
	return tasks, true, nil
}

func (c *agentClient) taskByDockerID(ctx context.Context, id string) (AgentTask, error) {
	b, err := c.get(ctx, c.http, c.agent+"/v1/tasks?dockerid="+url.QueryEscape(id))
	if err != nil {
		return AgentTask{}, err
	}
	return DecodeAgentTask(b)
}

// tmdsTask reads the task of the container whose metadata path (/v4/<uuid>) is given; withTags reads
// /taskWithTags, for which the agent asks ECS for the task's and the instance's tags (slowly when ECS
// throttles it).
func (c *agentClient) tmdsTask(ctx context.Context, path string, withTags bool) (TMDSTask, error) {
	if err := c.limiter.Wait(ctx); err != nil {
		return TMDSTask{}, err
	}
	hc, sub := c.http, "/task"
	if withTags {
		hc, sub = c.slow, "/taskWithTags"
	}
	b, err := c.get(ctx, hc, c.tmds+path+sub)
	if err != nil {
		return TMDSTask{}, err
	}
	return DecodeTMDSTask(b)
}

func (c *agentClient) get(ctx context.Context, hc *http.Client, u string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", req.URL.Path, err)
	}
	switch resp.StatusCode {
	case http.StatusOK:
		return b, nil
	case http.StatusTooManyRequests:
		return nil, fmt.Errorf("GET %s: %w", req.URL.Path, ErrRateLimited)
	case http.StatusNotFound:
		return nil, fmt.Errorf("GET %s: %w: %s", req.URL.Path, ErrNotFound, snippet(b))
	default:
		return nil, fmt.Errorf("GET %s: HTTP %d: %s", req.URL.Path, resp.StatusCode, snippet(b))
	}
}
