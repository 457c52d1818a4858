package desired

// The gliderlabs corpus: gliderlabs/registrator's documented behaviour for every label and flag, as rows
// for the pure Desired function in gliderlabs mode. Each row states one documented sentence (its doc
// field quotes it); the expectations were written from gliderlabs's docs (docs/user/services.md, run.md,
// backends.md) and from the project's reference /work/shared/reference/gliderlabs-behaviour.md, not from
// gliderlabs's code or from this project's.
//
// A row with a differs string asserts this project's behaviour where it deliberately departs from
// gliderlabs (README, "Coming from gliderlabs/registrator"); the string names the difference.
//
// Three differences apply to every row and are handled by the comparison, not by each row:
//   - The project adds Meta keys of its own (glProjectMetaKeys below: external-source, container-id,
//     container-name, the ECS and EC2 keys, the ecsr-checks fingerprint); only user Meta is compared.
//   - gliderlabs copies the SERVICE_CHECK_* keys into Meta (check_http, check_interval, ...); the project
//     does not. Rows without differs ignore check_* Meta keys; the row "check keys are not Meta" asserts
//     their absence.
//   - Every HTTP(S) check is registered with redirects disabled (health.Check.DisableRedirects: Consul
//     reports a redirect instead of following it from the host); glRunCorpus fails any row whose HTTP(S)
//     check lacks it, and the comparison then leaves it out.
//
// Tags are compared as a set: Consul treats them as one, and the docs give no order for the tags that
// registrator adds itself (udp, -tags).
//
// Map of gliderlabs's flags to the tests that state them:
//
//	-ip <ip>             here: Options.AdvertiseIP (rows "-ip ...", and every published-port row)
//	-internal            here: Options.Internal (rows "-internal ...")
//	-explicit            here: Options.OptIn (rows "-explicit ...")
//	-useIpFromLabel      here: Options.IPFromLabel (rows "-useIpFromLabel ..."); its command-line wiring:
//	                     cmd/ecs-registrator TestParseConfig (the -useIpFromLabel row)
//	-tags <tags>         here, TestGliderlabsCorpusFlags: the rendered tags (Container.InspectTags) are
//	                     appended to every service; the rendering over docker inspect is the tag template
//	                     tests (internal/tmpl TestInspectTagTemplateMatchesTextTemplate and
//	                     FuzzInspectTagTemplate; here TestInspectTagTemplateRender);
//	                     end to end: cmd/ecs-registrator TestGliderlabsDropIn
//	-resync <seconds>    cmd/ecs-registrator TestParseConfig "gliderlabs resync in seconds";
//	                     end to end: TestGliderlabsCommandLine
//	-cleanup             TestPlan (rows "cleanup ..."); cmd/ecs-registrator TestParseConfig, and end to
//	                     end TestGliderlabsMigrationNoGap
//	-deregister <mode>   TestPlan (rows "on-success ...", "always ..."), TestLoopKeepsFailedContainers;
//	                     cmd/ecs-registrator TestParseConfig
//	-retry-attempts, -retry-interval, -ttl, -ttl-refresh
//	                     cmd/ecs-registrator TestParseConfig "gliderlabs flags without effect are accepted";
//	                     end to end: TestGliderlabsCommandLine
//	registry URI         cmd/ecs-registrator TestParseConfig "gliderlabs command line" (consul://),
//	                     "gliderlabs tls" (consul-tls://), "gliderlabs unix socket" (consul-unix://),
//	                     "another registry", "two registries"; end to end: TestGliderlabsCommandLine
//	host network mode, unpublished ports: here (rows "host network ...", "unpublished ...")
//	container:<id> network mode: here (row "container:<id> network ..."); the other container's IP is
//	                     looked up by evaluate (Container.IPs), which the end-to-end tests cover

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ecs-registrator/ecs-registrator/ecsmeta"
	"github.com/ecs-registrator/ecs-registrator/health"
)

const (
	glNode = "host1"     // the ID prefix: gliderlabs's os.Hostname()
	glAdv  = "10.0.1.23" // -ip
	glCIP  = "172.17.0.2"
)

// glProjectMetaKeys are the Meta keys this project sets itself; the corpus compares user Meta only.
var glProjectMetaKeys = []string{
	MetaExternalSource, MetaContainerID, MetaContainerName,
	MetaECSCluster, MetaECSTaskARN, MetaECSTaskFamily, MetaECSTaskRevision, MetaECSService, MetaECSContainer,
	MetaAvailabilityZone, MetaEC2InstanceID, MetaChecks,
}

// glOptions is gliderlabs mode as `registrator -ip 10.0.1.23 consul://...` on host1 runs it.
func glOptions() Options {
	return Options{Gliderlabs: true, Node: glNode, AdvertiseIP: netip.MustParseAddr(glAdv), OptIn: false,
		HealthTTL: 90 * time.Second}
}

type corpusCheck struct {
	ID              string
	Kind            string
	HTTP            string
	Method          string
	TCP             string
	GRPC            string
	GRPCUseTLS      bool
	TLSSkipVerify   bool
	Interval        time.Duration
	Timeout         time.Duration
	TTL             time.Duration
	DeregisterAfter time.Duration
	InitialStatus   string
}

type wantService struct {
	Name    string
	ID      string
	Address string
	Port    int
	Tags    []string          // compared as a set
	Meta    map[string]string // user Meta only
	Checks  []corpusCheck     // compared by ID
}

type corpusRow struct {
	name         string
	doc          string // the documentation sentence or reference line the row states
	c            Container
	opts         func(*Options)
	want         []wantService
	wantSkipped  bool   // Result.Skipped non-empty and no services
	wantErrorKey string // an error Problem on this key; without it, the row wants no error Problem
	differs      string // the project's deliberate difference this row asserts, if any
}

// glC is a running bridge container with the given ports.
func glC(name, image string, ports []Port, mods ...func(*Container)) Container {
	c := Container{ID: "c-" + name, Name: name, Image: image, Running: true, NetworkMode: "bridge",
		IPs: []netip.Addr{netip.MustParseAddr(glCIP)}, Ports: ports}
	for _, m := range mods {
		m(&c)
	}
	return c
}

func glPorts(p ...Port) []Port { return p }

// glPub is a TCP port published on all host addresses.
func glPub(port, hostPort int) Port {
	return Port{Port: port, Proto: "tcp", HostIP: "0.0.0.0", HostPort: hostPort}
}

func glPubUDP(port, hostPort int) Port {
	return Port{Port: port, Proto: "udp", HostIP: "0.0.0.0", HostPort: hostPort}
}

// glExposed is a TCP port exposed but not published.
func glExposed(port int) Port { return Port{Port: port, Proto: "tcp"} }

func glLabels(kv ...string) func(*Container) {
	return func(c *Container) {
		if c.Labels == nil {
			c.Labels = map[string]string{}
		}
		for i := 0; i+1 < len(kv); i += 2 {
			c.Labels[kv[i]] = kv[i+1]
		}
	}
}

func glEnv(kv ...string) func(*Container) {
	return func(c *Container) {
		for i := 0; i+1 < len(kv); i += 2 {
			c.Env = append(c.Env, kv[i]+"="+kv[i+1])
		}
	}
}

func glExplicit(o *Options) { o.OptIn = true }
func glInternal(o *Options) { o.Internal = true }
func glIPFromLabel(label string) func(*Options) {
	return func(o *Options) { o.IPFromLabel = label }
}

func glMeta(kv ...string) map[string]string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return m
}

// Label-defined checks as gliderlabs registers them: ID service:<service ID>, 10s interval, no timeout.
func glHTTP(serviceID, url string) corpusCheck {
	return corpusCheck{ID: "service:" + serviceID, Kind: health.KindHTTP, HTTP: url, Interval: 10 * time.Second}
}

func glHTTPS(serviceID, url string) corpusCheck {
	return corpusCheck{ID: "service:" + serviceID, Kind: health.KindHTTPS, HTTP: url, Interval: 10 * time.Second}
}

func glTCP(serviceID, addr string) corpusCheck {
	return corpusCheck{ID: "service:" + serviceID, Kind: health.KindTCP, TCP: addr, Interval: 10 * time.Second}
}

func glGRPC(serviceID, addr string) corpusCheck {
	return corpusCheck{ID: "service:" + serviceID, Kind: health.KindGRPC, GRPC: addr, Interval: 10 * time.Second}
}

func glTTL(serviceID string, ttl time.Duration) corpusCheck {
	return corpusCheck{ID: "service:" + serviceID, Kind: health.KindTTL, TTL: ttl}
}

// glMirror is the project's own check mirroring a Docker HEALTHCHECK.
func glMirror(serviceID string) corpusCheck {
	return corpusCheck{ID: "service:" + serviceID + ":health", Kind: health.KindMirror, TTL: 90 * time.Second,
		InitialStatus: health.Critical}
}

