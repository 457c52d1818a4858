package fakeecs

import (
	"fmt"
	"strings"
	"testing"

	"github.com/ecs-registrator/ecs-registrator/ecsmeta"
	"github.com/ecs-registrator/ecs-registrator/internal/testenv"
)

// Task is one simulated ECS task: its containers carry the labels and env the ECS agent sets.
type Task struct {
	ARN, Family, Revision string
}

// NewTask returns a task of family with an ARN no other task in this test process has.
func NewTask(t testing.TB, family string) Task {
	id := fmt.Sprintf("%032x", testenv.FreePort(t)*7919)
	return Task{ARN: "arn:aws:ecs:us-east-1:111122223333:task/test/" + id, Family: family, Revision: "7"}
}

// Container returns the workload for one container of the task, labelled and named as the agent
// labels and names them.
func (k Task) Container(name string, w testenv.Workload) testenv.Workload {
	if w.Labels == nil {
		w.Labels = map[string]string{}
	}
	w.Labels[ecsmeta.LabelCluster] = "test"
	w.Labels[ecsmeta.LabelTaskARN] = k.ARN
	w.Labels[ecsmeta.LabelContainerName] = name
	w.Labels[ecsmeta.LabelFamily] = k.Family
	w.Labels[ecsmeta.LabelRevision] = k.Revision
	// ECS names containers ecs-<family>-<revision>-<name with [^A-Za-z0-9-] removed>-<20 hex>.
	clean := strings.Map(func(r rune) rune {
		if r == '-' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			return r
		}
		return -1
	}, name)
	w.Name = fmt.Sprintf("ecs-%s-%s-%s-%s", k.Family, k.Revision, clean, k.ARN[len(k.ARN)-20:])
	if !strings.HasPrefix(name, ecsmeta.PauseContainer) { // the agent gives internal containers no metadata URI
		uuid := k.ARN[len(k.ARN)-32:] + "-" + name
		w.Env = append(w.Env, ecsmeta.EnvMetadataV4+"=http://169.254.170.2/v4/"+uuid,
			"ECS_CONTAINER_METADATA_URI=http://169.254.170.2/v3/"+uuid, "AWS_EXECUTION_ENV=AWS_ECS_EC2")
	}
	return w
}
