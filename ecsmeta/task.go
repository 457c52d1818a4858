package ecsmeta

import (
	"net/netip"
	"strings"
)

// The Docker labels the ECS agent puts on every task container. They are applied after the task
// definition's dockerLabels, so they cannot be forged by a service team's labels.
const (
	LabelCluster       = "com.amazonaws.ecs.cluster"
	LabelTaskARN       = "com.amazonaws.ecs.task-arn"
	LabelContainerName = "com.amazonaws.ecs.container-name"
	LabelFamily        = "com.amazonaws.ecs.task-definition-family"
	LabelRevision      = "com.amazonaws.ecs.task-definition-version"

	// PauseContainer is the task-definition name of the container that holds an awsvpc task's network,
	// and the prefix of every pause container the agent makes: "~internal~ecs~pause-<container>" in a
	// Service Connect bridge task, "~internal~ecs~pause~namespace" for shared IPC/PID namespaces
	// (agent/api/task/task.go).
	PauseContainer = "~internal~ecs~pause"

	// EnvMetadataV4 holds a task container's task metadata v4 URI; its path is the container's key.
	EnvMetadataV4 = "ECS_CONTAINER_METADATA_URI_V4"
)

// Task statuses of both agent APIs.
const (
	StatusPending = "PENDING"
	StatusRunning = "RUNNING"
	StatusStopped = "STOPPED"
)

// Task is what is known of one container's ECS task, from the point of view of that container. Fields
// stay empty while unknown; the labels' fields are always known.
type Task struct {
	Cluster   string
	ARN       string
	Family    string
	Revision  string
	Container string // the container's name in the task definition

	Service          string // the ECS service that started the task; empty for RunTask tasks
	AvailabilityZone string
	DesiredStatus    string
	KnownStatus      string
	// Addrs are the task's awsvpc ENI addresses, IPv4 first; empty in bridge and host mode.
	Addrs []netip.Addr
	// Ports are the container's ports as the agent knows them; in awsvpc mode Docker shows none.
	Ports []Port
	// Health is the container's health from the task definition's health check, when it has one.
	Health Health
	// Tags are the task's tags allowed into Meta by -ecs-tag-meta; TagsRead are the tags looked up
	// (those the task lacks included), once they were: written into Meta, they spare a restarted
	// daemon the question.
	Tags     map[string]string
	TagsRead []string
}

// Port is a container port as the agent reports it.
type Port struct {
	ContainerPort int
	Protocol      string // "tcp" or "udp"
	HostPort      int
}

// Health is a container's ECS health: Defined when the task definition has a health check; Status is
// "HEALTHY", "UNHEALTHY" or "" (not known yet).
type Health struct {
	Defined bool
	Status  string
	Output  string
}

// Pause reports whether this is one of the agent's pause containers, which are never registered.
func (t Task) Pause() bool { return strings.HasPrefix(t.Container, PauseContainer) }

// ServiceConnectPause reports whether name is the pause container a Service Connect task in bridge
// mode gives one of its containers: that container runs on the pause container's network, and the
// pause container publishes its ports (the agent's dockerExposedPorts).
func ServiceConnectPause(name string) bool { return strings.HasPrefix(name, PauseContainer+"-") }

// Stopping reports whether ECS wants the task stopped: the signal to stop advertising it.
func (t Task) Stopping() bool { return t.DesiredStatus == StatusStopped }

// TaskID is the last part of the task ARN.
func (t Task) TaskID() string { return t.ARN[strings.LastIndex(t.ARN, "/")+1:] }

// Region is the region part of the task ARN (arn:aws:ecs:<region>:...), or "".
func (t Task) Region() string {
	parts := strings.SplitN(t.ARN, ":", 5)
	if len(parts) < 5 {
		return ""
	}
	return parts[3]
}

// FromLabels reads a container's ECS labels. ok is false for a container ECS did not start.
func FromLabels(labels map[string]string) (t Task, ok bool) {
	t = Task{
		Cluster:   labels[LabelCluster],
		ARN:       labels[LabelTaskARN],
		Family:    labels[LabelFamily],
		Revision:  labels[LabelRevision],
		Container: labels[LabelContainerName],
	}
	return t, t.ARN != ""
}

// metadataPath returns the path of the container's task metadata v4 URI (/v4/<uuid>), or "".
func metadataPath(env []string) string {
	for _, kv := range env {
		v, ok := strings.CutPrefix(kv, EnvMetadataV4+"=")
		if !ok {
			continue
		}
		// http://169.254.170.2/v4/<uuid>: only the path is kept; the host is not reachable from
		// every network setup, the agent's loopback listener is.
		rest, ok := strings.CutPrefix(v, "http://")
		if !ok {
			return ""
		}
		_, path, ok := strings.Cut(rest, "/")
		if !ok || !strings.HasPrefix(path, "v4/") || len(path) <= len("v4/") ||
			strings.ContainsAny(path[3:], "/?#%") {
			return ""
		}
		return "/" + path
	}
	return ""
}

// Host is what EC2 instance metadata says about this host.
type Host struct {
	InstanceID       string
	AvailabilityZone string
	Region           string
	LocalIPv4        netip.Addr
	// IPv6 is set only on an IPv6-only instance (no local-ipv4); a dual-stack host's is not looked up.
	IPv6 netip.Addr
}