func glWith(c corpusCheck, f func(*corpusCheck)) corpusCheck { f(&c); return c }

func TestGliderlabsCorpus(t *testing.T) {
	t.Parallel()
	const s = time.Second
	ecsTaskLabels := glLabels(
		"com.amazonaws.ecs.cluster", "prod",
		"com.amazonaws.ecs.task-arn", "arn:aws:ecs:us-east-1:111122223333:task/prod/0123456789abcdef",
		"com.amazonaws.ecs.task-definition-family", "web-task",
		"com.amazonaws.ecs.task-definition-version", "7",
		"com.amazonaws.ecs.container-name", "app",
	)
	ecsTaskMeta := func(c *Container) {
		c.Task = &ecsmeta.Task{Cluster: "prod", ARN: "arn:aws:ecs:us-east-1:111122223333:task/prod/0123456789abcdef",
			Family: "web-task", Revision: "7", Container: "app", Service: "web-svc", DesiredStatus: "RUNNING", KnownStatus: "RUNNING"}
	}

	rows := []corpusRow{
		// services.md, Examples.
		{
			name: "docs example: single service with defaults",
			doc:  "services.md: `docker run -d --name redis.0 -p 10000:6379 progrium/redis` results in ID hostname:redis.0:6379, Name redis, Port 10000, Tags [], Attrs {}",
			c:    glC("redis.0", "progrium/redis", glPorts(glPub(6379, 10000))),
			want: []wantService{{ID: "host1:redis.0:6379", Name: "redis", Address: glAdv, Port: 10000}},
		},
		{
			name: "docs example: single service with metadata (env)",
			doc:  `services.md: -e "SERVICE_NAME=db" -e "SERVICE_TAGS=master,backups" -e "SERVICE_REGION=us2" results in Name db, Tags ["master", "backups"], Attrs {"region": "us2"}`,
			c: glC("redis.0", "progrium/redis", glPorts(glPub(6379, 10000)),
				glEnv("SERVICE_NAME", "db", "SERVICE_TAGS", "master,backups", "SERVICE_REGION", "us2")),
			want: []wantService{{ID: "host1:redis.0:6379", Name: "db", Address: glAdv, Port: 10000,
				Tags: []string{"master", "backups"}, Meta: glMeta("region", "us2")}},
		},
		{
			name: "docs example: using labels to define metadata",
			doc:  `services.md: -l "SERVICE_NAME=db" -l "SERVICE_TAGS=master,backups" -l "SERVICE_REGION=us2" dockerfile/redis results in Name db, Tags ["master", "backups"], Attrs {"region": "us2"}`,
			c: glC("redis.0", "dockerfile/redis", glPorts(glPub(6379, 10000)),
				glLabels("SERVICE_NAME", "db", "SERVICE_TAGS", "master,backups", "SERVICE_REGION", "us2")),
			want: []wantService{{ID: "host1:redis.0:6379", Name: "db", Address: glAdv, Port: 10000,
				Tags: []string{"master", "backups"}, Meta: glMeta("region", "us2")}},
		},
		{
			name: "docs example: escaped comma",
			doc:  `services.md: "The comma can be escaped by adding a backslash": -e "SERVICE_TAGS=/(;\\,:-_)/" (the shell passes /(;\,:-_)/)`,
			c: glC("redis.0", "progrium/redis", glPorts(glPub(6379, 10000)),
				glEnv("SERVICE_NAME", "db", "SERVICE_TAGS", `/(;\,:-_)/`, "SERVICE_REGION", "us2")),
			want: []wantService{{ID: "host1:redis.0:6379", Name: "db", Address: glAdv, Port: 10000,
				Tags: []string{"/(;,:-_)/"}, Meta: glMeta("region", "us2")}},
		},
		{
			name: "docs example: multiple services with defaults",
			doc:  "services.md: `docker run -d --name nginx.0 -p 4443:443 -p 8000:80 progrium/nginx` results in nginx-443 (ID hostname:nginx.0:443, Port 4443) and nginx-80 (ID hostname:nginx.0:80, Port 8000)",
			c:    glC("nginx.0", "progrium/nginx", glPorts(glPub(443, 4443), glPub(80, 8000))),
			want: []wantService{
				{ID: "host1:nginx.0:443", Name: "nginx-443", Address: glAdv, Port: 4443},
				{ID: "host1:nginx.0:80", Name: "nginx-80", Address: glAdv, Port: 8000},
			},
		},
		{
			name: "docs example: multiple services with metadata",
			doc:  `services.md: SERVICE_443_NAME=https, SERVICE_443_ID=https.12345, SERVICE_443_SNI=enabled, SERVICE_80_NAME=http, SERVICE_TAGS=www results in {ID https.12345, Name https, Port 4443, Tags [www], Attrs {sni: enabled}} and {ID hostname:nginx.0:80, Name http, Port 8000, Tags [www], Attrs {}}`,
			c: glC("nginx.0", "progrium/nginx", glPorts(glPub(443, 4443), glPub(80, 8000)),
				glEnv("SERVICE_443_NAME", "https", "SERVICE_443_ID", "https.12345", "SERVICE_443_SNI", "enabled",
					"SERVICE_80_NAME", "http", "SERVICE_TAGS", "www")),
			want: []wantService{
				{ID: "https.12345", Name: "https", Address: glAdv, Port: 4443, Tags: []string{"www"}, Meta: glMeta("sni", "enabled")},
				{ID: "host1:nginx.0:80", Name: "http", Address: glAdv, Port: 8000, Tags: []string{"www"}},
			},
		},

		// Default name.
		{
			name: "default name: image base name without registry and tag",
			doc:  "reference: the name defaults to the image's base name without tag (`registry/team/api:1.2` gives `api`)",
			c:    glC("api.1", "registry/team/api:1.2", glPorts(glPub(8080, 32768))),
			want: []wantService{{ID: "host1:api.1:8080", Name: "api", Address: glAdv, Port: 32768}},
		},
		{
			name: "default name: base of an image with a registry port",
			doc:  "services.md: `<base(container-image)>`; if the image is `gliderlabs/foobar`, the service name is `foobar`",
			c:    glC("foobar.1", "registry.example:5000/gliderlabs/foobar:latest", glPorts(glPub(8080, 32768))),
			want: []wantService{{ID: "host1:foobar.1:8080", Name: "foobar", Address: glAdv, Port: 32768}},
		},
		{
			name: "default name: image base name for a container ECS started",
			doc:  "reference: otherwise the name defaults to the image's base name without tag (gliderlabs knows nothing of ECS task families or services)",
			c:    glC("ecs-web-task-7-app-abc", "111122223333.dkr.ecr.us-east-1.amazonaws.com/team/api:1.2", glPorts(glPub(8080, 32768)), ecsTaskLabels, ecsTaskMeta),
			want: []wantService{{ID: "host1:ecs-web-task-7-app-abc:8080", Name: "api", Address: glAdv, Port: 32768}},
		},

		// Several ports.
		{
			name: "several ports: SERVICE_NAME gets -<port>",
			doc:  "services.md: if a container has multiple exposed ports then setting SERVICE_NAME will still result in multiple services named SERVICE_NAME-<exposed port>; reference: `SERVICE_NAME=web` on 80 and 443 gives `web-80`, `web-443`",
			c:    glC("web.1", "team/web", glPorts(glPub(80, 8000), glPub(443, 4443)), glLabels("SERVICE_NAME", "web")),
			want: []wantService{
				{ID: "host1:web.1:80", Name: "web-80", Address: glAdv, Port: 8000},
				{ID: "host1:web.1:443", Name: "web-443", Address: glAdv, Port: 4443},
			},
		},
		{
			name: "several ports: a SERVICE_<port>_NAME gets no suffix, the other port does",
			doc:  "reference: when a container has more than one candidate port and a port's name did not come from SERVICE_<port>_NAME, the name gets -<port> appended",
			c: glC("web.1", "team/web", glPorts(glPub(80, 8000), glPub(443, 4443)),
				glLabels("SERVICE_NAME", "web", "SERVICE_80_NAME", "http")),
			want: []wantService{
				{ID: "host1:web.1:80", Name: "http", Address: glAdv, Port: 8000},
				{ID: "host1:web.1:443", Name: "web-443", Address: glAdv, Port: 4443},
			},
		},
		{
			name: "several ports: counted after the publish filter",
			doc:  "reference: candidate ports are counted after the publish filter, before any SERVICE_<port>_IGNORE",
			c:    glC("api.1", "team/api", glPorts(glPub(80, 8000), glExposed(9000))),
			want: []wantService{{ID: "host1:api.1:80", Name: "api", Address: glAdv, Port: 8000}},
		},
		{
			name: "several ports: counted before SERVICE_<port>_IGNORE",
			doc:  "services.md: ignore an individual service with `SERVICE_<port>_IGNORE=true`; reference: counted after the publish filter, before any SERVICE_<port>_IGNORE",
			c:    glC("nginx.0", "progrium/nginx", glPorts(glPub(80, 8000), glPub(443, 4443)), glLabels("SERVICE_443_IGNORE", "true")),
			want: []wantService{{ID: "host1:nginx.0:80", Name: "nginx-80", Address: glAdv, Port: 8000}},
		},

		// Ignore.
		{
			name:        "SERVICE_IGNORE=true skips the container",
			doc:         "services.md: You can also tell Registrator to ignore a container by setting a label or environment variable for SERVICE_IGNORE",
			c:           glC("api.1", "team/api", glPorts(glPub(8080, 32768)), glLabels("SERVICE_IGNORE", "true")),
			wantSkipped: true,
		},
		{
			name:        "SERVICE_IGNORE=false skips too",
			doc:         "reference: SERVICE_IGNORE (or SERVICE_<port>_IGNORE) with any non-empty value skips (even false)",
			c:           glC("api.1", "team/api", glPorts(glPub(8080, 32768)), glLabels("SERVICE_IGNORE", "false")),
			wantSkipped: true,
		},
		{
			name:        "SERVICE_IGNORE in the environment with any value",
			doc:         "reference: SERVICE_IGNORE with any non-empty value skips; services.md: a label or environment variable",
			c:           glC("api.1", "team/api", glPorts(glPub(8080, 32768)), glEnv("SERVICE_IGNORE", "yes")),
			wantSkipped: true,
		},
		{
			name: "SERVICE_<port>_IGNORE=false skips that port",
			doc:  "reference: SERVICE_IGNORE (or SERVICE_<port>_IGNORE) with any non-empty value skips (even false)",
			c:    glC("nginx.0", "progrium/nginx", glPorts(glPub(80, 8000), glPub(443, 4443)), glLabels("SERVICE_80_IGNORE", "false")),
			want: []wantService{{ID: "host1:nginx.0:443", Name: "nginx-443", Address: glAdv, Port: 4443}},
		},

		// ID.
		{
			name: "SERVICE_ID replaces the ID",
			doc:  "services.md: Although this can be overridden on containers with SERVICE_ID or SERVICE_x_ID, it is not recommended",
			c:    glC("redis-1", "redis", glPorts(glPub(6379, 6379)), glEnv("SERVICE_ID", "redis-1")),
			want: []wantService{{ID: "redis-1", Name: "redis", Address: glAdv, Port: 6379}},
		},
		{
			name: "SERVICE_<port>_ID wins over SERVICE_ID",
			doc:  "reference: SERVICE_<port>_<KEY> applies to that container port only and wins over SERVICE_<KEY>",
			c:    glC("redis-1", "redis", glPorts(glPub(6379, 6379)), glLabels("SERVICE_ID", "generic", "SERVICE_6379_ID", "redis-primary")),
			want: []wantService{{ID: "redis-primary", Name: "redis", Address: glAdv, Port: 6379}},
		},
		{
			name:         "SERVICE_ID shared by two ports: the first keeps it",
			doc:          "reference: SERVICE_ID replaces the ID; with several ports every service gets it (the last write wins in Consul)",
			c:            glC("api.1", "team/api", glPorts(glPub(80, 8000), glPub(443, 4443)), glLabels("SERVICE_ID", "shared")),
			want:         []wantService{{ID: "shared", Name: "api-80", Address: glAdv, Port: 8000}},
			wantErrorKey: "SERVICE_ID",
			differs:      "SERVICE_ID shared by several ports: only the first port keeps it, the others are reported with an error (gliderlabs registers all under one ID and the last write wins)",
		},

		// UDP.
		{
			name: "UDP port: :udp ID suffix and udp tag",
			doc:  "services.md: `<hostname>:<container-name>:<exposed-port>[:udp if udp]`; reference: UDP ports: ID <...>:<port>:udp and a tag udp added",
			c:    glC("dns.0", "coredns/coredns:1.11", glPorts(glPubUDP(53, 5353))),
			want: []wantService{{ID: "host1:dns.0:53:udp", Name: "coredns", Address: glAdv, Port: 5353, Tags: []string{"udp"}}},
		},
		{
			name: "UDP port: udp tag added to SERVICE_TAGS",
			doc:  "reference: UDP ports: ID <...>:<port>:udp and a tag udp added",
			c:    glC("dns.0", "coredns/coredns:1.11", glPorts(glPubUDP(53, 5353)), glLabels("SERVICE_NAME", "dns", "SERVICE_TAGS", "internal")),
			want: []wantService{{ID: "host1:dns.0:53:udp", Name: "dns", Address: glAdv, Port: 5353, Tags: []string{"internal", "udp"}}},
		},
		{
			name: "TCP and UDP on the same port are two services",
			doc:  "services.md: if the service is identified as UDP, this is included in the ID to differentiate from a TCP service that could be listening on the same port",
			c:    glC("dns.0", "coredns/coredns:1.11", glPorts(glPub(53, 5353), glPubUDP(53, 5353))),
			want: []wantService{
				{ID: "host1:dns.0:53", Name: "coredns-53", Address: glAdv, Port: 5353},
				{ID: "host1:dns.0:53:udp", Name: "coredns-53", Address: glAdv, Port: 5353, Tags: []string{"udp"}},
			},
		},

		// Tags.
		{
			name: "SERVICE_TAGS: backslash-comma is a literal comma",
			doc:  "reference: SERVICE_TAGS: comma list; `\\,` is a literal comma inside a tag (`foo\\,bar,baz` gives `foo,bar` and `baz`)",
			c:    glC("api.1", "team/api", glPorts(glPub(8080, 32768)), glLabels("SERVICE_TAGS", `foo\,bar,baz`)),
			want: []wantService{{ID: "host1:api.1:8080", Name: "api", Address: glAdv, Port: 32768, Tags: []string{"foo,bar", "baz"}}},
		},
		{
			name: "SERVICE_<port>_TAGS wins over SERVICE_TAGS",
			doc:  "reference: SERVICE_<port>_<KEY> applies to that container port only and wins over SERVICE_<KEY>; services.md: variables without a port are the default for all services",
			c: glC("web.1", "team/web", glPorts(glPub(80, 8000), glPub(443, 4443)),
				glLabels("SERVICE_TAGS", "www", "SERVICE_80_TAGS", "plain")),
			want: []wantService{
				{ID: "host1:web.1:80", Name: "web-80", Address: glAdv, Port: 8000, Tags: []string{"plain"}},
				{ID: "host1:web.1:443", Name: "web-443", Address: glAdv, Port: 4443, Tags: []string{"www"}},
			},
		},

		// Meta (Attrs).
		{
			name: "other SERVICE_ keys become Meta",
			doc:  "services.md: The Attrs field is populated by metadata using any other field names in the key name. For example, SERVICE_REGION=us-east",
			c:    glC("api.1", "team/api", glPorts(glPub(8080, 32768)), glLabels("SERVICE_REGION", "us-east")),
			want: []wantService{{ID: "host1:api.1:8080", Name: "api", Address: glAdv, Port: 32768, Meta: glMeta("region", "us-east")}},
		},
		{
			name: "Meta keys are lower-cased",
			doc:  "reference: every other SERVICE_<KEY> becomes Meta[<key>]; a key is lower-cased after the prefix",
			c:    glC("api.1", "team/api", glPorts(glPub(8080, 32768)), glLabels("SERVICE_OWNER_TEAM", "Payments")),
			want: []wantService{{ID: "host1:api.1:8080", Name: "api", Address: glAdv, Port: 32768, Meta: glMeta("owner_team", "Payments")}},
		},
		{
			name: "SERVICE_<port>_<KEY> Meta wins for that port only",
			doc:  "services.md: You use a port in the key name to refer to a particular service on that port. Metadata variables without a port in the name are used as the default for all services",
			c: glC("web.1", "team/web", glPorts(glPub(80, 8000), glPub(443, 4443)),
				glLabels("SERVICE_REGION", "us-east", "SERVICE_443_REGION", "eu-west")),
			want: []wantService{
				{ID: "host1:web.1:80", Name: "web-80", Address: glAdv, Port: 8000, Meta: glMeta("region", "us-east")},
				{ID: "host1:web.1:443", Name: "web-443", Address: glAdv, Port: 4443, Meta: glMeta("region", "eu-west")},
			},
		},
		{
			name: "check keys are not Meta",
			doc:  "reference: every other SERVICE_<KEY> (after removing id, tags, name) becomes Meta[<key>], including the check_* keys (the project deliberately leaves those out)",
			c: glC("api.1", "team/api", glPorts(glPub(8080, 32768)),
				glLabels("SERVICE_CHECK_HTTP", "/health", "SERVICE_CHECK_INTERVAL", "15s", "SERVICE_REGION", "eu")),
			want: []wantService{{ID: "host1:api.1:8080", Name: "api", Address: glAdv, Port: 32768, Meta: glMeta("region", "eu"),
				Checks: []corpusCheck{glWith(glHTTP("host1:api.1:8080", "http://10.0.1.23:32768/health"), func(c *corpusCheck) { c.Interval = 15 * s })}}},
			differs: "check_* keys are not copied into Meta",
		},

		// Environment and labels.
		{
			name: "labels win over env",
			doc:  "reference: Keys are read from the environment first, then labels, so labels win; services.md: The operator will still be able to override these author-defined defaults",
			c: glC("api.1", "team/api", glPorts(glPub(8080, 32768)),
				glEnv("SERVICE_NAME", "from-env", "SERVICE_REGION", "env-region"), glLabels("SERVICE_NAME", "from-label", "SERVICE_REGION", "label-region")),
			want: []wantService{{ID: "host1:api.1:8080", Name: "from-label", Address: glAdv, Port: 32768, Meta: glMeta("region", "label-region")}},
		},
		{
			name: "env and labels merge",
			doc:  "services.md: You can use environment variables or labels prefixed with SERVICE_ or SERVICE_x_ to set values",
			c: glC("api.1", "team/api", glPorts(glPub(8080, 32768)),
				glEnv("SERVICE_TAGS", "from-env"), glLabels("SERVICE_NAME", "api-label", "SERVICE_REGION", "us2")),
			want: []wantService{{ID: "host1:api.1:8080", Name: "api-label", Address: glAdv, Port: 32768, Tags: []string{"from-env"}, Meta: glMeta("region", "us2")}},
		},
		{
			name: "per-port env key wins over container-level label",
			doc:  "reference: SERVICE_<port>_<KEY> applies to that container port only and wins over SERVICE_<KEY>",
			c: glC("api.1", "team/api", glPorts(glPub(8080, 32768)),
				glEnv("SERVICE_8080_NAME", "per-port"), glLabels("SERVICE_NAME", "container-level")),
			want: []wantService{{ID: "host1:api.1:8080", Name: "per-port", Address: glAdv, Port: 32768}},
		},

		// Case of the keys.
		{
			name: "SERVICE_name is SERVICE_NAME",
			doc:  "reference: a key is SERVICE_ + anything, and is lower-cased after the prefix (SERVICE_name = SERVICE_NAME)",
			c:    glC("api.1", "team/api", glPorts(glPub(8080, 32768)), glLabels("SERVICE_name", "db")),
			want: []wantService{{ID: "host1:api.1:8080", Name: "db", Address: glAdv, Port: 32768}},
		},
		{
			name: "SERVICE_<port>_name is SERVICE_<port>_NAME",
			doc:  "reference: a key is lower-cased after the prefix; a name from SERVICE_<port>_NAME gets no -<port> suffix",
			c:    glC("nginx.0", "progrium/nginx", glPorts(glPub(80, 8000), glPub(443, 4443)), glLabels("SERVICE_80_name", "http")),
			want: []wantService{
				{ID: "host1:nginx.0:80", Name: "http", Address: glAdv, Port: 8000},
				{ID: "host1:nginx.0:443", Name: "nginx-443", Address: glAdv, Port: 4443},
			},
		},
		{
			name: "SERVICE_Tags and SERVICE_id",
			doc:  "reference: a key is lower-cased after the prefix (SERVICE_name = SERVICE_NAME)",
			c:    glC("api.1", "team/api", glPorts(glPub(8080, 32768)), glLabels("SERVICE_Tags", "a,b", "SERVICE_id", "api-one")),
			want: []wantService{{ID: "api-one", Name: "api", Address: glAdv, Port: 32768, Tags: []string{"a", "b"}}},
		},
		{
			name:        "SERVICE_Ignore skips",
			doc:         "reference: a key is lower-cased after the prefix; SERVICE_IGNORE with any non-empty value skips",
			c:           glC("api.1", "team/api", glPorts(glPub(8080, 32768)), glLabels("SERVICE_Ignore", "1")),
			wantSkipped: true,
		},
		{
			name: "SERVICE_check_http is SERVICE_CHECK_HTTP",
			doc:  "reference: a key is lower-cased after the prefix; SERVICE_CHECK_HTTP=/path: HTTP GET http://<ip>:<port>/path",
			c:    glC("api.1", "team/api", glPorts(glPub(8080, 32768)), glLabels("SERVICE_check_http", "/health")),
			want: []wantService{{ID: "host1:api.1:8080", Name: "api", Address: glAdv, Port: 32768,
				Checks: []corpusCheck{glHTTP("host1:api.1:8080", "http://10.0.1.23:32768/health")}}},
		},
		{
			name: "label SERVICE_name wins over env SERVICE_NAME",
			doc:  "reference: keys are read from the environment first, then labels, so labels win; a key is lower-cased after the prefix",
			c: glC("api.1", "team/api", glPorts(glPub(8080, 32768)),
				glEnv("SERVICE_NAME", "from-env"), glLabels("SERVICE_name", "from-label")),
			want: []wantService{{ID: "host1:api.1:8080", Name: "from-label", Address: glAdv, Port: 32768}},
		},

		// Checks.
		{
			name: "docs example: HTTP check with interval, timeout and method",
			doc:  "backends.md: SERVICE_80_CHECK_HTTP=/health/endpoint/path, SERVICE_80_CHECK_INTERVAL=15s, SERVICE_80_CHECK_TIMEOUT=1s, SERVICE_80_CHECK_HTTP_METHOD=HEAD",
			c: glC("web.1", "team/web", glPorts(glPub(80, 8080)), glLabels(
				"SERVICE_80_CHECK_HTTP", "/health/endpoint/path", "SERVICE_80_CHECK_INTERVAL", "15s",
				"SERVICE_80_CHECK_TIMEOUT", "1s", "SERVICE_80_CHECK_HTTP_METHOD", "HEAD")),
			want: []wantService{{ID: "host1:web.1:80", Name: "web", Address: glAdv, Port: 8080,
				Checks: []corpusCheck{glWith(glHTTP("host1:web.1:80", "http://10.0.1.23:8080/health/endpoint/path"), func(c *corpusCheck) {
					c.Interval, c.Timeout, c.Method = 15*s, 1*s, "HEAD"
				})}}},
		},
		{
			name: "HTTP check defaults: 10s interval, no timeout, no method, ID service:<service ID>",
			doc:  "backends.md: If its the only service, you can also use SERVICE_CHECK_HTTP; The default interval for any non-TTL check is 10s; reference: No timeout is sent unless given; Consul names it service:<service ID>",
			c:    glC("api.1", "team/api", glPorts(glPub(8080, 32768)), glLabels("SERVICE_CHECK_HTTP", "/health")),
			want: []wantService{{ID: "host1:api.1:8080", Name: "api", Address: glAdv, Port: 32768,
				Checks: []corpusCheck{glHTTP("host1:api.1:8080", "http://10.0.1.23:32768/health")}}},
		},
		{
			name: "docs example: HTTPS check with interval, timeout and method",
			doc:  "backends.md: SERVICE_443_CHECK_HTTPS=/health/endpoint/path, SERVICE_443_CHECK_INTERVAL=15s, SERVICE_443_CHECK_TIMEOUT=1s, SERVICE_443_CHECK_HTTPS_METHOD=HEAD",
			c: glC("web.1", "team/web", glPorts(glPub(443, 8443)), glLabels(
				"SERVICE_443_CHECK_HTTPS", "/health/endpoint/path", "SERVICE_443_CHECK_INTERVAL", "15s",
				"SERVICE_443_CHECK_TIMEOUT", "1s", "SERVICE_443_CHECK_HTTPS_METHOD", "HEAD")),
			want: []wantService{{ID: "host1:web.1:443", Name: "web", Address: glAdv, Port: 8443,
				Checks: []corpusCheck{glWith(glHTTPS("host1:web.1:443", "https://10.0.1.23:8443/health/endpoint/path"), func(c *corpusCheck) {
					c.Interval, c.Timeout, c.Method = 15*s, 1*s, "HEAD"
				})}}},
		},
		{
			name: "HTTPS check defaults",
			doc:  "reference: SERVICE_CHECK_HTTPS=/path: HTTPS, same; SERVICE_CHECK_INTERVAL (default 10s); No timeout is sent unless given",
			c:    glC("web.1", "team/web", glPorts(glPub(443, 8443)), glLabels("SERVICE_CHECK_HTTPS", "/ready")),
			want: []wantService{{ID: "host1:web.1:443", Name: "web", Address: glAdv, Port: 8443,
				Checks: []corpusCheck{glHTTPS("host1:web.1:443", "https://10.0.1.23:8443/ready")}}},
		},
		{
			name: "docs example: TCP check with interval and timeout",
			doc:  "backends.md: SERVICE_443_CHECK_TCP=true, SERVICE_443_CHECK_INTERVAL=15s, SERVICE_443_CHECK_TIMEOUT=3s",
			c: glC("web.1", "team/web", glPorts(glPub(443, 8443)), glLabels(
				"SERVICE_443_CHECK_TCP", "true", "SERVICE_443_CHECK_INTERVAL", "15s", "SERVICE_443_CHECK_TIMEOUT", "3s")),
			want: []wantService{{ID: "host1:web.1:443", Name: "web", Address: glAdv, Port: 8443,
				Checks: []corpusCheck{glWith(glTCP("host1:web.1:443", "10.0.1.23:8443"), func(c *corpusCheck) { c.Interval, c.Timeout = 15*s, 3*s })}}},
		},
		{
			name: "TCP check: any non-empty value turns it on",
			doc:  "reference: SERVICE_CHECK_TCP=<any>: TCP <ip>:<port>",
			c:    glC("db.1", "postgres:16", glPorts(glPub(5432, 5432)), glLabels("SERVICE_CHECK_TCP", "yes")),
			want: []wantService{{ID: "host1:db.1:5432", Name: "postgres", Address: glAdv, Port: 5432,
				Checks: []corpusCheck{glTCP("host1:db.1:5432", "10.0.1.23:5432")}}},
		},
		{
			name: "TCP check: even false turns it on",
			doc:  "reference: SERVICE_CHECK_TCP=<any>: TCP <ip>:<port>",
			c:    glC("db.1", "postgres:16", glPorts(glPub(5432, 5432)), glEnv("SERVICE_CHECK_TCP", "false")),
			want: []wantService{{ID: "host1:db.1:5432", Name: "postgres", Address: glAdv, Port: 5432,
				Checks: []corpusCheck{glTCP("host1:db.1:5432", "10.0.1.23:5432")}}},
		},
		{
			name: "docs example: gRPC check with TLS and skip verify",
			doc:  "backends.md: SERVICE_CHECK_GRPC=true, SERVICE_CHECK_INTERVAL=5s, SERVICE_CHECK_TIMEOUT=3s, SERVICE_CHECK_GRPC_USE_TLS=true, SERVICE_CHECK_TLS_SKIP_VERIFY=true",
			c: glC("rpc.1", "team/rpc", glPorts(glPub(50051, 50051)), glLabels(
				"SERVICE_CHECK_GRPC", "true", "SERVICE_CHECK_INTERVAL", "5s", "SERVICE_CHECK_TIMEOUT", "3s",
				"SERVICE_CHECK_GRPC_USE_TLS", "true", "SERVICE_CHECK_TLS_SKIP_VERIFY", "true")),
			want: []wantService{{ID: "host1:rpc.1:50051", Name: "rpc", Address: glAdv, Port: 50051,
				Checks: []corpusCheck{glWith(glGRPC("host1:rpc.1:50051", "10.0.1.23:50051"), func(c *corpusCheck) {
					c.Interval, c.Timeout, c.GRPCUseTLS, c.TLSSkipVerify = 5*s, 3*s, true, true
				})}}},
		},
		{
			name: "gRPC check defaults: plain, 10s, no timeout",
			doc:  "backends.md: SERVICE_CHECK_GRPC_USE_TLS=true # optional, Consul default uses false; SERVICE_CHECK_TIMEOUT # optional, Consul default; The default interval for any non-TTL check is 10s",
			c:    glC("rpc.1", "team/rpc", glPorts(glPub(50051, 50051)), glLabels("SERVICE_CHECK_GRPC", "true")),
			want: []wantService{{ID: "host1:rpc.1:50051", Name: "rpc", Address: glAdv, Port: 50051,
				Checks: []corpusCheck{glGRPC("host1:rpc.1:50051", "10.0.1.23:50051")}}},
		},
		{
			name: "gRPC check: any non-empty values turn gRPC, TLS and skip verify on",
			doc:  "reference: SERVICE_CHECK_GRPC=<any>: gRPC <ip>:<port>; SERVICE_CHECK_GRPC_USE_TLS=<any> and then SERVICE_CHECK_TLS_SKIP_VERIFY=<any>",
			c: glC("rpc.1", "team/rpc", glPorts(glPub(50051, 50051)), glLabels(
				"SERVICE_CHECK_GRPC", "on", "SERVICE_CHECK_GRPC_USE_TLS", "yes", "SERVICE_CHECK_TLS_SKIP_VERIFY", "x")),
			want: []wantService{{ID: "host1:rpc.1:50051", Name: "rpc", Address: glAdv, Port: 50051,
				Checks: []corpusCheck{glWith(glGRPC("host1:rpc.1:50051", "10.0.1.23:50051"), func(c *corpusCheck) { c.GRPCUseTLS, c.TLSSkipVerify = true, true })}}},
		},
		{
			name: "gRPC check: skip verify without TLS has no effect",
			doc:  "reference: SERVICE_CHECK_GRPC_USE_TLS=<any> and then SERVICE_CHECK_TLS_SKIP_VERIFY=<any>",
			c: glC("rpc.1", "team/rpc", glPorts(glPub(50051, 50051)), glLabels(
				"SERVICE_CHECK_GRPC", "true", "SERVICE_CHECK_TLS_SKIP_VERIFY", "true")),
			want: []wantService{{ID: "host1:rpc.1:50051", Name: "rpc", Address: glAdv, Port: 50051,
				Checks: []corpusCheck{glGRPC("host1:rpc.1:50051", "10.0.1.23:50051")}}},
		},
		{
			name: "TTL check: ID service:<service ID>, no interval",
			doc:  "backends.md: SERVICE_CHECK_TTL=30s; reference: applications that heartbeat a TTL check call PUT /v1/agent/check/pass/service:<service ID>",
			c:    glC("worker.1", "team/worker", glPorts(glPub(9000, 9000)), glLabels("SERVICE_CHECK_TTL", "30s")),
			want: []wantService{{ID: "host1:worker.1:9000", Name: "worker", Address: glAdv, Port: 9000,
				Checks: []corpusCheck{glTTL("host1:worker.1:9000", 30*s)}}},
		},
		{
			name: "TTL check ID follows SERVICE_ID",
			doc:  "reference: the check is embedded in the service registration, so Consul names it service:<service ID>",
			c:    glC("worker.1", "team/worker", glPorts(glPub(9000, 9000)), glLabels("SERVICE_ID", "worker-a", "SERVICE_CHECK_TTL", "1m")),
			want: []wantService{{ID: "worker-a", Name: "worker", Address: glAdv, Port: 9000,
				Checks: []corpusCheck{glTTL("worker-a", time.Minute)}}},
		},
		{
			name: "SERVICE_CHECK_INITIAL_STATUS",
			doc:  "backends.md: By default when a service is registered against Consul, the state is set to critical. You can specify the initial health check status. SERVICE_CHECK_INITIAL_STATUS=passing",
			c:    glC("api.1", "team/api", glPorts(glPub(8080, 32768)), glLabels("SERVICE_CHECK_HTTP", "/health", "SERVICE_CHECK_INITIAL_STATUS", "passing")),
			want: []wantService{{ID: "host1:api.1:8080", Name: "api", Address: glAdv, Port: 32768,
				Checks: []corpusCheck{glWith(glHTTP("host1:api.1:8080", "http://10.0.1.23:32768/health"), func(c *corpusCheck) { c.InitialStatus = health.Passing })}}},
		},
		{
			name: "SERVICE_CHECK_DEREGISTER_AFTER",
			doc:  "backends.md: Consul can deregister a service if the check is in the critical state for more than a configurable amount of time. SERVICE_CHECK_DEREGISTER_AFTER=10m",
			c:    glC("api.1", "team/api", glPorts(glPub(8080, 32768)), glLabels("SERVICE_CHECK_HTTP", "/health", "SERVICE_CHECK_DEREGISTER_AFTER", "10m")),
			want: []wantService{{ID: "host1:api.1:8080", Name: "api", Address: glAdv, Port: 32768,
				Checks: []corpusCheck{glWith(glHTTP("host1:api.1:8080", "http://10.0.1.23:32768/health"), func(c *corpusCheck) { c.DeregisterAfter = 10 * time.Minute })}}},
		},
		{
			name: "one check: HTTP before HTTPS",
			doc:  "reference: Checks (one per service at most, first match in this order): HTTP, HTTPS, CMD/SCRIPT, TTL, TCP, GRPC",
			c:    glC("api.1", "team/api", glPorts(glPub(8080, 32768)), glLabels("SERVICE_CHECK_HTTPS", "/secure", "SERVICE_CHECK_HTTP", "/health")),
			want: []wantService{{ID: "host1:api.1:8080", Name: "api", Address: glAdv, Port: 32768,
				Checks: []corpusCheck{glHTTP("host1:api.1:8080", "http://10.0.1.23:32768/health")}}},
		},
		{
			name: "one check: HTTPS before TTL",
			doc:  "reference: Checks (one per service at most, first match in this order): HTTP, HTTPS, CMD/SCRIPT, TTL, TCP, GRPC",
			c:    glC("api.1", "team/api", glPorts(glPub(8080, 32768)), glLabels("SERVICE_CHECK_TTL", "30s", "SERVICE_CHECK_HTTPS", "/secure")),
			want: []wantService{{ID: "host1:api.1:8080", Name: "api", Address: glAdv, Port: 32768,
				Checks: []corpusCheck{glHTTPS("host1:api.1:8080", "https://10.0.1.23:32768/secure")}}},
		},
		{
			name: "one check: TTL before TCP",
			doc:  "reference: Checks (one per service at most, first match in this order): HTTP, HTTPS, CMD/SCRIPT, TTL, TCP, GRPC",
			c:    glC("api.1", "team/api", glPorts(glPub(8080, 32768)), glLabels("SERVICE_CHECK_TCP", "true", "SERVICE_CHECK_TTL", "30s")),
			want: []wantService{{ID: "host1:api.1:8080", Name: "api", Address: glAdv, Port: 32768,
				Checks: []corpusCheck{glTTL("host1:api.1:8080", 30*s)}}},
		},
		{
			name: "one check: TCP before gRPC",
			doc:  "reference: Checks (one per service at most, first match in this order): HTTP, HTTPS, CMD/SCRIPT, TTL, TCP, GRPC",
			c:    glC("api.1", "team/api", glPorts(glPub(8080, 32768)), glLabels("SERVICE_CHECK_GRPC", "true", "SERVICE_CHECK_TCP", "true")),
			want: []wantService{{ID: "host1:api.1:8080", Name: "api", Address: glAdv, Port: 32768,
				Checks: []corpusCheck{glTCP("host1:api.1:8080", "10.0.1.23:32768")}}},
		},
		{
			name: "per-port check key wins over the container-level one",
			doc:  "reference: SERVICE_<port>_<KEY> applies to that container port only and wins over SERVICE_<KEY>",
			c:    glC("api.1", "team/api", glPorts(glPub(8080, 32768)), glLabels("SERVICE_CHECK_HTTP", "/generic", "SERVICE_8080_CHECK_HTTP", "/specific")),
			want: []wantService{{ID: "host1:api.1:8080", Name: "api", Address: glAdv, Port: 32768,
				Checks: []corpusCheck{glHTTP("host1:api.1:8080", "http://10.0.1.23:32768/specific")}}},
		},
		{
			name: "per-port keys merge key by key before the check order applies",
			doc:  "reference: SERVICE_<port>_<KEY> ... wins over SERVICE_<KEY> (per key); Checks: one per service at most, first match in this order: HTTP ... TTL",
			c:    glC("api.1", "team/api", glPorts(glPub(8080, 32768)), glLabels("SERVICE_CHECK_HTTP", "/health", "SERVICE_8080_CHECK_TTL", "30s")),
			want: []wantService{{ID: "host1:api.1:8080", Name: "api", Address: glAdv, Port: 32768,
				Checks: []corpusCheck{glHTTP("host1:api.1:8080", "http://10.0.1.23:32768/health")}}},
		},
		{
			name: "a container-level check applies to every port",
			doc:  "services.md: Metadata variables without a port in the name are used as the default for all services",
			c:    glC("web.1", "team/web", glPorts(glPub(80, 8000), glPub(443, 4443)), glLabels("SERVICE_CHECK_TCP", "true")),
			want: []wantService{
				{ID: "host1:web.1:80", Name: "web-80", Address: glAdv, Port: 8000, Checks: []corpusCheck{glTCP("host1:web.1:80", "10.0.1.23:8000")}},
				{ID: "host1:web.1:443", Name: "web-443", Address: glAdv, Port: 4443, Checks: []corpusCheck{glTCP("host1:web.1:443", "10.0.1.23:4443")}},
			},
		},
		{
			name:         "SERVICE_CHECK_SCRIPT is refused",
			doc:          "backends.md: SERVICE_CHECK_SCRIPT=curl --silent --fail example.com",
			c:            glC("api.1", "team/api", glPorts(glPub(8080, 32768)), glLabels("SERVICE_CHECK_SCRIPT", "curl --silent --fail example.com")),
			wantErrorKey: "SERVICE_CHECK_SCRIPT",
			differs:      "script checks keep the service out with an error (they would run commands on the Consul agent's host)",
		},
		{
			name:         "SERVICE_CHECK_CMD is refused",
			doc:          "reference: SERVICE_CHECK_CMD, SERVICE_CHECK_SCRIPT: script checks (the project refuses these, by design)",
			c:            glC("api.1", "team/api", glPorts(glPub(8080, 32768)), glLabels("SERVICE_CHECK_CMD", "/bin/health")),
			wantErrorKey: "SERVICE_CHECK_CMD",
			differs:      "script checks keep the service out with an error (they would run commands on the Consul agent's host)",
		},
		{
			name:         "a bad check interval keeps the service out",
			doc:          "reference: SERVICE_CHECK_INTERVAL (default 10s) for HTTP(S), TCP, gRPC and script checks",
			c:            glC("api.1", "team/api", glPorts(glPub(8080, 32768)), glLabels("SERVICE_CHECK_HTTP", "/health", "SERVICE_CHECK_INTERVAL", "often")),
			wantErrorKey: "SERVICE_CHECK_INTERVAL",
			differs:      "an invalid check value keeps the service out with an error (gliderlabs sends it and Consul refuses the whole registration: same effect)",
		},
		{
			name:         "a bad TTL keeps the service out",
			doc:          "backends.md: SERVICE_CHECK_TTL=30s",
			c:            glC("worker.1", "team/worker", glPorts(glPub(9000, 9000)), glLabels("SERVICE_CHECK_TTL", "soon")),
			wantErrorKey: "SERVICE_CHECK_TTL",
			differs:      "an invalid check value keeps the service out with an error (gliderlabs sends it and Consul refuses the whole registration: same effect)",
		},
		{
			name:         "an HTTP check method that writes keeps the service out",
			doc:          "reference: SERVICE_CHECK_HTTP=/path: HTTP GET http://<ip>:<port>/path; SERVICE_CHECK_HTTP_METHOD sets the method",
			c:            glC("api.1", "team/api", glPorts(glPub(8080, 32768)), glLabels("SERVICE_CHECK_HTTP", "/health", "SERVICE_CHECK_HTTP_METHOD", "POST")),
			wantErrorKey: "SERVICE_CHECK_HTTP_METHOD",
			differs:      "a check method other than GET, HEAD or OPTIONS keeps the service out with an error (Consul sends the check from the host, where a PUT fetches an instance metadata token)",
		},
		{
			name:         "an HTTPS check method that writes keeps the service out",
			doc:          "reference: SERVICE_CHECK_HTTPS=/path: HTTPS, same; SERVICE_CHECK_HTTPS_METHOD",
			c:            glC("web.1", "team/web", glPorts(glPub(443, 8443)), glLabels("SERVICE_CHECK_HTTPS", "/ready", "SERVICE_CHECK_HTTPS_METHOD", "PUT")),
			wantErrorKey: "SERVICE_CHECK_HTTPS_METHOD",
			differs:      "a check method other than GET, HEAD or OPTIONS keeps the service out with an error (Consul sends the check from the host, where a PUT fetches an instance metadata token)",
		},
		{
			name: "a Docker HEALTHCHECK is mirrored",
			doc:  "reference: Checks (one per service at most) -- gliderlabs ignores a Docker HEALTHCHECK",
			c: glC("api.1", "team/api", glPorts(glPub(8080, 32768)), func(c *Container) {
				c.HasHealthcheck, c.HealthStatus = true, "starting"
			}),
			want: []wantService{{ID: "host1:api.1:8080", Name: "api", Address: glAdv, Port: 32768,
				Checks: []corpusCheck{glMirror("host1:api.1:8080")}}},
			differs: "a Docker HEALTHCHECK adds a TTL check mirroring it, ID service:<id>:health",
		},
		{
			name: "a Docker HEALTHCHECK is a second check next to the label-defined one",
			doc:  "reference: Checks (one per service at most, first match in this order); Consul names it service:<service ID>",
			c: glC("api.1", "team/api", glPorts(glPub(8080, 32768)), glLabels("SERVICE_CHECK_HTTP", "/health"), func(c *Container) {
				c.HasHealthcheck, c.HealthStatus = true, "healthy"
			}),
			want: []wantService{{ID: "host1:api.1:8080", Name: "api", Address: glAdv, Port: 32768,
				Checks: []corpusCheck{glHTTP("host1:api.1:8080", "http://10.0.1.23:32768/health"), glMirror("host1:api.1:8080")}}},
			differs: "a Docker HEALTHCHECK adds a second TTL check mirroring it, ID service:<id>:health",
		},

		// Flags that live in Desired, and network modes.
		{
			name:    "a port published on one host address is registered there, whatever -ip says",
			doc:     "reference: -ip: IP for ports mapped to the host (wins over the binding's host IP); run.md: -ip <ip address>: Force IP address used for registering services",
			c:       glC("api.1", "team/api", glPorts(Port{Port: 8080, Proto: "tcp", HostIP: "192.168.7.7", HostPort: 32768})),
			want:    []wantService{{ID: "host1:api.1:8080", Name: "api", Address: "192.168.7.7", Port: 32768}},
			differs: "a port Docker published on one host address only accepts connections there; -ip's address would refuse them",
		},
		{
			name: "-internal: container IP and exposed ports",
			doc:  "services.md: If you use the -internal option, Registrator will use the exposed port and Docker-assigned internal IP of the container; run.md: -internal: Use exposed ports instead of published ports",
			c:    glC("api.1", "team/api", glPorts(glPub(80, 8000), glExposed(9000))),
			opts: glInternal,
			want: []wantService{
				{ID: "host1:api.1:80", Name: "api-80", Address: glCIP, Port: 80},
				{ID: "host1:api.1:9000", Name: "api-9000", Address: glCIP, Port: 9000},
			},
		},
		{
			name: "-internal: a check probes the container IP and port",
			doc:  "reference: SERVICE_CHECK_HTTP=/path: HTTP GET http://<ip>:<port>/path; -internal: register the container IP and exposed port",
			c:    glC("api.1", "team/api", glPorts(glExposed(8080)), glLabels("SERVICE_CHECK_HTTP", "/health")),
			opts: glInternal,
			want: []wantService{{ID: "host1:api.1:8080", Name: "api", Address: glCIP, Port: 8080,
				Checks: []corpusCheck{glHTTP("host1:api.1:8080", "http://172.17.0.2:8080/health")}}},
		},
		{
			name:        "-explicit: a container without a service name is skipped",
			doc:         "reference: -explicit: only containers that have a service name (SERVICE_NAME or SERVICE_<port>_NAME)",
			c:           glC("api.1", "team/api", glPorts(glPub(8080, 32768)), glLabels("SERVICE_TAGS", "x")),
			opts:        glExplicit,
			wantSkipped: true,
		},
		{
			name: "-explicit: SERVICE_NAME registers",
			doc:  "reference: -explicit: only containers that have a service name (SERVICE_NAME or SERVICE_<port>_NAME)",
			c:    glC("api.1", "team/api", glPorts(glPub(8080, 32768)), glLabels("SERVICE_NAME", "api")),
			opts: glExplicit,
			want: []wantService{{ID: "host1:api.1:8080", Name: "api", Address: glAdv, Port: 32768}},
		},
		{
			name: "-explicit: SERVICE_<port>_NAME registers",
			doc:  "reference: -explicit: only containers that have a service name (SERVICE_NAME or SERVICE_<port>_NAME)",
			c:    glC("api.1", "team/api", glPorts(glPub(8080, 32768)), glLabels("SERVICE_8080_NAME", "api-http")),
			opts: glExplicit,
			want: []wantService{{ID: "host1:api.1:8080", Name: "api-http", Address: glAdv, Port: 32768}},
		},
		{
			name: "-explicit: a name from the environment registers",
			doc:  "reference: -explicit: only containers that have a service name; services.md: environment variables or labels",
			c:    glC("api.1", "team/api", glPorts(glPub(8080, 32768)), glEnv("SERVICE_NAME", "api")),
			opts: glExplicit,
			want: []wantService{{ID: "host1:api.1:8080", Name: "api", Address: glAdv, Port: 32768}},
		},
		{
			name: "-explicit: a lower-case SERVICE_name registers",
			doc:  "reference: -explicit: only containers that have a service name; a key is lower-cased after the prefix (SERVICE_name = SERVICE_NAME)",
			c:    glC("api.1", "team/api", glPorts(glPub(8080, 32768)), glLabels("SERVICE_name", "api")),
			opts: glExplicit,
			want: []wantService{{ID: "host1:api.1:8080", Name: "api", Address: glAdv, Port: 32768}},
		},
		{
			name: "-useIpFromLabel: the label's IP is the address",
			doc:  "run.md: -useIpFromLabel <label>: Uses the IP address stored in the given label, which is assigned to a container, for registration with Consul",
			c:    glC("api.1", "team/api", glPorts(glPub(8080, 32768)), glLabels("com.example.ip", "192.168.50.7")),
			opts: glIPFromLabel("com.example.ip"),
			want: []wantService{{ID: "host1:api.1:8080", Name: "api", Address: "192.168.50.7", Port: 32768}},
		},
		{
			name: "-useIpFromLabel: a CIDR gives the part before /",
			doc:  "reference: -useIpFromLabel: name of a container label whose value (an IP, or CIDR: the part before /) is the service address",
			c:    glC("api.1", "team/api", glPorts(glPub(8080, 32768)), glLabels("com.example.ip", "192.168.50.7/24")),
			opts: glIPFromLabel("com.example.ip"),
			want: []wantService{{ID: "host1:api.1:8080", Name: "api", Address: "192.168.50.7", Port: 32768}},
		},
		{
			name: "-useIpFromLabel: checks probe that address",
			doc:  "reference: -useIpFromLabel: ... is the service address; SERVICE_CHECK_TCP=<any>: TCP <ip>:<port>",
			c:    glC("api.1", "team/api", glPorts(glPub(8080, 32768)), glLabels("com.example.ip", "192.168.50.7", "SERVICE_CHECK_TCP", "true")),
			opts: glIPFromLabel("com.example.ip"),
			want: []wantService{{ID: "host1:api.1:8080", Name: "api", Address: "192.168.50.7", Port: 32768,
				Checks: []corpusCheck{glTCP("host1:api.1:8080", "192.168.50.7:32768")}}},
		},
		{
			name:         "-useIpFromLabel: a link-local address keeps the container out",
			doc:          "run.md: -useIpFromLabel <label>: Uses the IP address stored in the given label, which is assigned to a container, for registration with Consul",
			c:            glC("api.1", "team/api", glPorts(glPub(8080, 32768)), glLabels("com.example.ip", "169.254.169.254", "SERVICE_CHECK_HTTP", "/latest/meta-data/")),
			opts:         glIPFromLabel("com.example.ip"),
			wantErrorKey: "com.example.ip",
			wantSkipped:  true,
			differs:      "a -useIpFromLabel address that is the host's (link-local, instance metadata, unspecified, multicast, loopback) keeps the container out with an error: the host's agent would probe it",
		},
		{
			name: "container:<id> network mode: the other container's IP and the exposed ports",
			doc:  "reference: container:<id> network mode: the address is the other container's IP",
			c: glC("sidecar.1", "team/sidecar", glPorts(glExposed(9000)), func(c *Container) {
				c.NetworkMode, c.IPs = "container:0123abcd", []netip.Addr{netip.MustParseAddr("172.17.0.9")}
			}),
			want: []wantService{{ID: "host1:sidecar.1:9000", Name: "sidecar", Address: "172.17.0.9", Port: 9000}},
		},
		{
			name: "host network: exposed ports count as published on the same port",
			doc:  "reference: a container in host network mode has its exposed ports treated as published on the same port",
			c: glC("app.1", "team/app", glPorts(glExposed(8080)), func(c *Container) {
				c.NetworkMode, c.IPs = "host", nil
			}),
			want: []wantService{{ID: "host1:app.1:8080", Name: "app", Address: glAdv, Port: 8080}},
		},
		{
			name: "host network: several exposed ports get -<port>",
			doc:  "services.md: docker run --net=host -p 8080:8080 -p 8443:8443; reference: host network mode: exposed ports treated as published on the same port; several ports: -<port> appended",
			c: glC("app.1", "team/app", glPorts(glExposed(8080), glExposed(8443)), func(c *Container) {
				c.NetworkMode, c.IPs = "host", nil
			}),
			want: []wantService{
				{ID: "host1:app.1:8080", Name: "app-8080", Address: glAdv, Port: 8080},
				{ID: "host1:app.1:8443", Name: "app-8443", Address: glAdv, Port: 8443},
			},
		},
		{
			name:        "unpublished ports are skipped",
			doc:         "services.md: By default, you can expect Registrator to pick up services from containers that have explicitly published ports; reference: Without -internal, a port not published on the host is skipped",
			c:           glC("api.1", "team/api", glPorts(glExposed(8080), glExposed(9000))),
			wantSkipped: true,
		},
	}
	glRunCorpus(t, rows)
}

