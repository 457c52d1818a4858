package ecsmeta

import (
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func fixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDecodeAgent(t *testing.T) {
	m, err := DecodeAgentMetadata(fixture(t, "agent-metadata.json"))
	if err != nil || m.Cluster != "default" || !strings.Contains(m.ContainerInstanceArn, "container-instance/default/") {
		t.Fatalf("metadata = %+v, %v", m, err)
	}

	at, err := DecodeAgentTask(fixture(t, "agent-task-awsvpc.json"))
	if err != nil {
		t.Fatal(err)
	}
	c := at.Containers[0]
	if at.Family != "api" || at.Version != "3" || at.DesiredStatus != StatusRunning ||
		!reflect.DeepEqual(addrs(c.Networks), []netip.Addr{netip.MustParseAddr("10.0.12.34")}) ||
		!reflect.DeepEqual(ports(c.Ports), []Port{{9000, "tcp", 9000}}) {
		t.Errorf("awsvpc task = %+v", at)
	}

	bt, err := DecodeAgentTask(fixture(t, "agent-task-bridge.json"))
	if err != nil {
		t.Fatal(err)
	}
	if got := ports(bt.Containers[0].Ports); !reflect.DeepEqual(got, []Port{{8080, "tcp", 32768}}) {
		t.Errorf("bridge ports (IPv4 and IPv6 bindings) = %v, want one", got)
	}
	if len(addrs(bt.Containers[0].Networks)) != 0 {
		t.Error("bridge task has ENI addresses")
	}

	ts, err := DecodeAgentTasks(fixture(t, "agent-tasks.json"))
	if err != nil || len(ts) != 2 {
		t.Fatalf("tasks = %d, %v", len(ts), err)
	}
	if ts[0].DesiredStatus != StatusStopped || ts[0].KnownStatus != StatusRunning {
		t.Errorf("stopping task = %s/%s", ts[0].DesiredStatus, ts[0].KnownStatus)
	}
	if ts[1].DesiredStatus != "" || ts[1].KnownStatus != StatusStopped {
		t.Errorf("stopped task without DesiredStatus = %q/%q", ts[1].DesiredStatus, ts[1].KnownStatus)
	}
}

func TestDecodeTMDS(t *testing.T) {
	b, err := DecodeTMDSTask(fixture(t, "tmds-task-bridge.json"))
	if err != nil {
		t.Fatal(err)
	}
	if b.ServiceName != "web-svc" || b.AvailabilityZone != "us-east-1a" || b.Containers[0].Health.Status != "HEALTHY" ||
		len(addrs(b.Containers[0].Networks)) != 0 {
		t.Errorf("bridge = %+v", b)
	}

	a, err := DecodeTMDSTask(fixture(t, "tmds-task-awsvpc.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(a.Containers) != 2 || a.Containers[0].Name != PauseContainer || a.Containers[0].Type != "CNI_PAUSE" {
		t.Fatalf("awsvpc containers = %+v", a.Containers)
	}
	app := a.Containers[1]
	if app.Health.Status != "UNHEALTHY" || app.Health.Output == "" || app.Health.ExitCode == nil || *app.Health.ExitCode != 1 {
		t.Errorf("unhealthy = %+v", app.Health)
	}
	if got := addrs(app.Networks); !reflect.DeepEqual(got, []netip.Addr{netip.MustParseAddr("10.0.2.61")}) {
		t.Errorf("awsvpc addrs = %v", got)
	}

	h, err := DecodeTMDSTask(fixture(t, "tmds-task-host.json"))
	if err != nil {
		t.Fatal(err)
	}
	if got := addrs(h.Containers[0].Networks); len(got) != 0 {
		t.Errorf("host mode addrs = %v, want none (IPv4Addresses is [\"\"])", got)
	}

	m, err := DecodeTMDSTask(fixture(t, "tmds-task-minimal.json"))
	if err != nil {
		t.Fatal(err)
	}
	if m.ServiceName != "" || m.AvailabilityZone != "" || m.Containers[0].Health == nil || m.Containers[0].Health.Status != "" {
		t.Errorf("minimal = %+v", m)
	}
}

func TestDecodeErrors(t *testing.T) {
	for _, tc := range []struct {
		file   string
		decode func([]byte) error
	}{
		{"agent-error.json", func(b []byte) error { _, err := DecodeAgentTask(b); return err }},
		{"agent-unknown-path.json", func(b []byte) error { _, err := DecodeAgentTask(b); return err }},
		{"agent-unknown-path.json", func(b []byte) error { _, err := DecodeAgentTasks(b); return err }},
		{"agent-unknown-path.json", func(b []byte) error { _, err := DecodeAgentMetadata(b); return err }},
		{"agent-error.json", func(b []byte) error { _, err := DecodeAgentMetadata(b); return err }},
		{"tmds-404.json", func(b []byte) error { _, err := DecodeTMDSTask(b); return err }},
		{"tmds-429.txt", func(b []byte) error { _, err := DecodeTMDSTask(b); return err }},
		{"garbage.html", func(b []byte) error { _, err := DecodeAgentTasks(b); return err }},
		{"garbage.html", func(b []byte) error { _, err := DecodeTMDSTask(b); return err }},
		{"agent-tasks.json", func(b []byte) error { _, err := DecodeTMDSTask(b); return err }},
	} {
		if err := tc.decode(fixture(t, tc.file)); err == nil {
			t.Errorf("%s: decoded without error", tc.file)
		}
	}
}

func TestFromLabels(t *testing.T) {
	l := map[string]string{
		LabelCluster: "prod", LabelTaskARN: "arn:aws:ecs:us-west-2:111122223333:task/prod/8f03e41243824aea923aca126495f665",
		LabelContainerName: "app", LabelFamily: "web", LabelRevision: "7",
	}
	task, ok := FromLabels(l)
	if !ok || task.Cluster != "prod" || task.Family != "web" || task.Revision != "7" || task.Container != "app" ||
		task.Region() != "us-west-2" || task.TaskID() != "8f03e41243824aea923aca126495f665" || task.Pause() {
		t.Errorf("FromLabels = %+v, %v", task, ok)
	}
	if _, ok := FromLabels(map[string]string{LabelCluster: "prod"}); ok {
		t.Error("a container without a task ARN is an ECS task container")
	}
	l[LabelContainerName] = PauseContainer
	if task, _ := FromLabels(l); !task.Pause() {
		t.Error("pause container not recognised")
	}
	if r := (Task{ARN: "not-an-arn"}).Region(); r != "" {
		t.Errorf("Region of a bad ARN = %q", r)
	}
}

func TestMetadataPath(t *testing.T) {
	for env, want := range map[string]string{
		"ECS_CONTAINER_METADATA_URI_V4=http://169.254.170.2/v4/0f1e2d3c-aaaa": "/v4/0f1e2d3c-aaaa",
		"ECS_CONTAINER_METADATA_URI_V4=http://169.254.170.2/v4/":              "",
		"ECS_CONTAINER_METADATA_URI_V4=http://169.254.170.2/v3/abc":           "",
		"ECS_CONTAINER_METADATA_URI_V4=http://169.254.170.2/v4/a/../../x":     "",
		"ECS_CONTAINER_METADATA_URI_V4=http://169.254.170.2/v4/a?x=1":         "",
		"ECS_CONTAINER_METADATA_URI_V4=file:///etc/passwd":                    "",
		"ECS_CONTAINER_METADATA_URI=http://169.254.170.2/v3/abc":              "",
	} {
		if got := metadataPath([]string{"PATH=/bin", env}); got != want {
			t.Errorf("%s: path %q, want %q", env, got, want)
		}
	}
}
