package desired

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/ecs-registrator/ecs-registrator/ecsmeta"
)

var testOpts = Options{Node: "node1", AdvertiseIP: netip.MustParseAddr("10.0.0.5"), OptIn: true}

// web is a running bridge container publishing 8080/tcp on host port 32768.
func web(mod ...func(*Container)) Container {
	c := Container{
		ID:          "c0ffee",
		Name:        "web-1",
		Image:       "registry.example:5000/team/web:1.2@sha256:abc",
		Running:     true,
		NetworkMode: "bridge",
		IPs:         []netip.Addr{netip.MustParseAddr("172.17.0.2")},
		Ports:       []Port{{Port: 8080, Proto: "tcp", HostIP: "0.0.0.0", HostPort: 32768}},
		Labels:      map[string]string{"SERVICE_NAME": "web"},
	}
	for _, m := range mod {
		m(&c)
	}
	return c
}

func withLabels(kv ...string) func(*Container) {
	return func(c *Container) {
		for i := 0; i+1 < len(kv); i += 2 {
			c.Labels[kv[i]] = kv[i+1]
		}
	}
}

// ecsTask makes the container a task container as the ECS agent labels it, with what else is known.
func ecsTask(mod ...func(*ecsmeta.Task)) func(*Container) {
	return func(c *Container) {
		t := ecsmeta.Task{Cluster: "prod", ARN: "arn:aws:ecs:us-east-1:111122223333:task/prod/1a2b3c4d", Family: "web",
			Revision: "7", Container: "app"}
		for _, m := range mod {
			m(&t)
		}
		c.Task = &t
	}
}

// awsvpc makes the container an awsvpc app container: on the pause container's network, no ports in Docker.
func awsvpc(c *Container) {
	c.NetworkMode = "container:9a9a9a"
	c.Ports, c.IPs = nil, nil
}

func withPorts(ports ...Port) func(*Container) { return func(c *Container) { c.Ports = ports } }

// svc is the compact form the cases compare: "id name address:port [tags]".
func svc(s Service) string {
	return fmt.Sprintf("%s %s %s:%d %v", s.ID, s.Name, s.Address, s.Port, s.Tags)
}