// TestGliderlabsCorpusFlags states the flag semantics Desired sees through the container rather than
// Options: -tags is rendered per container over its docker inspect document (Container.InspectTags).
func TestGliderlabsCorpusFlags(t *testing.T) {
	t.Parallel()
	forced := func(tags ...string) func(*Container) { return func(c *Container) { c.InspectTags = tags } }
	rows := []corpusRow{
		{
			name: "-tags are appended to SERVICE_TAGS",
			doc:  "run.md: -tags <tags>: Force comma-separated tags on all registered services; reference: comma list appended to every service's tags",
			c:    glC("api.1", "team/api", glPorts(glPub(8080, 32768)), glLabels("SERVICE_TAGS", "www"), forced("team-a", "prod")),
			want: []wantService{{ID: "host1:api.1:8080", Name: "api", Address: glAdv, Port: 32768, Tags: []string{"www", "team-a", "prod"}}},
		},
		{
			name: "-tags on every service, UDP included",
			doc:  "run.md: -tags <tags>: Force comma-separated tags on all registered services; reference: UDP ports: a tag udp added",
			c:    glC("dns.0", "coredns/coredns", glPorts(glPub(53, 5353), glPubUDP(53, 5353)), forced("prod")),
			want: []wantService{
				{ID: "host1:dns.0:53", Name: "coredns-53", Address: glAdv, Port: 5353, Tags: []string{"prod"}},
				{ID: "host1:dns.0:53:udp", Name: "coredns-53", Address: glAdv, Port: 5353, Tags: []string{"prod", "udp"}},
			},
		},
	}
	glRunCorpus(t, rows)
}

