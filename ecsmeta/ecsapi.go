package ecsmeta

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"
)

// apiTask is what the ECS API adds: the service from the task's group, and its tags.
type apiTask struct {
	service string
	tags    map[string]string
}

// ecsAPI calls DescribeTasks with the standard credential chain; AWS_ENDPOINT_URL_ECS is honoured.
type ecsAPI struct {
	once   sync.Once
	client *ecs.Client
	err    error
}

func (a *ecsAPI) init(ctx context.Context) error {
	a.once.Do(func() {
		cfg, err := config.LoadDefaultConfig(ctx)
		if err != nil {
			a.err = fmt.Errorf("aws config: %w", err)
			return
		}
		a.client = ecs.NewFromConfig(cfg)
	})
	return a.err
}

// describe returns one task's service and tags. The region is the task ARN's.
func (a *ecsAPI) describe(ctx context.Context, t Task) (apiTask, error) {
	if err := a.init(ctx); err != nil {
		return apiTask{}, err
	}
	out, err := a.client.DescribeTasks(ctx, &ecs.DescribeTasksInput{
		Cluster: &t.Cluster,
		Tasks:   []string{t.ARN},
		Include: []types.TaskField{types.TaskFieldTags},
	}, func(o *ecs.Options) {
		if r := t.Region(); r != "" {
			o.Region = r
		}
	})
	if err != nil {
		return apiTask{}, fmt.Errorf("ecs DescribeTasks: %w", err)
	}
	for _, f := range out.Failures {
		return apiTask{}, fmt.Errorf("ecs DescribeTasks: %s: %s", deref(f.Arn), deref(f.Reason))
	}
	if len(out.Tasks) != 1 {
		return apiTask{}, fmt.Errorf("ecs DescribeTasks: %d tasks in the answer, want 1", len(out.Tasks))
	}
	res := apiTask{tags: map[string]string{}}
	if svc, ok := strings.CutPrefix(deref(out.Tasks[0].Group), "service:"); ok {
		res.service = svc
	}
	for _, tag := range out.Tasks[0].Tags {
		if tag.Key != nil {
			res.tags[*tag.Key] = deref(tag.Value)
		}
	}
	return res, nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