func TestDesired(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("x", 300)
	cases := []struct {
		name     string
		c        Container
		opts     *Options
		want     []string // svc() of each service, in order
		skipped  string   // substring of Result.Skipped when want is empty
		problems []string // substrings, one per expected problem, "error:" or "warning:" prefixed
		meta     map[string]string
	}{
		{name: "basic bridge", c: web(), want: []string{"node1:web-1:8080 web 10.0.0.5:32768 []"}},
		{name: "tags trimmed and deduplicated", c: web(withLabels("SERVICE_TAGS", " a, b,,a ,c")),
			want: []string{"node1:web-1:8080 web 10.0.0.5:32768 [a b c]"}},
		{name: "explicit id", c: web(withLabels("SERVICE_ID", "web-primary")),
			want: []string{"web-primary web 10.0.0.5:32768 []"}},
		{name: "not opted in", c: web(func(c *Container) { c.Labels = map[string]string{} }), skipped: "not opted in"},
		{name: "opt-in off registers unlabelled", c: web(func(c *Container) { c.Labels = nil }),
			opts: &Options{Node: "node1", AdvertiseIP: testOpts.AdvertiseIP}, want: []string{"node1:web-1:8080 web 10.0.0.5:32768 []"}},
		{name: "register=true uses image name", c: web(func(c *Container) { c.Labels = map[string]string{"SERVICE_REGISTER": "true"} }),
			want: []string{"node1:web-1:8080 web 10.0.0.5:32768 []"}},
		{name: "register=false beats opt-in off", c: web(withLabels("SERVICE_REGISTER", "false")),
			opts: &Options{Node: "node1", AdvertiseIP: testOpts.AdvertiseIP}, skipped: "SERVICE_REGISTER=false"},
		{name: "register not a bool", c: web(withLabels("SERVICE_REGISTER", "yes please")),
			skipped: "bad value", problems: []string{"error:SERVICE_REGISTER"}},
		{name: "ignore wins over name", c: web(withLabels("SERVICE_IGNORE", "true")), skipped: "SERVICE_IGNORE is set"},
		{name: "ignore=false registers", c: web(withLabels("SERVICE_IGNORE", "0")), want: []string{"node1:web-1:8080 web 10.0.0.5:32768 []"}},
		{name: "ignore not a bool keeps it out", c: web(withLabels("SERVICE_IGNORE", "maybe")),
			skipped: "bad value", problems: []string{"error:SERVICE_IGNORE"}},
		{name: "not running", c: web(func(c *Container) { c.Running = false }), skipped: "not running"},
		{name: "env opts in", c: web(func(c *Container) {
			c.Labels = nil
			c.Env = []string{"PATH=/bin", "SERVICE_NAME=api", "SERVICE_TAGS=v1"}
		}), want: []string{"node1:web-1:8080 api 10.0.0.5:32768 [v1]"}},
		{name: "label beats env", c: web(func(c *Container) { c.Env = []string{"SERVICE_NAME=from-env"} }),
			want: []string{"node1:web-1:8080 web 10.0.0.5:32768 []"}},
		{name: "env without value separator ignored", c: web(func(c *Container) { c.Env = []string{"SERVICE_TAGS"} }),
			want: []string{"node1:web-1:8080 web 10.0.0.5:32768 []"}},
		{name: "two ports default names get port suffix", c: web(
			func(c *Container) { c.Labels = map[string]string{"SERVICE_REGISTER": "true"} },
			withPorts(Port{Port: 8080, Proto: "tcp", HostPort: 32768}, Port{Port: 9090, Proto: "tcp", HostPort: 32769})),
			want: []string{"node1:web-1:8080 web-8080 10.0.0.5:32768 []", "node1:web-1:9090 web-9090 10.0.0.5:32769 []"}},
		{name: "two ports under SERVICE_NAME get -<port>", c: web(withPorts(Port{Port: 8080, Proto: "tcp", HostPort: 1}, Port{Port: 9090, Proto: "tcp", HostPort: 2})),
			want: []string{"node1:web-1:8080 web-8080 10.0.0.5:1 []", "node1:web-1:9090 web-9090 10.0.0.5:2 []"}},
		{name: "per-port name overrides", c: web(withLabels("SERVICE_9090_NAME", "web-metrics", "SERVICE_9090_TAGS", "prom"),
			withPorts(Port{Port: 8080, Proto: "tcp", HostPort: 1}, Port{Port: 9090, Proto: "tcp", HostPort: 2})),
			want: []string{"node1:web-1:8080 web-8080 10.0.0.5:1 []", "node1:web-1:9090 web-metrics 10.0.0.5:2 [prom]"}},
		{name: "per-port name alone registers only that port", c: web(
			func(c *Container) { c.Labels = map[string]string{"SERVICE_9090_NAME": "metrics"} },
			withPorts(Port{Port: 8080, Proto: "tcp", HostPort: 1}, Port{Port: 9090, Proto: "tcp", HostPort: 2})),
			want: []string{"node1:web-1:9090 metrics 10.0.0.5:2 []"}},
		{name: "per-port ignore", c: web(withLabels("SERVICE_9090_IGNORE", "true"),
			withPorts(Port{Port: 8080, Proto: "tcp", HostPort: 1}, Port{Port: 9090, Proto: "tcp", HostPort: 2})),
			want: []string{"node1:web-1:8080 web 10.0.0.5:1 []"}},
		{name: "per-port ignore not a bool keeps that port out only", c: web(withLabels("SERVICE_9090_IGNORE", "nah"),
			withPorts(Port{Port: 8080, Proto: "tcp", HostPort: 1}, Port{Port: 9090, Proto: "tcp", HostPort: 2})),
			want: []string{"node1:web-1:8080 web 10.0.0.5:1 []"}, problems: []string{"error:SERVICE_9090_IGNORE"}},
		{name: "gliderlabs mode: an ignored port still counts for -<port>", c: web(withLabels("SERVICE_9090_IGNORE", "true"),
			withPorts(Port{Port: 8080, Proto: "tcp", HostPort: 1}, Port{Port: 9090, Proto: "tcp", HostPort: 2})),
			opts: &Options{Node: "node1", AdvertiseIP: netip.MustParseAddr("10.0.0.5"), Gliderlabs: true},
			want: []string{"node1:web-1:8080 web-8080 10.0.0.5:1 []"}},
		{name: "gliderlabs mode: a loopback-only port is not registered but counts", c: web(
			withPorts(Port{Port: 8080, Proto: "tcp", HostPort: 1}, Port{Port: 9090, Proto: "tcp", HostIP: "127.0.0.1", HostPort: 2})),
			opts: &Options{Node: "node1", AdvertiseIP: netip.MustParseAddr("10.0.0.5"), Gliderlabs: true},
			want: []string{"node1:web-1:8080 web-8080 10.0.0.5:1 []"}, problems: []string{"warning:127.0.0.1 only"}},
		{name: "gliderlabs mode: an empty SERVICE_NAME or SERVICE_ID is no value", c: web(withLabels("SERVICE_NAME", "", "SERVICE_ID", "")),
			opts: &Options{Node: "node1", AdvertiseIP: netip.MustParseAddr("10.0.0.5"), Gliderlabs: true},
			want: []string{"node1:web-1:8080 web 10.0.0.5:32768 []"}},
		{name: "udp kept apart", c: web(withPorts(Port{Port: 53, Proto: "tcp", HostPort: 5353}, Port{Port: 53, Proto: "udp", HostPort: 5353})),
			want: []string{"node1:web-1:53 web-53 10.0.0.5:5353 []", "node1:web-1:53:udp web-53 10.0.0.5:5353 [udp]"}},
		{name: "unpublished bridge port", c: web(withPorts(Port{Port: 8080, Proto: "tcp"})), skipped: "no published ports"},
		{name: "unpublished port skipped beside a published one", c: web(withPorts(Port{Port: 80, Proto: "tcp"}, Port{Port: 8080, Proto: "tcp", HostPort: 9})),
			want: []string{"node1:web-1:8080 web 10.0.0.5:9 []"}},
		{name: "binding on specific host ip", c: web(withPorts(Port{Port: 8080, Proto: "tcp", HostIP: "10.0.0.9", HostPort: 80})),
			want: []string{"node1:web-1:8080 web 10.0.0.9:80 []"}},
		{name: "loopback-only binding not registered", c: web(withPorts(Port{Port: 8080, Proto: "tcp", HostIP: "127.0.0.1", HostPort: 80})),
			skipped: "no published ports", problems: []string{"warning:published on 127.0.0.1 only"}},
		{name: "loopback binding with loopback advertise ip", c: web(withPorts(Port{Port: 8080, Proto: "tcp", HostIP: "127.0.0.1", HostPort: 80})),
			opts: &Options{Node: "n", AdvertiseIP: netip.MustParseAddr("127.0.0.1"), OptIn: true}, want: []string{"n:web-1:8080 web 127.0.0.1:80 []"}},
		{name: "ipv6 advertise ip", c: web(), opts: &Options{Node: "n", AdvertiseIP: netip.MustParseAddr("2001:db8::5"), OptIn: true},
			want: []string{"n:web-1:8080 web 2001:db8::5:32768 []"}},
		{name: "no advertise ip", c: web(), opts: &Options{Node: "n", OptIn: true}, skipped: "no advertise IP"},
		{name: "host network uses exposed ports", c: web(func(c *Container) { c.NetworkMode = "host" }, withPorts(Port{Port: 7000, Proto: "tcp"})),
			want: []string{"node1:web-1:7000 web 10.0.0.5:7000 []"}},
		{name: "host network without exposed ports", c: web(func(c *Container) { c.NetworkMode = "host"; c.Ports = nil }), skipped: "no exposed ports"},
		{name: "internal uses container ip and port", c: web(withPorts(Port{Port: 8080, Proto: "tcp"})),
			opts: &Options{Node: "n", AdvertiseIP: testOpts.AdvertiseIP, Internal: true, OptIn: true}, want: []string{"n:web-1:8080 web 172.17.0.2:8080 []"}},
		{name: "internal without container ip", c: web(func(c *Container) { c.IPs = nil }),
			opts: &Options{Node: "n", Internal: true, OptIn: true}, skipped: "no IP address"},
		{name: "network none", c: web(func(c *Container) { c.NetworkMode = "none" }), skipped: "network mode none"},
		{name: "another container's network: its address, the container ports", c: web(func(c *Container) {
			c.NetworkMode, c.IPs = "container:abc", []netip.Addr{netip.MustParseAddr("172.17.0.9")}
			c.Ports = []Port{{Port: 8080, Proto: "tcp"}}
		}), want: []string{"node1:web-1:8080 web 172.17.0.9:8080 []"}},
		{name: "another container's network without an address", c: web(func(c *Container) { c.NetworkMode, c.IPs = "container:abc", nil }),
			skipped: "has no IP address"},
		{name: "non-numeric port key is meta with its name lowered", c: web(withLabels("SERVICE_HTTP_NAME", "x")),
			want: []string{"node1:web-1:8080 web 10.0.0.5:32768 []"}, meta: map[string]string{"http_name": "x"}},
		{name: "port key out of range", c: web(withLabels("SERVICE_70000_NAME", "x")),
			want: []string{"node1:web-1:8080 web 10.0.0.5:32768 []"}, problems: []string{"error:SERVICE_70000_NAME"}},
		{name: "port key zero", c: web(withLabels("SERVICE_0_NAME", "x")),
			want: []string{"node1:web-1:8080 web 10.0.0.5:32768 []"}, problems: []string{"error:SERVICE_0_NAME"}},
		{name: "port key for a port the container lacks", c: web(withLabels("SERVICE_9999_NAME", "x")),
			want: []string{"node1:web-1:8080 web 10.0.0.5:32768 []"}, problems: []string{"warning:SERVICE_9999_*"}},
		{name: "empty name", c: web(withLabels("SERVICE_NAME", "")), problems: []string{"error:SERVICE_NAME"}, skipped: "no port left"},
		{name: "name with slash", c: web(withLabels("SERVICE_NAME", "team/web")), problems: []string{"error:SERVICE_NAME"}, skipped: "no port left"},
		{name: "name with space", c: web(withLabels("SERVICE_NAME", "my web")), problems: []string{"error:SERVICE_NAME"}, skipped: "no port left"},
		{name: "huge name", c: web(withLabels("SERVICE_NAME", long)), problems: []string{"error:SERVICE_NAME"}, skipped: "no port left"},
		{name: "name not a dns label warns", c: web(withLabels("SERVICE_NAME", "my_web")),
			want: []string{"node1:web-1:8080 my_web 10.0.0.5:32768 []"}, problems: []string{"warning:SERVICE_NAME"}},
		{name: "image name with underscore default", c: web(func(c *Container) {
			c.Labels = map[string]string{"SERVICE_REGISTER": "true"}
			c.Image = "my_app:latest"
		}), want: []string{"node1:web-1:8080 my_app 10.0.0.5:32768 []"}, problems: []string{"warning:image"}},
		{name: "id with slash", c: web(withLabels("SERVICE_ID", "a/b")), problems: []string{"error:SERVICE_ID"}, skipped: "no port left"},
		{name: "huge id", c: web(withLabels("SERVICE_ID", long)), problems: []string{"error:SERVICE_ID"}, skipped: "no port left"},
		{name: "container-level id on two ports is a duplicate", c: web(withLabels("SERVICE_ID", "same"),
			withPorts(Port{Port: 8080, Proto: "tcp", HostPort: 1}, Port{Port: 9090, Proto: "tcp", HostPort: 2})),
			want: []string{"same web-8080 10.0.0.5:1 []"}, problems: []string{"error:SERVICE_ID"}},
		{name: "per-port ids fix the duplicate", c: web(withLabels("SERVICE_8080_ID", "a", "SERVICE_9090_ID", "b"),
			withPorts(Port{Port: 8080, Proto: "tcp", HostPort: 1}, Port{Port: 9090, Proto: "tcp", HostPort: 2})),
			want: []string{"a web-8080 10.0.0.5:1 []", "b web-9090 10.0.0.5:2 []"}},
		{name: "keys are case-insensitive after SERVICE_", c: web(func(c *Container) { c.Labels = map[string]string{"SERVICE_name": "api", "SERVICE_8080_Tags": `a\,b,c`} }),
			want: []string{"node1:web-1:8080 api 10.0.0.5:32768 [a,b c]"}},
		{name: "two spellings of one key are reported", c: web(withLabels("SERVICE_name", "api", "SERVICE_NAME", "web")),
			want: []string{"node1:web-1:8080 api 10.0.0.5:32768 []"}, problems: []string{"warning:SERVICE_name"}},
		{name: "a label wins over an env var of another spelling", c: web(func(c *Container) {
			c.Env, c.Labels = []string{"SERVICE_NAME=env"}, map[string]string{"SERVICE_Name": "label"}
		}),
			want: []string{"node1:web-1:8080 label 10.0.0.5:32768 []"}},
		{name: "escaped commas in tags", c: web(withLabels("SERVICE_TAGS", `foo\,bar, baz,,foo\,bar`)),
			want: []string{"node1:web-1:8080 web 10.0.0.5:32768 [foo,bar baz]"}},
		{name: "meta from unknown keys lower-cased", c: web(withLabels("SERVICE_VERSION", "1.2", "SERVICE_TEAM-NAME", "core")),
			want: []string{"node1:web-1:8080 web 10.0.0.5:32768 []"},
			meta: map[string]string{"version": "1.2", "team-name": "core", "external-source": "ecs-registrator", "container-id": "c0ffee", "container-name": "web-1"}},
		{name: "per-port meta overrides container meta", c: web(withLabels("SERVICE_VERSION", "1", "SERVICE_8080_VERSION", "2")),
			want: []string{"node1:web-1:8080 web 10.0.0.5:32768 []"}, meta: map[string]string{"version": "2"}},
		{name: "check keys never become meta", c: web(withLabels("SERVICE_CHECK_HTTP", "/health", "SERVICE_8080_CHECK_INTERVAL", "5s")),
			want: []string{"node1:web-1:8080 web 10.0.0.5:32768 []"}, meta: map[string]string{"check_http": "", "check_interval": ""}},
		{name: "a bare SERVICE_CHECK is an unknown check key", c: web(withLabels("SERVICE_CHECK", "x")),
			problems: []string{"error:SERVICE_CHECK"}, skipped: "no port left"},
		{name: "meta key with a dot dropped", c: web(withLabels("SERVICE_a.b", "x")),
			want: []string{"node1:web-1:8080 web 10.0.0.5:32768 []"}, problems: []string{"warning:SERVICE_a.b"}, meta: map[string]string{"a.b": ""}},
		{name: "meta consul- prefix dropped", c: web(withLabels("SERVICE_CONSUL-VERSION", "x")),
			want: []string{"node1:web-1:8080 web 10.0.0.5:32768 []"}, problems: []string{"warning:SERVICE_CONSUL-VERSION"}},
		{name: "meta huge value dropped", c: web(withLabels("SERVICE_BLOB", long+long)),
			want: []string{"node1:web-1:8080 web 10.0.0.5:32768 []"}, problems: []string{"warning:SERVICE_BLOB"}, meta: map[string]string{"blob": ""}},
		{name: "meta huge key dropped", c: web(withLabels("SERVICE_"+long, "v")),
			want: []string{"node1:web-1:8080 web 10.0.0.5:32768 []"}, problems: []string{"warning:SERVICE_xxx"}},
		{name: "meta cannot override own keys", c: web(withLabels("SERVICE_CONTAINER-ID", "spoof", "SERVICE_EXTERNAL-SOURCE", "other")),
			want: []string{"node1:web-1:8080 web 10.0.0.5:32768 []"}, problems: []string{"warning:SERVICE_CONTAINER-ID", "warning:SERVICE_EXTERNAL-SOURCE"},
			meta: map[string]string{"container-id": "c0ffee", "external-source": "ecs-registrator"}},
		// One of Consul's 64 pairs is kept for the checks' fingerprint.
		{name: "more than 64 meta pairs", c: web(func(c *Container) {
			for i := range 70 {
				c.Labels[fmt.Sprintf("SERVICE_K%02d", i)] = "v"
			}
		}), want: []string{"node1:web-1:8080 web 10.0.0.5:32768 []"},
			problems: []string{"warning:SERVICE_K60", "warning:SERVICE_K61", "warning:SERVICE_K62", "warning:SERVICE_K63", "warning:SERVICE_K64", "warning:SERVICE_K65", "warning:SERVICE_K66", "warning:SERVICE_K67", "warning:SERVICE_K68", "warning:SERVICE_K69"}},
		{name: "unrelated labels ignored", c: web(withLabels("com.example.x", "1", "service_name", "lower")),
			want: []string{"node1:web-1:8080 web 10.0.0.5:32768 []"}, meta: map[string]string{"name": ""}},
		{name: "image without registry or tag", c: web(func(c *Container) { c.Labels = map[string]string{"SERVICE_REGISTER": "1"}; c.Image = "nginx" }),
			want: []string{"node1:web-1:8080 nginx 10.0.0.5:32768 []"}},
		{name: "image by digest only", c: web(func(c *Container) {
			c.Labels = map[string]string{"SERVICE_REGISTER": "1"}
			c.Image = "team/api@sha256:0123"
		}),
			want: []string{"node1:web-1:8080 api 10.0.0.5:32768 []"}},
		{name: "image id as name fails clearly", c: web(func(c *Container) { c.Labels = map[string]string{"SERVICE_REGISTER": "1"}; c.Image = "sha256:0123" }),
			want: []string{"node1:web-1:8080 sha256 10.0.0.5:32768 []"}},
		// ECS task containers.
		{name: "ecs bridge meta from labels only", c: web(ecsTask()), want: []string{"node1:web-1:8080 web 10.0.0.5:32768 []"},
			meta: map[string]string{MetaECSCluster: "prod", MetaECSTaskARN: "arn:aws:ecs:us-east-1:111122223333:task/prod/1a2b3c4d",
				MetaECSTaskFamily: "web", MetaECSTaskRevision: "7", MetaECSContainer: "app", MetaECSService: "", MetaAvailabilityZone: "",
				MetaContainerID: "c0ffee", MetaContainerName: "web-1"}},
		{name: "ecs full meta", c: web(ecsTask(func(t *ecsmeta.Task) { t.Service = "web-svc"; t.AvailabilityZone = "us-east-1a" })),
			opts: &Options{Node: "node1", AdvertiseIP: netip.MustParseAddr("10.0.0.5"), OptIn: true, Host: ecsmeta.Host{InstanceID: "i-0abc", AvailabilityZone: "us-east-1b"}},
			want: []string{"node1:web-1:8080 web 10.0.0.5:32768 []"},
			meta: map[string]string{MetaECSService: "web-svc", MetaAvailabilityZone: "us-east-1a", MetaEC2InstanceID: "i-0abc"}},
		{name: "host zone and instance on a plain container", c: web(),
			opts: &Options{Node: "node1", AdvertiseIP: netip.MustParseAddr("10.0.0.5"), OptIn: true, Host: ecsmeta.Host{InstanceID: "i-0abc", AvailabilityZone: "us-east-1b"}},
			want: []string{"node1:web-1:8080 web 10.0.0.5:32768 []"},
			meta: map[string]string{MetaEC2InstanceID: "i-0abc", MetaAvailabilityZone: "us-east-1b", MetaECSCluster: ""}},
		{name: "ecs name defaults to the service", c: web(ecsTask(func(t *ecsmeta.Task) { t.Service = "web-svc" }),
			func(c *Container) { c.Labels = map[string]string{"SERVICE_REGISTER": "true"} }),
			want: []string{"node1:web-1:8080 web-svc 10.0.0.5:32768 []"}},
		{name: "ecs name defaults to the family without a service", c: web(ecsTask(),
			func(c *Container) { c.Labels = map[string]string{"SERVICE_REGISTER": "true"} }),
			want: []string{"node1:web-1:8080 web 10.0.0.5:32768 []"}},
		{name: "ecs SERVICE_NAME wins over the service", c: web(ecsTask(func(t *ecsmeta.Task) { t.Service = "web-svc" }), withLabels("SERVICE_NAME", "api")),
			want: []string{"node1:web-1:8080 api 10.0.0.5:32768 []"}},
		{name: "labels cannot spoof ecs meta", c: web(ecsTask(), withLabels("SERVICE_ECS-CLUSTER", "other", "SERVICE_AVAILABILITY-ZONE", "x")),
			want:     []string{"node1:web-1:8080 web 10.0.0.5:32768 []"},
			problems: []string{"warning:SERVICE_ECS-CLUSTER", "warning:SERVICE_AVAILABILITY-ZONE"},
			meta:     map[string]string{MetaECSCluster: "prod", MetaAvailabilityZone: ""}},
		{name: "task tags are meta, labels win", c: web(ecsTask(func(t *ecsmeta.Task) { t.Tags = map[string]string{"Team": "payments", "env": "prod"} }),
			withLabels("SERVICE_ENV", "staging")),
			want: []string{"node1:web-1:8080 web 10.0.0.5:32768 []"},
			meta: map[string]string{"team": "payments", "env": "staging"}},
		{name: "pause container never registered", c: web(ecsTask(func(t *ecsmeta.Task) { t.Container = ecsmeta.PauseContainer }),
			func(c *Container) { c.NetworkMode = "none" }), skipped: "pause container"},
		// A Service Connect bridge task's pause container publishes its container's ports on the bridge:
		// without the name check, opt-in off would register it.
		{name: "service connect pause container never registered", c: web(ecsTask(func(t *ecsmeta.Task) { t.Container = ecsmeta.PauseContainer + "-app" })),
			opts: &Options{Node: "node1", AdvertiseIP: testOpts.AdvertiseIP}, skipped: "pause container"},
		{name: "namespace pause container never registered", c: web(ecsTask(func(t *ecsmeta.Task) { t.Container = ecsmeta.PauseContainer + "~namespace" })),
			opts: &Options{Node: "node1", AdvertiseIP: testOpts.AdvertiseIP}, skipped: "pause container"},
		{name: "awsvpc at the ENI address and container port", c: web(awsvpc, ecsTask(func(t *ecsmeta.Task) {
			t.Addrs = []netip.Addr{netip.MustParseAddr("10.0.12.34")}
			t.Ports = []ecsmeta.Port{{ContainerPort: 9000, Protocol: "tcp", HostPort: 9000}}
		})), want: []string{"node1:web-1:9000 web 10.0.12.34:9000 []"}},
		{name: "awsvpc IPv6-only ENI", c: web(awsvpc, ecsTask(func(t *ecsmeta.Task) {
			t.Addrs = []netip.Addr{netip.MustParseAddr("2600:1f18::5")}
			t.Ports = []ecsmeta.Port{{ContainerPort: 9000, Protocol: "tcp"}}
		})), want: []string{"node1:web-1:9000 web 2600:1f18::5:9000 []"}},
		{name: "awsvpc waits for the ENI address", c: web(awsvpc, ecsTask()), skipped: "ENI address"},
		{name: "awsvpc without ports", c: web(awsvpc, ecsTask(func(t *ecsmeta.Task) { t.Addrs = []netip.Addr{netip.MustParseAddr("10.0.12.34")} })),
			skipped: "exposes no ports"},
		{name: "ecs host mode uses the task's ports", c: web(func(c *Container) { c.NetworkMode = "host"; c.Ports = nil },
			ecsTask(func(t *ecsmeta.Task) { t.Ports = []ecsmeta.Port{{ContainerPort: 8443, Protocol: "tcp"}} })),
			want: []string{"node1:web-1:8443 web 10.0.0.5:8443 []"}},
		{name: "tag templates", c: web(ecsTask(func(t *ecsmeta.Task) { t.AvailabilityZone = "us-east-1a"; t.Service = "web-svc" }), withLabels("SERVICE_TAGS", "v1", "team", "core")),
			opts: &Options{Node: "node1", AdvertiseIP: netip.MustParseAddr("10.0.0.5"), OptIn: true,
				Tags: mustTags("az-{{.AvailabilityZone}},{{.Family}}-{{.Revision}},{{index .Labels \"team\"}},{{with .Service}}svc-{{.}}{{end}},v1")},
			want: []string{"node1:web-1:8080 web 10.0.0.5:32768 [v1 az-us-east-1a web-7 core svc-web-svc]"}},
		{name: "tag template failing for one container", c: web(),
			opts: &Options{Node: "node1", AdvertiseIP: netip.MustParseAddr("10.0.0.5"), OptIn: true,
				Tags: mustTags("{{.Labels.team}},fixed,{{.TaskID}}")},
			want:     []string{"node1:web-1:8080 web 10.0.0.5:32768 [fixed]"},
			problems: []string{"warning:-tags"}},
		{name: "-useIpFromLabel takes the label's IP, or a CIDR's address", c: web(withLabels("ip", "10.9.8.7/24")),
			opts: &Options{Node: "node1", AdvertiseIP: netip.MustParseAddr("10.0.0.5"), OptIn: true, IPFromLabel: "ip"},
			want: []string{"node1:web-1:8080 web 10.9.8.7:32768 []"}},
		{name: "-useIpFromLabel with no such label keeps the usual address", c: web(),
			opts: &Options{Node: "node1", AdvertiseIP: netip.MustParseAddr("10.0.0.5"), OptIn: true, IPFromLabel: "ip"},
			want: []string{"node1:web-1:8080 web 10.0.0.5:32768 []"}},
		{name: "-useIpFromLabel takes a host name as it is", c: web(withLabels("ip", "web-1.internal")),
			opts: &Options{Node: "node1", AdvertiseIP: netip.MustParseAddr("10.0.0.5"), OptIn: true, IPFromLabel: "ip"},
			want: []string{"node1:web-1:8080 web web-1.internal:32768 []"}},
		{name: "-useIpFromLabel with a bad value keeps the container out", c: web(withLabels("ip", "ten nine/x")),
			opts:    &Options{Node: "node1", AdvertiseIP: netip.MustParseAddr("10.0.0.5"), OptIn: true, IPFromLabel: "ip"},
			skipped: "-useIpFromLabel", problems: []string{"error:ip"}},
		{name: "gliderlabs mode: any SERVICE_IGNORE value ignores, false with a warning", c: web(withLabels("SERVICE_IGNORE", "false")),
			opts:    &Options{Node: "node1", AdvertiseIP: netip.MustParseAddr("10.0.0.5"), Gliderlabs: true},
			skipped: "SERVICE_IGNORE", problems: []string{"warning:SERVICE_IGNORE"}},
		{name: "gliderlabs mode: the image names an ECS task's container", c: web(func(c *Container) {
			c.Labels = map[string]string{}
			c.Task = &ecsmeta.Task{Family: "fam", Service: "svc"}
		}),
			opts: &Options{Node: "node1", AdvertiseIP: netip.MustParseAddr("10.0.0.5"), Gliderlabs: true},
			want: []string{"node1:web-1:8080 web 10.0.0.5:32768 []"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			o := testOpts
			if tc.opts != nil {
				o = *tc.opts
			}
			r := Desired(tc.c, o)
			var got []string
			for _, s := range r.Services {
				got = append(got, svc(s))
				if s.ContainerID != tc.c.ID || s.Meta[MetaExternalSource] != ExternalSource {
					t.Errorf("service %s lacks ownership: container %q meta %v", s.ID, s.ContainerID, s.Meta)
				}
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("services:\n got %q\nwant %q", got, tc.want)
			}
			if len(tc.want) == 0 && !strings.Contains(r.Skipped, tc.skipped) {
				t.Errorf("skipped = %q, want it to mention %q", r.Skipped, tc.skipped)
			}
			if len(tc.want) > 0 && r.Skipped != "" {
				t.Errorf("registered but skipped = %q", r.Skipped)
			}
			if len(r.Problems) != len(tc.problems) {
				t.Errorf("problems = %v, want %d: %v", r.Problems, len(tc.problems), tc.problems)
			}
			for _, want := range tc.problems {
				sev, text, _ := strings.Cut(want, ":")
				if !slices.ContainsFunc(r.Problems, func(p Problem) bool {
					return string(p.Severity) == sev && strings.Contains(p.Key+" "+p.Message, text)
				}) {
					t.Errorf("no %s problem mentioning %q in %v", sev, text, r.Problems)
				}
			}
			for k, v := range tc.meta {
				for _, s := range r.Services {
					if got, ok := s.Meta[k]; v == "" && ok || v != "" && got != v {
						t.Errorf("%s: meta[%q] = %q (present %v), want %q", s.ID, k, got, ok, v)
					}
				}
			}
		})
	}
}