func glRunCorpus(t *testing.T, rows []corpusRow) {
	t.Helper()
	seen := map[string]bool{}
	for _, row := range rows {
		if seen[row.name] {
			t.Fatalf("row %q appears twice", row.name)
		}
		seen[row.name] = true
		t.Run(row.name, func(t *testing.T) {
			t.Parallel()
			o := glOptions()
			if row.opts != nil {
				row.opts(&o)
			}
			r := Desired(row.c, o)
			fail := func(format string, args ...any) {
				t.Helper()
				msg := fmt.Sprintf(format, args...)
				if row.differs != "" {
					msg += "\n  (deliberate difference: " + row.differs + ")"
				}
				t.Errorf("row %q\n  doc: %s\n  %s", row.name, row.doc, msg)
			}
			for _, s := range r.Services {
				for _, c := range s.Checks {
					if (c.Kind == health.KindHTTP || c.Kind == health.KindHTTPS) && !c.DisableRedirects {
						fail("check %s follows redirects (deliberate difference for every row: HTTP checks never do)", c.ID)
					}
				}
			}

			var errs []Problem
			for _, p := range r.Problems {
				if p.Severity == SeverityError {
					errs = append(errs, p)
				}
			}
			if row.wantErrorKey != "" {
				if !slices.ContainsFunc(errs, func(p Problem) bool { return p.Key == row.wantErrorKey }) {
					fail("want an error Problem on %s; problems: %v", row.wantErrorKey, r.Problems)
				}
			} else if len(errs) > 0 {
				fail("want no error Problem; got %v", errs)
			}

			if row.wantSkipped {
				if len(r.Services) > 0 || r.Skipped == "" {
					fail("want the container skipped (Result.Skipped set, no services); got Skipped=%q, services:\n%s",
						r.Skipped, glDescribe(glProject(r.Services, row.differs != "")))
				}
				return
			}
			got := glProject(r.Services, row.differs != "")
			want := slices.Clone(row.want)
			glSort(want)
			if len(got) != len(want) {
				fail("got %d services, want %d (Skipped=%q, problems %v)\n  got:\n%s\n  want:\n%s",
					len(got), len(want), r.Skipped, r.Problems, glDescribe(got), glDescribe(want))
				return
			}
			for i := range want {
				for _, d := range glDiff(got[i], want[i]) {
					fail("service %s: %s", want[i].ID, d)
				}
			}
		})
	}
}

