package registrator_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ecs-registrator/ecs-registrator/internal/testenv"
	consulagent "github.com/ecs-registrator/ecs-registrator/registrator/consul"
	"github.com/ecs-registrator/ecs-registrator/registrator/desired"
)

// writeToken replaces the token file whole (write, then rename), as a secrets agent does.
func writeToken(t *testing.T, path, token string) {
	t.Helper()
	tmp := path + ".new"
	if err := os.WriteFile(tmp, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// Against an agent with ACLs on and default deny: a token without agent:read is named as such (never
// "unreachable"); once the token file holds a good token the daemon becomes ready without a restart;
// the minimal policy registers; a token limited to some service names refuses the others, and that
// container alone shows which permission is missing. No token appears in the log or the snapshot.
func TestACLTokenFileMinimalPolicyAndRefusals(t *testing.T) {
	d := testenv.Docker(t)
	consul := testenv.StartConsulACL(t)
	noAgentRead := consul.NewToken(t, "no-agent-read", `service_prefix "" { policy = "write" }`)
	limited := consul.NewToken(t, "limited", `agent_prefix "" { policy = "read" }
service_prefix "allowed-" { policy = "write" }`)
	minimal := consul.NewToken(t, "registrator", consulagent.ACLPolicy)
	file := filepath.Join(t.TempDir(), "token")
	writeToken(t, file, noAgentRead)
	t.Setenv("CONSUL_HTTP_TOKEN_FILE", file)
	t.Setenv("CONSUL_HTTP_TOKEN", "")

	e := run(t, d, consul)
	testenv.EventuallyExplain(t, 10*time.Second, func() bool {
		return strings.Contains(e.reg.Snapshot().Consul.LastError, "lacks permission 'agent:read'")
	}, func() string {
		return "consul's last error does not name agent:read: " + e.reg.Snapshot().Consul.LastError
	})
	if e.reg.Ready() {
		t.Fatal("ready without agent:read")
	}
	if strings.Contains(e.logs.String(), "unreachable") {
		t.Error("a refused request was logged as unreachable")
	}

	writeToken(t, file, limited)
	e.waitReady(t)
	allowed := testenv.Start(t, d, testenv.Workload{Name: unique(t, "allowed"), TCP: []int{8080}, Publish: true,
		Labels: map[string]string{"SERVICE_NAME": unique(t, "allowed-svc")}})
	other := testenv.Start(t, d, testenv.Workload{Name: unique(t, "other"), TCP: []int{8080}, Publish: true,
		Labels: map[string]string{"SERVICE_NAME": unique(t, "other-svc")}})
	e.waitServices(t, allowed, 1, 10*time.Second)
	testenv.EventuallyExplain(t, 10*time.Second, func() bool {
		probs, _ := e.problems(other)
		return len(probs) == 1 && strings.Contains(probs[0].Message, "lacks permission 'service:write'")
	}, func() string { p, _ := e.problems(other); return "refused container's problems: " + problemsText(p) })
	if probs, _ := e.problems(allowed); len(probs) != 0 {
		t.Errorf("the allowed container shows %v", probs)
	}

	// The minimal policy writes everything; the refusal clears by itself.
	writeToken(t, file, minimal)
	e.waitServices(t, other, 1, 10*time.Second)
	testenv.EventuallyExplain(t, 5*time.Second, func() bool { p, _ := e.problems(other); return len(p) == 0 },
		func() string { p, _ := e.problems(other); return "problems left: " + problemsText(p) })

	for _, secret := range []string{noAgentRead, limited, minimal, consul.Token} {
		if strings.Contains(e.logs.String(), secret) {
			t.Error("a token's secret is in the log")
		}
		if strings.Contains(problemsText(allProblems(e)), secret) {
			t.Error("a token's secret is in the snapshot")
		}
	}
}

func problemsText(ps []desired.Problem) string {
	var b strings.Builder
	for _, p := range ps {
		b.WriteString(p.Message + "; ")
	}
	return b.String()
}

func allProblems(e *env) []desired.Problem {
	snap := e.reg.Snapshot()
	out := []desired.Problem{{Message: snap.Consul.LastError}, {Message: snap.Docker.LastError}}
	for _, c := range snap.Containers {
		out = append(out, c.Problems...)
	}
	return out
}
