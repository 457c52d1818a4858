package ecsmeta

import (
	"encoding/json"
	"fmt"
)

// The types below are the JSON bodies of the ECS agent's endpoints, field for field and in the order
// the agent emits them (see the wire-format reference). They are exported for the fake agent in the
// test tree; the daemon itself reads them through the decode functions.

// AgentMetadata is GET /v1/metadata of the ECS agent's introspection API.
type AgentMetadata struct {
	Cluster              string
	ContainerInstanceArn string
	Version              string
}

// AgentTask is a TaskResponse of the introspection API (/v1/tasks, /v1/tasks?dockerid=).
type AgentTask struct {
	Arn           string
	DesiredStatus string `json:",omitempty"`
	KnownStatus   string
	Family        string
	Version       string
	Containers    []AgentContainer
}

// AgentContainer is one container of an AgentTask.
type AgentContainer struct {
	DockerId   string
	DockerName string
	Name       string
	Image      string        `json:",omitempty"`
	ImageID    string        `json:",omitempty"`
	CreatedAt  string        `json:",omitempty"`
	StartedAt  string        `json:",omitempty"`
	Ports      []WirePort    `json:",omitempty"`
	Networks   []WireNetwork `json:",omitempty"`
}

// AgentTasks is GET /v1/tasks.
type AgentTasks struct {
	Tasks []AgentTask
}

// WirePort is a port binding as both APIs report it.
type WirePort struct {
	ContainerPort int
	Protocol      string `json:",omitempty"`
	HostPort      int    `json:",omitempty"`
	HostIp        string `json:",omitempty"`
}

// WireNetwork is a network attachment; awsvpc entries carry the ENI's addresses.
type WireNetwork struct {
	NetworkMode              string
	IPv4Addresses            []string `json:",omitempty"`
	IPv6Addresses            []string `json:",omitempty"`
	AttachmentIndex          *int     `json:",omitempty"`
	MACAddress               string   `json:",omitempty"`
	IPv4SubnetCIDRBlock      string   `json:",omitempty"`
	IPv6SubnetCIDRBlock      string   `json:",omitempty"`
	PrivateDNSName           string   `json:",omitempty"`
	SubnetGatewayIpv4Address string   `json:",omitempty"`
}

// TMDSTask is GET ${ECS_CONTAINER_METADATA_URI_V4}/task.
type TMDSTask struct {
	Cluster          string
	TaskARN          string
	Family           string
	Revision         string
	DesiredStatus    string `json:",omitempty"`
	KnownStatus      string
	Limits           map[string]float64 `json:",omitempty"`
	PullStartedAt    string             `json:",omitempty"`
	PullStoppedAt    string             `json:",omitempty"`
	AvailabilityZone string             `json:",omitempty"`
	// TaskTags and ContainerInstanceTags come from /taskWithTags only: the agent asks ECS
	// (ListTagsForResource, with the container instance role) on every request. No tags: absent.
	TaskTags              map[string]string `json:",omitempty"`
	ContainerInstanceTags map[string]string `json:",omitempty"`
	LaunchType            string            `json:",omitempty"`
	// Errors says which tags the agent could not read (ErrorField "TaskTags", ...).
	Errors             []TMDSError `json:",omitempty"`
	Containers         []TMDSContainer
	VPCID              string `json:",omitempty"`
	ServiceName        string `json:",omitempty"`
	AvailabilityZoneID string `json:",omitempty"`
}

// TMDSError is an entry of a /taskWithTags answer's Errors: a part of the answer the agent could not get.
type TMDSError struct {
	ErrorField   string `json:",omitempty"`
	ErrorCode    string `json:",omitempty"`
	ErrorMessage string `json:",omitempty"`
	StatusCode   int    `json:",omitempty"`
	RequestId    string `json:",omitempty"`
	ResourceARN  string `json:",omitempty"`
}

// tagsError is why a /taskWithTags answer has no task tags, nil when it has them (or the task has none).
func (t TMDSTask) tagsError() error {
	for _, e := range t.Errors {
		if e.ErrorField == "TaskTags" {
			return fmt.Errorf("task metadata: no task tags: %s %s", e.ErrorCode, e.ErrorMessage)
		}
	}
	return nil
}

// TMDSContainer is one container of a TMDSTask.
type TMDSContainer struct {
	DockerId      string
	Name          string
	DockerName    string
	Image         string
	ImageID       string             `json:",omitempty"`
	Ports         []WirePort         `json:",omitempty"`
	Labels        map[string]string  `json:",omitempty"`
	DesiredStatus string             `json:",omitempty"`
	KnownStatus   string             `json:",omitempty"`
	Limits        map[string]float64 `json:",omitempty"`
	CreatedAt     string             `json:",omitempty"`
	StartedAt     string             `json:",omitempty"`
	Type          string             `json:",omitempty"`
	Health        *WireHealth        `json:",omitempty"`
	LogDriver     string             `json:",omitempty"`
	LogOptions    map[string]string  `json:",omitempty"`
	ContainerARN  string             `json:",omitempty"`
	Networks      []WireNetwork      `json:",omitempty"`
}

// WireHealth is a container's health as the task definition's health check reports it.
type WireHealth struct {
	Status      string `json:"status,omitempty"`
	StatusSince string `json:"statusSince,omitempty"`
	ExitCode    *int   `json:"exitCode,omitempty"`
	Output      string `json:"output,omitempty"`
}

// DecodeAgentMetadata decodes /v1/metadata; a body without a cluster is an error.
func DecodeAgentMetadata(b []byte) (AgentMetadata, error) {
	var m AgentMetadata
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("ecs agent metadata: %w", err)
	}
	if m.Cluster == "" {
		return m, fmt.Errorf("ecs agent metadata: no cluster in %s", snippet(b))
	}
	return m, nil
}

// DecodeAgentTask decodes one bare TaskResponse. The agent answers errors with the zero struct, so a
// task without an ARN is an error.
func DecodeAgentTask(b []byte) (AgentTask, error) {
	var t AgentTask
	if err := json.Unmarshal(b, &t); err != nil {
		return t, fmt.Errorf("ecs agent task: %w", err)
	}
	if t.Arn == "" {
		return t, fmt.Errorf("ecs agent task: no task ARN in %s", snippet(b))
	}
	return t, nil
}

// DecodeAgentTasks decodes /v1/tasks; entries without an ARN are dropped.
func DecodeAgentTasks(b []byte) ([]AgentTask, error) {
	var ts AgentTasks
	if err := json.Unmarshal(b, &ts); err != nil {
		return nil, fmt.Errorf("ecs agent tasks: %w", err)
	}
	if ts.Tasks == nil {
		return nil, fmt.Errorf("ecs agent tasks: no Tasks in %s", snippet(b))
	}
	out := ts.Tasks[:0]
	for _, t := range ts.Tasks {
		if t.Arn != "" {
			out = append(out, t)
		}
	}
	return out, nil
}

// DecodeTMDSTask decodes task metadata v4's /task; a task without an ARN is an error.
func DecodeTMDSTask(b []byte) (TMDSTask, error) {
	var t TMDSTask
	if err := json.Unmarshal(b, &t); err != nil {
		return t, fmt.Errorf("task metadata: %w", err)
	}
	if t.TaskARN == "" {
		return t, fmt.Errorf("task metadata: no TaskARN in %s", snippet(b))
	}
	return t, nil
}

// snippet quotes the start of a body for an error message.
func snippet(b []byte) string {
	const n = 120
	if len(b) > n {
		return fmt.Sprintf("%q...", b[:n])
	}
	return fmt.Sprintf("%q", b)
}