// glProject keeps what the corpus compares: user Meta (without the project's own keys and,
// unless the row states that difference, without gliderlabs's check_* keys) and the check fields.
func glProject(ss []Service, keepCheckMeta bool) []wantService {
	out := make([]wantService, 0, len(ss))
	for _, s := range ss {
		w := wantService{Name: s.Name, ID: s.ID, Address: s.Address, Port: s.Port, Tags: s.Tags}
		for k, v := range s.Meta {
			if slices.Contains(glProjectMetaKeys, k) || (!keepCheckMeta && strings.HasPrefix(k, "check_")) {
				continue
			}
			if w.Meta == nil {
				w.Meta = map[string]string{}
			}
			w.Meta[k] = v
		}
		for _, c := range s.Checks {
			w.Checks = append(w.Checks, corpusCheck{ID: c.ID, Kind: c.Kind, HTTP: c.HTTP, Method: c.Method, TCP: c.TCP,
				GRPC: c.GRPC, GRPCUseTLS: c.GRPCUseTLS, TLSSkipVerify: c.TLSSkipVerify, Interval: c.Interval,
				Timeout: c.Timeout, TTL: c.TTL, DeregisterAfter: c.DeregisterAfter, InitialStatus: c.InitialStatus})
		}
		out = append(out, w)
	}
	glSort(out)
	return out
}

