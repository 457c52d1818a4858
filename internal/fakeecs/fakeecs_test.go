package fakeecs_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/ecs-registrator/ecs-registrator/ecsmeta"
	"github.com/ecs-registrator/ecs-registrator/internal/fakeecs"
	"github.com/ecs-registrator/ecs-registrator/internal/testenv"
)

// The fake is only useful if it speaks like the agent: every object it emits uses the agent's field
// names in the agent's order, as the fixtures from the wire-format reference have them.
func TestFakeMatchesTheReference(t *testing.T) {
	t.Parallel()
	d := testenv.Docker(t)
	fake := fakeecs.Start(t, d)
	arn := fmt.Sprintf("arn:aws:ecs:us-east-1:111122223333:task/test/%032d", testenv.FreePort(t))
	labels := func(name string) map[string]string {
		return map[string]string{ecsmeta.LabelCluster: "test", ecsmeta.LabelTaskARN: arn, ecsmeta.LabelContainerName: name,
			ecsmeta.LabelFamily: "web", ecsmeta.LabelRevision: "7"}
	}
	fake.SetTask(arn, fakeecs.TaskConfig{Service: "web-svc", AvailabilityZone: "us-east-1a", ENI: "10.0.2.61",
		Health: map[string]string{"app": "HEALTHY"}})
	pause := testenv.Start(t, d, testenv.Workload{Name: fmt.Sprintf("ecs-web-7-internalecspause-%d", testenv.FreePort(t)), Network: "none",
		Labels: labels(ecsmeta.PauseContainer)})
	app := testenv.Start(t, d, testenv.Workload{Name: fmt.Sprintf("ecs-web-7-app-%d", testenv.FreePort(t)), Network: "container:" + pause,
		TCP: []int{8080}, Labels: labels("app"), Env: []string{ecsmeta.EnvMetadataV4 + "=http://169.254.170.2/v4/uuid-" + arn[len(arn)-8:]}})

	agentTask := testenv.Get(t, fake.AgentURL()+"/v1/tasks?dockerid="+app[:12], 200)
	sameOrder(t, "agent task", keys(t, agentTask), keys(t, fixture(t, "agent-task-awsvpc.json")))
	at, err := ecsmeta.DecodeAgentTask(agentTask)
	if err != nil || len(at.Containers) != 1 || at.Containers[0].DockerId != app || at.Containers[0].Networks[0].IPv4Addresses[0] != "10.0.2.61" {
		t.Fatalf("agent task %s: %v (the pause container must not be listed)", agentTask, err)
	}
	sameOrder(t, "agent container", keys(t, field(t, agentTask, "Containers")), keys(t, field(t, fixture(t, "agent-task-awsvpc.json"), "Containers")))
	testenv.Get(t, fake.AgentURL()+"/v1/tasks?dockerid="+pause, 404)
	testenv.Get(t, fake.AgentURL()+"/v1/tasks?dockerid="+app+"&taskarn="+arn, 400)
	sameOrder(t, "metadata", keys(t, testenv.Get(t, fake.AgentURL()+"/v1/metadata", 200)), keys(t, fixture(t, "agent-metadata.json")))

	task := testenv.Get(t, fake.TMDSURL()+"/v4/uuid-"+arn[len(arn)-8:]+"/task", 200)
	sameOrder(t, "task metadata", keys(t, task), keys(t, fixture(t, "tmds-task-bridge.json")))
	tt, err := ecsmeta.DecodeTMDSTask(task)
	if err != nil || tt.ServiceName != "web-svc" || len(tt.Containers) != 2 {
		t.Fatalf("task metadata %s: %v (the pause container is listed here)", task, err)
	}
	testenv.Get(t, fake.TMDSURL()+"/v4/nope/task", 404)
}

func fixture(t *testing.T, name string) []byte {
	b, err := os.ReadFile(filepath.Join("..", "..", "ecsmeta", "testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// keys lists an object's keys in the order they appear.
func keys(t *testing.T, b []byte) []string {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		t.Fatalf("not an object: %s", b)
	}
	var out []string
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, k.(string))
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// field returns the first element of an array field.
func field(t *testing.T, b []byte, name string) []byte {
	var m map[string]json.RawMessage
	var arr []json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil || json.Unmarshal(m[name], &arr) != nil || len(arr) == 0 {
		t.Fatalf("no %s in %s", name, b)
	}
	return arr[0]
}

// sameOrder checks that every key the fake emits is one the agent emits, in the agent's order.
func sameOrder(t *testing.T, what string, got, ref []string) {
	t.Helper()
	last := -1
	for _, k := range got {
		i := slices.Index(ref, k)
		if i < 0 {
			t.Errorf("%s: key %q is not in the reference %v", what, k, ref)
			continue
		}
		if i < last {
			t.Errorf("%s: key %q out of the reference's order %v (fake: %v)", what, k, ref, got)
		}
		last = i
	}
}
