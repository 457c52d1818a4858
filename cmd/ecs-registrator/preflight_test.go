package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/ecs-registrator/ecs-registrator/internal/testenv"
)

// The pre-flight against real dockerd with gliderlabs's command line: the containers that would be
// registered differently are listed with the difference and the key, the others not at all, and the
// exit status says there are some.
func TestPreflightListsDifferencesFromGliderlabs(t *testing.T) {
	t.Parallel()
	d := testenv.Docker(t)
	prefix := fmt.Sprintf("pf-%d", testenv.FreePort(t))
	same, script, hc := prefix+"-same", prefix+"-script", prefix+"-hc"
	testenv.Start(t, d, testenv.Workload{Name: same, TCP: []int{8080}, Publish: true, Labels: map[string]string{"SERVICE_NAME": same}})
	testenv.Start(t, d, testenv.Workload{Name: script, TCP: []int{8080}, Publish: true,
		Labels: map[string]string{"SERVICE_NAME": script, "SERVICE_CHECK_SCRIPT": "nc -z $SERVICE_IP $SERVICE_PORT"}})
	testenv.Start(t, d, testenv.Workload{Name: hc, TCP: []int{8080}, Publish: true, HealthProbe: "/health",
		Labels: map[string]string{"SERVICE_NAME": hc}})

	cmd := exec.Command(binary, "preflight", "-ip", "10.0.1.23", "consul://127.0.0.1:8500")
	cmd.Env = append(os.Environ(), "DOCKER_HOST="+d.DaemonHost())
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("exit %v, want status 1 (differences found):\n%s", err, out)
	}
	rows := map[string][]string{}
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) >= 3 && strings.HasPrefix(f[0], prefix) {
			rows[f[0]] = append(rows[f[0]], f[1]+" "+f[2])
		}
	}
	want := map[string][]string{script: {"script-check SERVICE_CHECK_SCRIPT"}, hc: {"healthcheck HEALTHCHECK"}}
	if fmt.Sprint(rows) != fmt.Sprint(want) {
		t.Errorf("rows %v, want %v:\n%s", rows, want, out)
	}
	if !strings.Contains(string(out), "would be registered differently from gliderlabs/registrator") {
		t.Errorf("no summary:\n%s", out)
	}
}