func glSort(ws []wantService) {
	slices.SortFunc(ws, func(a, b wantService) int {
		if c := strings.Compare(a.ID, b.ID); c != 0 {
			return c
		}
		return a.Port - b.Port
	})
}

func glDiff(got, want wantService) []string {
	var d []string
	field := func(name string, g, w any) {
		if fmt.Sprint(g) != fmt.Sprint(w) {
			d = append(d, fmt.Sprintf("%s: got %q, want %q", name, fmt.Sprint(g), fmt.Sprint(w)))
		}
	}
	field("ID", got.ID, want.ID)
	field("Name", got.Name, want.Name)
	field("Address", got.Address, want.Address)
	field("Port", got.Port, want.Port)
	field("Tags (as a set)", glSortedTags(got.Tags), glSortedTags(want.Tags))
	field("user Meta", glMetaString(got.Meta), glMetaString(want.Meta))
	gc, wc := glSortedChecks(got.Checks), glSortedChecks(want.Checks)
	if len(gc) != len(wc) {
		d = append(d, fmt.Sprintf("checks: got %d, want %d\n    got:  %s\n    want: %s", len(gc), len(wc), glChecksString(gc), glChecksString(wc)))
		return d
	}
	for i := range wc {
		if gc[i] != wc[i] {
			d = append(d, fmt.Sprintf("check %d:\n    got:  %s\n    want: %s", i, glCheckString(gc[i]), glCheckString(wc[i])))
		}
	}
	return d
}

