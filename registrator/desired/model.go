package desired

import (
	"maps"
	"net"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"time"

	"github.com/ecs-registrator/ecs-registrator/ecsmeta"
	"github.com/ecs-registrator/ecs-registrator/health"
)

// ExternalSource is the Meta["external-source"] value that marks a Consul service as owned by this daemon.
const ExternalSource = "ecs-registrator"

// Meta keys the daemon sets itself; labels cannot override them.
const (
	MetaExternalSource = "external-source"
	MetaContainerID    = "container-id"
	MetaContainerName  = "container-name"

	MetaECSCluster       = "ecs-cluster"
	MetaECSTaskARN       = "ecs-task-arn"
	MetaECSTaskFamily    = "ecs-task-family"
	MetaECSTaskRevision  = "ecs-task-revision"
	MetaECSService       = "ecs-service"
	MetaECSContainer     = "ecs-container"
	MetaAvailabilityZone = "availability-zone"
	MetaEC2InstanceID    = "ec2-instance-id"
	// MetaECSTags lists the -ecs-tag-meta tags that were looked up for the task (those it lacks
	// included), so that a restarted daemon need not ask again.
	MetaECSTags = "ecs-tags"
	// MetaChecks is a fingerprint of the service's check definitions: the agent's service list does
	// not show checks, and a changed definition must be re-registered.
	MetaChecks = "ecsr-checks"
)

// Consul's limits on service metadata (agent/structs: ValidateServiceMetadata).
const (
	maxMetaPairs    = 64
	maxMetaKeyLen   = 128
	maxMetaValueLen = 512
	maxNameLen      = 255 // longer names and IDs are certainly a templating accident
	maxDNSLabelLen  = 63
)

