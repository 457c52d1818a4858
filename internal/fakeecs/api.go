package fakeecs

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
)

// API is a stand-in for the ECS API's DescribeTasks (JSON 1.1 over POST /, as the wire-format
// reference has it), answering from the tasks the Agent was told about, and counting the calls and
// the tasks each named: the fleet-scale tests assert on them.
type API struct {
	*Server
	agent *Agent
	mu    sync.Mutex
	calls [][]string
}

// StartAPI serves DescribeTasks for the agent's tasks and points the daemon's ECS client at it
// (AWS_ENDPOINT_URL_ECS, with static credentials), so the test must not be parallel.
func (a *Agent) StartAPI(t *testing.T) *API {
	api := &API{agent: a}
	api.Server = newServer(t, http.HandlerFunc(api.handle), nil)
	t.Setenv("AWS_ENDPOINT_URL_ECS", api.URL())
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	return api
}

// Calls returns the tasks each DescribeTasks call named, in order.
func (api *API) Calls() [][]string {
	api.mu.Lock()
	defer api.mu.Unlock()
	return slices.Clone(api.calls)
}

func (api *API) handle(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	var in struct {
		Cluster string
		Tasks   []string
		Include []string
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	if r.Method != http.MethodPost || r.Header.Get("X-Amz-Target") != "AmazonEC2ContainerServiceV20141113.DescribeTasks" ||
		!strings.HasPrefix(r.Header.Get("Authorization"), "AWS4-HMAC-SHA256") || json.Unmarshal(b, &in) != nil {
		w.WriteHeader(400)
		_, _ = w.Write([]byte(`{"__type":"InvalidParameterException","message":"bad request"}`))
		return
	}
	if len(in.Tasks) == 0 || len(in.Tasks) > 100 {
		w.WriteHeader(400)
		_, _ = w.Write([]byte(`{"__type":"InvalidParameterException","message":"Tasks cannot be empty or longer than 100."}`))
		return
	}
	api.mu.Lock()
	api.calls = append(api.calls, slices.Clone(in.Tasks))
	api.mu.Unlock()
	type tag struct {
		Key   string `json:"key"`
		Value string `json:"value"`
	}
	type task struct {
		TaskArn    string `json:"taskArn"`
		ClusterArn string `json:"clusterArn"`
		Group      string `json:"group"`
		LastStatus string `json:"lastStatus"`
		Tags       []tag  `json:"tags,omitempty"`
	}
	type failure struct {
		Arn    string `json:"arn"`
		Reason string `json:"reason"`
	}
	out := struct {
		Failures []failure `json:"failures"`
		Tasks    []task    `json:"tasks"`
	}{Failures: []failure{}, Tasks: []task{}}
	api.agent.mu.Lock()
	for _, arn := range in.Tasks {
		c, ok := api.agent.tasks[arn]
		if !ok {
			out.Failures = append(out.Failures, failure{Arn: arn, Reason: "MISSING"})
			continue
		}
		family := arn[strings.LastIndex(arn, "/")+1:]
		tk := task{TaskArn: arn, ClusterArn: fmt.Sprintf("arn:aws:ecs:us-east-1:111122223333:cluster/%s", in.Cluster),
			Group: "family:" + family, LastStatus: "RUNNING"}
		if c.Service != "" {
			tk.Group = "service:" + c.Service
		}
		for _, k := range slices.Sorted(maps.Keys(c.Tags)) {
			tk.Tags = append(tk.Tags, tag{k, c.Tags[k]})
		}
		out.Tasks = append(out.Tasks, tk)
	}
	api.agent.mu.Unlock()
	_ = json.NewEncoder(w).Encode(out)
}