func glSortedTags(tags []string) []string {
	out := slices.Clone(tags)
	slices.Sort(out)
	if out == nil {
		out = []string{}
	}
	return out
}

func glMetaString(m map[string]string) string {
	var parts []string
	for k, v := range m {
		parts = append(parts, k+"="+v)
	}
	slices.Sort(parts)
	return "{" + strings.Join(parts, " ") + "}"
}

func glSortedChecks(cs []corpusCheck) []corpusCheck {
	out := slices.Clone(cs)
	slices.SortFunc(out, func(a, b corpusCheck) int { return strings.Compare(a.ID, b.ID) })
	return out
}

func glCheckString(c corpusCheck) string {
	return fmt.Sprintf("{ID:%s Kind:%s HTTP:%q Method:%q TCP:%q GRPC:%q GRPCUseTLS:%t TLSSkipVerify:%t Interval:%v Timeout:%v TTL:%v DeregisterAfter:%v InitialStatus:%q}",
		c.ID, c.Kind, c.HTTP, c.Method, c.TCP, c.GRPC, c.GRPCUseTLS, c.TLSSkipVerify, c.Interval, c.Timeout, c.TTL, c.DeregisterAfter, c.InitialStatus)
}

func glChecksString(cs []corpusCheck) string {
	var parts []string
	for _, c := range cs {
		parts = append(parts, glCheckString(c))
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

func glDescribe(ws []wantService) string {
	if len(ws) == 0 {
		return "    (none)"
	}
	var b strings.Builder
	for _, w := range ws {
		fmt.Fprintf(&b, "    ID=%s Name=%s %s:%d Tags=%v Meta=%s Checks=%s\n", w.ID, w.Name, w.Address, w.Port,
			glSortedTags(w.Tags), glMetaString(w.Meta), glChecksString(glSortedChecks(w.Checks)))
	}
	return strings.TrimRight(b.String(), "\n")
}
