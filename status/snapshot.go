package status

import (
	"fmt"
	"time"
)

// Snapshot is everything the daemon knows at one moment: GET /v1/status. Its JSON is stable: fields
// are added, never renamed or removed.
type Snapshot struct {
	Time         time.Time    `json:"time"`
	Daemon       Daemon       `json:"daemon"`
	Host         Host         `json:"host"`
	Dependencies []Dependency `json:"dependencies"`
	Containers   []Container  `json:"containers"`
	Events       []Event      `json:"events"`
}

// Daemon describes the daemon itself.
type Daemon struct {
	Version     string            `json:"version"`
	StartedAt   time.Time         `json:"started_at"`
	Ready       bool              `json:"ready"` // first full sync done
	Node        string            `json:"node"`  // the Consul agent's node name
	AdvertiseIP string            `json:"advertise_ip"`
	Config      map[string]string `json:"config"` // flags as given, secrets redacted
	Policy      Policy            `json:"policy"`
}

// Policy is the registration policy in force: which containers may claim which service names,
// explicit IDs and the mesh (-policy).
type Policy struct {
	Set     bool   `json:"set"`
	Source  string `json:"source,omitempty"`  // the file, or "inline"
	Default string `json:"default,omitempty"` // allow, deny or ecs-identity: for a container no rule matches
	Rules   int    `json:"rules"`
}

// String says the policy in plain words, as the page and the CLI table show it.
func (p Policy) String() string {
	if !p.Set {
		return "no registration policy: any container may claim any name"
	}
	return fmt.Sprintf("registration policy %s: %s, default %s", p.Source, p.rules(), p.Default)
}

func (p Policy) rules() string {
	if p.Rules == 1 {
		return "1 rule"
	}
	return fmt.Sprintf("%d rules", p.Rules)
}

// Host is whether the whole host is going away: an EC2 Spot interruption notice, or an Auto Scaling
// termination, read from instance metadata. While it is, every container is drained and new ones
// are kept out.
type Host struct {
	Draining bool      `json:"draining"`
	Reason   string    `json:"reason,omitempty"` // e.g. "EC2 Spot interruption notice: terminate at 2026-11-28T10:02:00Z"
	Since    time.Time `json:"since,omitzero"`   // when the daemon learnt it
	// Notice is the notice in force, drained on or not yet: a Spot notice's services stay until its
	// time less a margin, and ECS may be draining the host itself. Plan says which, LeaveAt when
	// every service still advertised leaves (zero while ECS drains the host task by task).
	Notice  string    `json:"notice,omitempty"`
	Plan    string    `json:"plan,omitempty"`
	LeaveAt time.Time `json:"leave_at,omitzero"`
	// Advisories are advance word that drains nothing: a Spot rebalance recommendation, scheduled
	// maintenance events.
	Advisories []string `json:"advisories,omitempty"`
}

// Dependency is one thing the daemon talks to: docker, consul, ecs-agent, task-metadata,
// instance-metadata, ecs-api.
type Dependency struct {
	Name      string    `json:"name"`
	Enabled   bool      `json:"enabled"`
	Up        bool      `json:"up"`
	Detail    string    `json:"detail,omitempty"` // e.g. "API 1.41", "node n1, leader 10.0.0.2:8300"
	LastError string    `json:"last_error,omitempty"`
	Since     time.Time `json:"since,omitzero"` // when Up last changed
	LastEvent time.Time `json:"last_event,omitzero"`
}

// Container is one container the daemon watches, and what it did about it.
type Container struct {
	ID       string    `json:"id"`
	Name     string    `json:"name"`
	Image    string    `json:"image"`
	Running  bool      `json:"running"`
	State    string    `json:"state"`            // registered, partly registered, not registered, draining
	Reason   string    `json:"reason,omitempty"` // why it has no services, in plain words
	ECS      *ECS      `json:"ecs,omitempty"`
	Services []Service `json:"services"`
	Problems []Problem `json:"problems"`
}

// ShortID is the first 12 characters of the ID, as docker ps shows it.
func (c Container) ShortID() string { return c.ID[:min(12, len(c.ID))] }

// States of a container.
const (
	StateRegistered    = "registered"
	StatePartly        = "partly registered" // some ports kept out by errors
	StateNotRegistered = "not registered"
	StateDraining      = "draining"
)

// ECS is the container's task, as far as known.
type ECS struct {
	Cluster       string `json:"cluster"`
	TaskARN       string `json:"task_arn"`
	Family        string `json:"family"`
	Revision      string `json:"revision"`
	Service       string `json:"service,omitempty"`
	Container     string `json:"container"`
	DesiredStatus string `json:"desired_status,omitempty"`
	KnownStatus   string `json:"known_status,omitempty"`
}

// Service is one registration in Consul.
type Service struct {
	ID          string   `json:"id"`
	Name        string   `json:"name"`
	Address     string   `json:"address"` // host:port, IPv6 in brackets
	Tags        []string `json:"tags"`
	Maintenance string   `json:"maintenance,omitempty"`
	Checks      []Check  `json:"checks"`
	// Connect is the service's sidecar proxy in Consul's service mesh, nil when it is not in the mesh.
	Connect *Connect `json:"connect,omitempty"`
}

// Connect is a service's sidecar proxy registration: Consul registers and removes it with the service.
type Connect struct {
	SidecarID string `json:"sidecar_id"`
	Address   string `json:"address"` // host:port where other proxies reach it
	// Upstreams are the services the application reaches through it, as <service>:<local port>
	// (127.0.0.1 in the application's network namespace).
	Upstreams []string `json:"upstreams"`
	Checks    []Check  `json:"checks"` // Consul's own: the listener's TCP check and an alias of the service
}

// Check is one of a service's checks as the agent reports it.
type Check struct {
	ID     string `json:"id"`
	Name   string `json:"name"`
	Status string `json:"status"` // passing, warning, critical, or unknown when the agent did not say
	Output string `json:"output,omitempty"`
}

// Problem is bad input on a container: an error kept something out, a warning dropped a value.
type Problem struct {
	Severity string `json:"severity"`
	Key      string `json:"key,omitempty"`
	Message  string `json:"message"`
	// Refused is what the registration policy refused: name, id or mesh; empty for other problems.
	Refused string `json:"refused,omitempty"`
}

// Event is one line of recent activity: a Docker event, or what the daemon did.
type Event struct {
	Time      time.Time `json:"time"`
	Container string    `json:"container,omitempty"` // short ID
	Name      string    `json:"name,omitempty"`
	Source    string    `json:"source"` // docker, reconcile, ecs, consul
	Action    string    `json:"action"`
	Detail    string    `json:"detail,omitempty"`
}