func TestDesiredIsDeterministic(t *testing.T) {
	t.Parallel()
	c := web(withLabels("SERVICE_A", "1", "SERVICE_B", "2", "SERVICE_a.b", "3", "SERVICE_9999_NAME", "x"),
		withPorts(Port{Port: 8080, Proto: "tcp", HostPort: 1}, Port{Port: 9090, Proto: "tcp", HostPort: 2}))
	first := Desired(c, testOpts)
	for range 20 {
		again := Desired(c, testOpts)
		if !slices.EqualFunc(first.Services, again.Services, Service.Equal) || !slices.Equal(first.Problems, again.Problems) {
			t.Fatalf("Desired is not deterministic:\n%v\n%v", first, again)
		}
	}
}

func TestTerminating(t *testing.T) {
	t.Parallel()
	cases := []struct {
		signal, stop string
		want         bool
	}{
		{"15", "", true}, {"2", "", true}, {"9", "", true},
		{"1", "", false}, {"10", "", false}, {"28", "", false},
		{"3", "SIGQUIT", true}, {"3", "QUIT", true}, {"3", "3", true}, {"3", "sigquit", true},
		{"10", "SIGQUIT", false}, {"37", "SIGRTMIN+3", true},
		{"", "", false}, {"garbage", "SIGTERM", false}, {"1", "nonsense", false}, {"-1", "", false},
	}
	for _, tc := range cases {
		if got := Terminating(tc.signal, tc.stop); got != tc.want {
			t.Errorf("Terminating(%q, %q) = %v, want %v", tc.signal, tc.stop, got, tc.want)
		}
	}
}

