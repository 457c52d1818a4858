package main

import (
	"testing"
	"time"

	"github.com/ecs-registrator/ecs-registrator/ecsmeta"
	"github.com/ecs-registrator/ecs-registrator/health"
	"github.com/ecs-registrator/ecs-registrator/registrator"
	"github.com/ecs-registrator/ecs-registrator/registrator/desired"
	"github.com/ecs-registrator/ecs-registrator/status"
)

// The view turns the core's snapshot into the status page's: the state column says why, checks come
// from the agent when it answered, else from the definitions as "unknown".
func TestToStatus(t *testing.T) {
	svc := desired.Service{ID: "n1:web:8080", Name: "web", Address: "10.0.0.5", Port: 32768, Tags: []string{"a"},
		Checks: []health.Check{{ID: "n1:web:8080:http", Name: "HTTP /health"}}}
	clash := desired.Problem{Severity: desired.SeverityError, Key: "SERVICE_ID", Message: "service ID \"x\" belongs to container aaaa"}
	snap := registrator.Snapshot{Time: time.Unix(1, 0), Ready: true, Node: "n1", AdvertiseIP: "10.0.0.5",
		Docker: registrator.Dependency{Up: true, Detail: "API 1.41"}, Consul: registrator.Dependency{Up: true},
		Containers: []registrator.ContainerView{
			{ID: "c1", Name: "web", Running: true, Services: []desired.Service{svc},
				Task: &ecsmeta.Task{Cluster: "prod", Family: "web", Revision: "3"}},
			{ID: "c2", Name: "stopping", Running: true, Draining: "stop signal 15", Reason: "stopping: deregistered until it runs again"},
			{ID: "c3", Name: "clashing", Running: true, Problems: []desired.Problem{clash}},
			{ID: "c4", Name: "partly", Running: true, Services: []desired.Service{svc}, Problems: []desired.Problem{clash}},
		},
		Events: []registrator.Event{{Source: "docker", Action: "start", Container: "c1"}},
	}
	got := toStatus(snap, map[string][]status.Check{"n1:web:8080": {{ID: "n1:web:8080:http", Status: "passing"}}}, nil)
	want := map[string]string{"c1": status.StateRegistered, "c2": status.StateDraining, "c3": status.StateNotRegistered,
		"c4": status.StatePartly}
	for _, c := range got.Containers {
		if c.State != want[c.ID] {
			t.Errorf("%s: state %q, want %q", c.ID, c.State, want[c.ID])
		}
	}
	web := got.Containers[0]
	if web.ECS == nil || web.ECS.Family != "web" || web.Services[0].Address != "10.0.0.5:32768" || web.Services[0].Checks[0].Status != "passing" {
		t.Errorf("web = %+v", web)
	}
	if p := got.Containers[2].Problems; len(p) != 1 || p[0].Key != "SERVICE_ID" {
		t.Errorf("clash not shown: %+v", p)
	}
	if got.Dependencies[0].Detail != "API 1.41" || got.Dependencies[1].Detail != "node n1" || len(got.Events) != 1 {
		t.Errorf("dependencies %+v, events %+v", got.Dependencies, got.Events)
	}
	if got.Host.Draining {
		t.Errorf("host draining without a notice: %+v", got.Host)
	}
	going := snap
	going.Host = registrator.HostState{Draining: "Auto Scaling target lifecycle state Terminated", Since: time.Unix(1, 0)}
	if h := toStatus(going, nil, nil).Host; !h.Draining || h.Reason != going.Host.Draining || !h.Since.Equal(going.Host.Since) {
		t.Errorf("host = %+v, want it draining with the notice", h)
	}
	// The agent did not answer: each check is shown from its definition.
	got = toStatus(snap, nil, nil)
	if c := got.Containers[0].Services[0].Checks; len(c) != 1 || c[0].Status != "unknown" {
		t.Errorf("checks without the agent = %+v", c)
	}
}
