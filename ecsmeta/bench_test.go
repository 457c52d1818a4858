package ecsmeta

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"testing"
)

// BenchmarkAgentPoll is one steady-state read of the ECS agent's /v1/tasks, the 1 s poll that sees a
// task marked STOPPED: HTTP over loopback, decoding, and comparing with what is known. Nothing changed,
// so nothing is notified. At one poll a second, ns/op is the idle CPU the drain signal costs per second.
func BenchmarkAgentPoll(b *testing.B) {
	for _, n := range []int{10, 100, 500} {
		b.Run(fmt.Sprintf("tasks=%d", n), func(b *testing.B) {
			fixture, err := os.ReadFile("testdata/agent-task-bridge.json")
			if err != nil {
				b.Fatal(err)
			}
			var tmpl AgentTask
			if err := json.Unmarshal(fixture, &tmpl); err != nil {
				b.Fatal(err)
			}
			s := New(Config{AgentURL: "set below"})
			var body AgentTasks
			for i := range n {
				t := tmpl
				t.Arn = fmt.Sprintf("arn:aws:ecs:us-east-1:111122223333:task/prod/%032x", i)
				t.Containers = []AgentContainer{tmpl.Containers[0]}
				t.Containers[0].DockerId = fmt.Sprintf("%064x", i)
				body.Tasks = append(body.Tasks, t)
				s.Lookup(ref(t.Containers[0].DockerId, map[string]string{LabelCluster: "prod", LabelTaskARN: t.Arn,
					LabelContainerName: "app", LabelFamily: t.Family, LabelRevision: t.Version}, nil, true))
			}
			raw, err := json.Marshal(body)
			if err != nil {
				b.Fatal(err)
			}
			e := newEndpoint(b, serveBody(raw, http.StatusOK))
			s.client = newAgentClient(e.URL, "", s.cfg.Timeout)
			s.agent.Cluster = "prod"
			notified := 0
			s.notify = func(string) { notified++ }

			ctx := context.Background()
			s.pollOnce(ctx) // learns every task
			if notified != n {
				b.Fatalf("first poll notified %d containers, want %d", notified, n)
			}
			b.SetBytes(int64(len(raw)))
			b.ReportAllocs()
			for b.Loop() {
				s.pollOnce(ctx)
			}
			if notified != n {
				b.Fatalf("steady-state polls notified %d more containers", notified-n)
			}
		})
	}
}
