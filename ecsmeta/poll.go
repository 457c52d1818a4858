package ecsmeta

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"time"

	"github.com/ecs-registrator/ecs-registrator/internal/retry"
)

// instanceEvery is how often the ECS API is asked whether the container instance drains, while a
// termination notice is in force.
const instanceEvery = 2 * time.Second

// pollAgent reads every task from the ECS agent each Poll interval while there are task containers,
// to see a task marked for stopping (DesiredStatus STOPPED) before its containers get the signal.
func (s *Source) pollAgent(ctx context.Context) {
	for {
		t := time.NewTimer(s.pollInterval())
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		s.pollOnce(ctx)
	}
}

// pollInterval is Poll, or a quarter of it while the host is going away (DrainingSince was asked):
// then ECS stops the host's tasks one by one, and each should leave within a second of its stop.
func (s *Source) pollInterval() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.goingLocked(time.Now()) {
		return s.cfg.Poll / 4
	}
	return s.cfg.Poll
}

// goingLocked reports whether a notice is in force: DrainingSince was asked within goingFor.
func (s *Source) goingLocked(now time.Time) bool { return now.Before(s.goingUntil) }

// goingFor is how long one question of DrainingSince keeps the agent polled fast.
const goingFor = 5 * time.Second

// stopsKept is how many task stops are remembered; stopsSign of them since the notice are a sign that
// ECS drains the host: one could be a deploy that happened to come then.
const (
	stopsKept = 8
	stopsSign = 2
)

// pollOnce reads the agent's tasks once, when the host has task containers, and notifies the
// containers of every task whose state changed.
func (s *Source) pollOnce(ctx context.Context) {
	s.mu.Lock()
	n, known := len(s.tasks), s.agent.Cluster != ""
	s.mu.Unlock()
	if n == 0 {
		return
	}
	if !known {
		m, err := s.client.metadata(ctx)
		if !s.record(ctx, DepAgent, err) {
			return
		}
		s.mu.Lock()
		s.agent = m
		s.mu.Unlock()
		s.log.Info("ecs agent", "cluster", m.Cluster, "container_instance", m.ContainerInstanceArn, "version", m.Version)
	}
	tasks, changed, err := s.client.tasks(ctx)
	if !s.record(ctx, DepAgent, err) {
		return
	}
	if !changed {
		s.checkInstance(ctx)
		return
	}
	var notified []string
	s.mu.Lock()
	s.noteStopsLocked(tasks, time.Now())
	for _, at := range tasks {
		ts := s.tasks[at.Arn]
		if ts == nil || (ts.agent != nil && reflect.DeepEqual(*ts.agent, at)) {
			continue
		}
		if ts.agent == nil || ts.agent.DesiredStatus != at.DesiredStatus {
			s.log.Info("ecs task status", "task", at.Arn, "desired", at.DesiredStatus, "known", at.KnownStatus)
		}
		ts.agent = &at
		// A stopped task's metadata changes no more. (KnownStatus alone could be a read from before
		// the task's first container started; a task ECS stopped wants to be stopped too.)
		if at.KnownStatus == StatusStopped && at.DesiredStatus == StatusStopped && ts.cancel != nil {
			ts.cancel()
		}
		notified = append(notified, slices.Collect(maps.Keys(ts.containers))...)
	}
	notify := s.notify
	s.mu.Unlock()
	slices.Sort(notified)
	for _, id := range notified {
		notify(id)
	}
	s.checkInstance(ctx)
}

// checkInstance asks the ECS API, while a termination notice is in force and -ecs-api is on, whether
// this container instance is DRAINING. ECS sets that as soon as it drains the host (managed instance
// draining, Spot draining), before it stops any task: with a minimum healthy percent of 100 the
// first task stops only once its replacement runs elsewhere.
func (s *Source) checkInstance(ctx context.Context) {
	s.mu.Lock()
	arn, cluster := s.agent.ContainerInstanceArn, s.agent.Cluster
	due := s.cfg.API && s.goingLocked(time.Now()) && !s.instanceDraining && arn != "" && time.Since(s.instanceAsked) >= instanceEvery
	if due {
		s.instanceAsked = time.Now()
	}
	s.mu.Unlock()
	if !due {
		return
	}
	status, err := s.api.instanceStatus(ctx, Task{ARN: arn}.Region(), cluster, arn)
	if !s.record(ctx, DepAPI, err) || status != "DRAINING" {
		return
	}
	s.mu.Lock()
	s.instanceDraining = true
	s.mu.Unlock()
}

// noteStopsLocked keeps every task's desired status and when tasks turned STOPPED. A task first seen
// already STOPPED is no news: it may have been stopped long ago.
func (s *Source) noteStopsLocked(tasks []AgentTask, now time.Time) {
	desired := make(map[string]string, len(tasks))
	for _, at := range tasks {
		desired[at.Arn] = at.DesiredStatus
		if was, ok := s.desired[at.Arn]; ok && was != StatusStopped && at.DesiredStatus == StatusStopped {
			s.stops = append(s.stops, now)
			if len(s.stops) > stopsKept {
				s.stops = s.stops[1:]
			}
		}
	}
	s.desired = desired
}

// DrainingSince reports whether ECS drains this host: the ECS API says the container instance is
// DRAINING (with -ecs-api), or stopsSign tasks on it were seen marked STOPPED since t. With managed
// instance draining or Spot draining, ECS sets the instance DRAINING and stops its tasks one by one
// after the notice. A notice asks every second while it is in force; being asked polls the agent
// faster and starts the ECS API's questions, for goingFor. What was learnt of one notice is
// forgotten once no notice has asked for that long: an instance back from a stop or hibernation.
func (s *Source) DrainingSince(t time.Time) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	if !s.goingLocked(now) {
		s.instanceDraining, s.instanceAsked = false, time.Time{}
	}
	s.goingUntil = now.Add(goingFor)
	if s.instanceDraining {
		return "the ECS API says this container instance is DRAINING", true
	}
	var since []time.Time
	for _, at := range s.stops {
		if !at.Before(t) {
			since = append(since, at)
		}
	}
	if len(since) < stopsSign {
		return "", false
	}
	return fmt.Sprintf("%d tasks on this host marked STOPPED since the notice, the last at %s", len(since), since[len(since)-1].UTC().Format(time.RFC3339)), true
}

// lookupHost reads the host's identity from instance metadata, retrying with backoff until it answers.
func (s *Source) lookupHost(ctx context.Context) {
	if s.Host().InstanceID != "" {
		return
	}
	b := retry.Backoff(time.Minute)
	for {
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		h, err := LookupHost(rctx, s.cfg.IMDS)
		cancel()
		if s.record(ctx, DepIMDS, err) {
			s.mu.Lock()
			h.LocalIPv4 = cmp.Or(s.host.LocalIPv4, h.LocalIPv4)
			s.host = h
			notify := s.notify
			s.mu.Unlock()
			s.log.Info("ec2 instance", "instance_id", h.InstanceID, "availability_zone", h.AvailabilityZone)
			notify("")
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(b.NextBackOff()):
		}
	}
}