var (
	metaKeyRE = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)
	// Names and IDs end up in URL paths (/v1/agent/service/deregister/<id>, /v1/health/service/<name>).
	nameRE     = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)
	dnsLabelRE = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?$`)
	idRE       = regexp.MustCompile(`^[^/?#%\s]+$`)
	hostnameRE = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$`)
)

// Container is what the desired-state function needs to know about one container. FromInspect builds it
// from docker inspect; tests build it directly.
type Container struct {
	ID          string
	Name        string // without Docker's leading slash
	Image       string // as the container was created with, e.g. "registry/team/api:1.2"
	Labels      map[string]string
	Env         []string // KEY=VALUE
	Running     bool
	StartedAt   time.Time
	StopSignal  string // Config.StopSignal, may be empty
	NetworkMode string // "bridge", "host", "none", "container:<id>", or a user network name
	IPs         []netip.Addr
	Ports       []Port
	// Task is the container's ECS task, nil for a container ECS did not start.
	Task *ecsmeta.Task
	// HasHealthcheck is set when the image or run config defines a Docker HEALTHCHECK; HealthStatus is
	// Docker's view of it ("starting", "healthy", "unhealthy") and HealthOutput the last probe's output.
	HasHealthcheck bool
	HealthStatus   string
	HealthOutput   string
	// ExitCode is the last run's exit code, as inspect reports it for a container that is not running.
	ExitCode int
	// InspectTags are gliderlabs-mode -tags rendered over this container's docker inspect document
	// (see InspectTagTemplate); InspectTagsErr is why that failed, reported for this container only.
	InspectTags    []string
	InspectTagsErr error
}

// Port is one container port: exposed, and published when HostPort is set.
type Port struct {
	Port     int
	Proto    string // "tcp" or "udp"
	HostIP   string // the binding's host address: "", "0.0.0.0" and "::" mean all addresses
	HostPort int    // 0 when not published
}

// Options are the daemon-wide inputs of the desired-state function.
type Options struct {
	Node        string     // the Consul agent's node name, first part of default service IDs
	AdvertiseIP netip.Addr // the host address other hosts reach published ports on
	Internal    bool       // register container IP and container port instead
	OptIn       bool       // only containers that ask to be registered are
	Host        ecsmeta.Host
	Tags        TagTemplates  // extra tags for every service, rendered per container
	HealthTTL   time.Duration // TTL of the checks that mirror a container's own health
	// Gliderlabs selects gliderlabs/registrator's label semantics where they differ from this
	// daemon's (README: "Coming from gliderlabs/registrator").
	Gliderlabs bool
	// IPFromLabel names a container label whose value (an IP, or a CIDR) is the service address
	// (gliderlabs's -useIpFromLabel).
	IPFromLabel string
	// Policy is the registration policy: who may claim which names, IDs and the mesh. Nil allows
	// anything.
	Policy *Policy
}

// Service is one desired Consul service registration.
type Service struct {
	ID          string
	Name        string
	Tags        []string
	Address     string
	Port        int
	Meta        map[string]string
	ContainerID string
	// Maintenance, when set, is the note of the service's maintenance check: registered but never passing.
	Maintenance string
	// Checks are registered with the service; their fingerprint is Meta[MetaChecks].
	Checks []health.Check
	// Health is the state of the check that mirrors the container's own health, nil without one.
	Health *health.State
	// Connect is the service's Consul service mesh sidecar, nil when it is not in the mesh. Consul
	// registers the sidecar with the service and removes it with the service.
	Connect *Connect
}

// Equal reports whether two registrations are the same for Consul's purposes (nil and empty are alike).
func (s Service) Equal(o Service) bool {
	return s.ID == o.ID && s.Name == o.Name && s.Address == o.Address && s.Port == o.Port &&
		s.Maintenance == o.Maintenance && slices.Equal(s.Tags, o.Tags) && maps.Equal(s.Meta, o.Meta) &&
		s.Connect.Equal(o.Connect)
}

// SidecarSuffix ends the ID (and the name) Consul gives a service's sidecar proxy registration.
const SidecarSuffix = "-sidecar-proxy"

// Connect is the sidecar proxy registration of a service in Consul's service mesh. The sidecar shares
// the application's network namespace: it forwards to the application on 127.0.0.1:LocalPort and
// listens for other proxies on BindPort there, which other hosts reach at Address:Port.
type Connect struct {
	Address   string // where other proxies reach the sidecar's public listener
	Port      int
	BindPort  int // the public listener's port inside the namespace (Port, unless Docker publishes it on another)
	LocalPort int // the application's container port
	Upstreams []Upstream
}

// Upstream is a service the application reaches through its sidecar, on 127.0.0.1:LocalPort.
type Upstream struct {
	Name      string `json:"name"`
	LocalPort int    `json:"local_port"`
}

// Equal reports whether two sidecar definitions are the same (nil is no sidecar).
func (c *Connect) Equal(o *Connect) bool {
	if c == nil || o == nil {
		return c == o
	}
	return c.Address == o.Address && c.Port == o.Port && c.BindPort == o.BindPort && c.LocalPort == o.LocalPort &&
		slices.Equal(c.Upstreams, o.Upstreams)
}

// Addr is the sidecar's public address and port, IPv6-safe.
func (c *Connect) Addr() string { return net.JoinHostPort(c.Address, strconv.Itoa(c.Port)) }

// Addr is the service's address and port, IPv6-safe.
func (s Service) Addr() string { return net.JoinHostPort(s.Address, strconv.Itoa(s.Port)) }

// Severity says whether a problem kept something out of Consul.
type Severity string

const (
	SeverityError   Severity = "error"   // the service or container was kept out
	SeverityWarning Severity = "warning" // registered, but a value was dropped or adjusted
)

// Problem is bad input on one container, reported for that container only.
type Problem struct {
	Severity Severity `json:"severity"`
	Key      string   `json:"key,omitempty"` // the label or env key at fault, when there is one
	Message  string   `json:"message"`
	// Refused is what the registration policy refused (RefusedName, RefusedID, RefusedMesh), "" for
	// a problem of the container's own input.
	Refused string `json:"refused,omitempty"`
	// Diff is the pre-flight's kind of Difference (DiffIDSeveralPorts, DiffCheckTarget) when this
	// daemon keeps out what gliderlabs/registrator registered as asked, "" otherwise. It is set where
	// the problem is made, so that rewording a message does not change the pre-flight's report.
	Diff string `json:"-"`
}

func (p Problem) String() string {
	if p.Key == "" {
		return p.Message
	}
	return p.Key + ": " + p.Message
}

// Result is the desired state of one container.
type Result struct {
	Services []Service
	Problems []Problem
	// Skipped says in plain words why the container has no services, when it has none.
	Skipped string
}
