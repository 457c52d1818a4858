package ecsmeta

import (
	"maps"
	"net/netip"
	"slices"
	"testing"
)

func TestAgentAtLeast(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		version string
		want    bool
	}{
		{"Amazon ECS Agent - v1.63.1 (abcdef0)", true},
		{"Amazon ECS Agent - v1.89.1 (abcdef0)", true},
		{"Amazon ECS Agent - v2.0.0 (abcdef0)", true},
		{"Amazon ECS Agent - v1.63.0 (abcdef0)", false},
		{"Amazon ECS Agent - v1.62.9", false},
		{"Amazon ECS Agent - v1.30.0 (02ff320c)", false},
		{"Amazon ECS Agent - v1.64", true},
		{"Amazon ECS Agent - v1.63.1-dev (abcdef0)", true},
		{"Amazon ECS Agent", false},
		{"", false},
		{"v1.90.0", false},
	} {
		if got := agentAtLeast(tc.version, 1, 63, 1); got != tc.want {
			t.Errorf("%q: %v, want %v", tc.version, got, tc.want)
		}
	}
}

// merge: the agent wins for status, ports and addresses; task metadata fills what it lacks and gives
// service, zone and health; the ECS API gives the service and tags task metadata could not.
func TestMerge(t *testing.T) {
	t.Parallel()
	const id = "c1"
	labels := Task{Cluster: "prod", ARN: "arn:aws:ecs:us-east-1:111122223333:task/prod/1", Family: "web", Revision: "3", Container: "app"}
	host := Host{AvailabilityZone: "us-east-1a"}
	eni := []WireNetwork{{NetworkMode: "awsvpc", IPv4Addresses: []string{"10.0.1.5"}, IPv6Addresses: []string{"2600:1f18::5"}}}
	bridge := []WireNetwork{{NetworkMode: "bridge", IPv4Addresses: []string{"172.17.0.2"}}}
	agent := &AgentTask{DesiredStatus: StatusStopped, KnownStatus: StatusRunning, Containers: []AgentContainer{
		{DockerId: "other", Ports: []WirePort{{ContainerPort: 1, Protocol: "tcp"}}},
		{DockerId: id, Ports: []WirePort{{ContainerPort: 8080, Protocol: "tcp", HostPort: 32768}, {ContainerPort: 8080, Protocol: "tcp", HostPort: 32768}}, Networks: eni},
	}}
	tmds := &TMDSTask{ServiceName: "web-svc", AvailabilityZone: "us-east-1b", DesiredStatus: StatusRunning, KnownStatus: StatusRunning,
		Containers: []TMDSContainer{{DockerId: id, Health: &WireHealth{Status: "HEALTHY"}, Networks: bridge,
			Ports: []WirePort{{ContainerPort: 9000, Protocol: "TCP"}}}}}
	cases := []struct {
		name    string
		ts      *taskState
		tagMeta []string
		want    Task
	}{
		{name: "labels and the host only", ts: nil,
			want: Task{AvailabilityZone: "us-east-1a"}},
		{name: "the agent's status, ports once each and ENI addresses, IPv4 first", ts: &taskState{agent: agent},
			want: Task{AvailabilityZone: "us-east-1a", DesiredStatus: StatusStopped, KnownStatus: StatusRunning,
				Ports: []Port{{ContainerPort: 8080, Protocol: "tcp", HostPort: 32768}},
				Addrs: []netip.Addr{netip.MustParseAddr("10.0.1.5"), netip.MustParseAddr("2600:1f18::5")}}},
		{name: "task metadata alone: its status, ports, zone, service and health; no bridge address", ts: &taskState{tmds: tmds},
			want: Task{AvailabilityZone: "us-east-1b", Service: "web-svc", DesiredStatus: StatusRunning, KnownStatus: StatusRunning,
				Ports: []Port{{ContainerPort: 9000, Protocol: "tcp"}}, Health: Health{Defined: true, Status: "HEALTHY"}}},
		{name: "the agent wins over task metadata", ts: &taskState{agent: agent, tmds: tmds},
			want: Task{AvailabilityZone: "us-east-1b", Service: "web-svc", DesiredStatus: StatusStopped, KnownStatus: StatusRunning,
				Ports:  []Port{{ContainerPort: 8080, Protocol: "tcp", HostPort: 32768}},
				Addrs:  []netip.Addr{netip.MustParseAddr("10.0.1.5"), netip.MustParseAddr("2600:1f18::5")},
				Health: Health{Defined: true, Status: "HEALTHY"}}},
		{name: "the ECS API's service only where task metadata has none, its tags only as asked",
			ts:      &taskState{api: &apiTask{service: "api-svc", tags: map[string]string{"team": "a", "secret": "x"}}},
			tagMeta: []string{"team", "env"},
			want:    Task{AvailabilityZone: "us-east-1a", Service: "api-svc", Tags: map[string]string{"team": "a"}, TagsRead: []string{"team", "env"}}},
		{name: "task metadata's tags win over the API's, and its service", ts: &taskState{tmds: tmds, tags: map[string]string{"team": "b"},
			api: &apiTask{service: "api-svc", tags: map[string]string{"team": "a"}}}, tagMeta: []string{"team"},
			want: Task{AvailabilityZone: "us-east-1b", Service: "web-svc", DesiredStatus: StatusRunning, KnownStatus: StatusRunning,
				Ports: []Port{{ContainerPort: 9000, Protocol: "tcp"}}, Health: Health{Defined: true, Status: "HEALTHY"},
				Tags: map[string]string{"team": "b"}, TagsRead: []string{"team"}}},
		{name: "tags read but none of those asked: read, none kept", ts: &taskState{tags: map[string]string{}}, tagMeta: []string{"team"},
			want: Task{AvailabilityZone: "us-east-1a", TagsRead: []string{"team"}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := merge(labels, host, tc.ts, id, tc.tagMeta)
			want := tc.want
			want.Cluster, want.ARN, want.Family, want.Revision, want.Container = labels.Cluster, labels.ARN, labels.Family, labels.Revision, labels.Container
			if got.AvailabilityZone != want.AvailabilityZone || got.Service != want.Service || got.DesiredStatus != want.DesiredStatus ||
				got.KnownStatus != want.KnownStatus || !slices.Equal(got.Ports, want.Ports) || !slices.Equal(got.Addrs, want.Addrs) ||
				got.Health != want.Health || !maps.Equal(got.Tags, want.Tags) || !slices.Equal(got.TagsRead, want.TagsRead) ||
				got.Cluster != want.Cluster || got.Container != want.Container {
				t.Errorf("merge =\n %+v\nwant\n %+v", got, want)
			}
		})
	}
}