func mustTags(s string) TagTemplates {
	t, err := ParseTagTemplates(s)
	if err != nil {
		panic(err)
	}
	return t
}

func TestParseTagTemplates(t *testing.T) {
	t.Parallel()
	ts, err := ParseTagTemplates(" a , {{printf \"%s,%s\" .Family .Revision}},,b")
	if err != nil || len(ts) != 3 {
		t.Fatalf("parsed %d templates, %v; want 3 (commas inside {{ }} do not split)", len(ts), err)
	}
	for _, bad := range []string{"{{.Nope", "{{end}}", "{{.Family}"} {
		if _, err := ParseTagTemplates(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

// A container on another container's network takes the owner's address; on a Service Connect pause
// container of its own task it is a bridge container at the pause container's published ports.
func TestJoinNetwork(t *testing.T) {
	t.Parallel()
	const arn = "arn:aws:ecs:us-east-1:111122223333:task/prod/1a2b3c4d"
	ecsLabels := func(name string, kv ...string) map[string]string {
		l := map[string]string{ecsmeta.LabelTaskARN: arn, ecsmeta.LabelContainerName: name}
		for i := 0; i+1 < len(kv); i += 2 {
			l[kv[i]] = kv[i+1]
		}
		return l
	}
	published := []Port{{Port: 8080, Proto: "tcp", HostIP: "0.0.0.0", HostPort: 32769}}
	ownerIP := []netip.Addr{netip.MustParseAddr("172.17.0.7")}
	cases := []struct {
		name      string
		app       map[string]string
		owner     Container
		wantMode  string
		wantPorts []Port
		want      []string // svc() of Desired's services; empty with skipped
		skipped   string
	}{
		{name: "service connect bridge", app: ecsLabels("app", "SERVICE_NAME", "api"),
			owner:    Container{NetworkMode: "bridge", Ports: published, IPs: ownerIP, Labels: ecsLabels("~internal~ecs~pause-app")},
			wantMode: "bridge", wantPorts: published, want: []string{"node1:app-1:8080 api 10.0.0.5:32769 []"}},
		{name: "another task's pause container is no service connect", app: ecsLabels("app", "SERVICE_NAME", "api", ecsmeta.LabelTaskARN, arn+"x"),
			owner:    Container{NetworkMode: "bridge", Ports: published, IPs: ownerIP, Labels: ecsLabels("~internal~ecs~pause-app")},
			wantMode: "container:p", skipped: "awsvpc"},
		{name: "a container without ECS labels cannot borrow a pause container's ports", app: map[string]string{"SERVICE_NAME": "api"},
			owner:    Container{NetworkMode: "bridge", Ports: published, IPs: ownerIP, Labels: ecsLabels("~internal~ecs~pause-app")},
			wantMode: "container:p", skipped: "exposes no ports"},
		{name: "awsvpc pause", app: ecsLabels("app", "SERVICE_NAME", "api"),
			owner:    Container{NetworkMode: "none", Labels: ecsLabels(ecsmeta.PauseContainer)},
			wantMode: "container:p", skipped: "awsvpc task: waiting"},
		{name: "a pod keeps the owner's address", app: map[string]string{"SERVICE_NAME": "side"},
			owner:    Container{NetworkMode: "bridge", Ports: published, IPs: ownerIP, Labels: map[string]string{}},
			wantMode: "container:p", skipped: "exposes no ports"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := Container{ID: "a1", Name: "app-1", Running: true, NetworkMode: "container:p", Labels: tc.app}
			c.JoinNetwork(tc.owner)
			if c.NetworkMode != tc.wantMode || !slices.Equal(c.Ports, tc.wantPorts) || !slices.Equal(c.IPs, ownerIP[:len(tc.owner.IPs)]) {
				t.Fatalf("joined as %s %v %v, want %s %v", c.NetworkMode, c.Ports, c.IPs, tc.wantMode, tc.wantPorts)
			}
			if task, ok := ecsmeta.FromLabels(c.Labels); ok {
				c.Task = &task
			}
			res := Desired(c, testOpts)
			var got []string
			for _, s := range res.Services {
				got = append(got, svc(s))
			}
			if !slices.Equal(got, tc.want) || !strings.Contains(res.Skipped, tc.skipped) {
				t.Errorf("services %v (skipped %q), want %v (skipped %q)", got, res.Skipped, tc.want, tc.skipped)
			}
		})
	}
}
