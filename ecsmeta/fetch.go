package ecsmeta

import (
	"cmp"
	"context"
	"errors"
	"maps"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ecs-registrator/ecs-registrator/internal/retry"
)

// fetchLoop fetches what is missing of one task, with backoff, until the task is forgotten.
func (s *Source) fetchLoop(ctx context.Context, ts *taskState) {
	b := retry.Backoff(5 * time.Second)
	for {
		failed := s.fetchMissing(ctx, ts)
		var retry <-chan time.Time
		if failed {
			retry = time.After(b.NextBackOff())
		} else {
			b.Reset()
			if s.watchesHealth(ts) {
				retry = time.After(s.cfg.HealthPoll)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-ts.wake:
		case <-retry:
		}
	}
}

// fetchMissing asks each source for what it has not yet given about the task, and reports whether any
// request failed.
func (s *Source) fetchMissing(ctx context.Context, ts *taskState) (failed bool) {
	s.mu.Lock()
	var needAgent, path string
	if s.cfg.AgentURL != "" {
		for id := range ts.containers {
			if ts.agent == nil || !slices.ContainsFunc(ts.agent.Containers, func(c AgentContainer) bool { return c.DockerId == id }) {
				needAgent = id
				break
			}
		}
	}
	if s.cfg.TMDSURL != "" && (ts.tmds == nil || s.pollsHealthLocked(ts) && time.Since(ts.tmdsAt) >= s.cfg.HealthPoll) {
		for _, id := range slices.Sorted(maps.Keys(ts.containers)) {
			if p := ts.containers[id]; p != "" {
				path = p
				break
			}
		}
	}
	// Tags come from task metadata's /taskWithTags, once, after /task.
	tagsPath := ""
	if len(s.cfg.TagMeta) > 0 && ts.tags == nil && ts.api == nil && !ts.tagsUnavailable && path == "" && ts.tmds != nil {
		tagsPath = ts.tmdsPath
	}
	t := ts.labels
	s.mu.Unlock()

	if needAgent != "" {
		at, err := s.client.taskByDockerID(ctx, needAgent)
		if err == nil && at.Arn != t.ARN {
			err = errors.New("ecs agent: container " + needAgent[:min(12, len(needAgent))] + " belongs to task " + at.Arn + ", its labels say " + t.ARN)
		}
		// A 404 is the agent answering that it does not know the container yet: retried, but the
		// agent is up.
		s.record(ctx, DepAgent, answered(err))
		if err == nil {
			s.update(ts, func() { ts.agent = &at })
		} else {
			failed = true
		}
	}
	if path != "" {
		tt, err := s.client.tmdsTask(ctx, path, false)
		if err == nil && tt.TaskARN != t.ARN {
			err = errors.New("task metadata: " + path + " is task " + tt.TaskARN + ", the container's labels say " + t.ARN)
		}
		s.record(ctx, DepTMDS, answered(err))
		s.mu.Lock()
		if err != nil {
			failed = true
			ts.tmdsFailures++
			s.mu.Unlock()
		} else {
			same := ts.tmds != nil && reflect.DeepEqual(*ts.tmds, tt)
			ts.tmdsAt, ts.tmdsFailures, ts.tmdsPath = time.Now(), 0, path
			s.wakeLocked(ts) // the tags, if asked for, next
			s.mu.Unlock()
			if !same {
				s.update(ts, func() { ts.tmds = &tt })
			}
		}
	}
	if tagsPath != "" && s.fetchTags(ctx, ts, t, tagsPath) {
		failed = true
	}
	s.mu.Lock()
	needAPI, waitAgent := s.needsAPILocked(ts)
	s.mu.Unlock()
	if waitAgent {
		failed = true // look again once the ECS agent said its version
	}
	if needAPI {
		switch at, ok, err := s.describe.ask(t); {
		case !ok:
			// Queued with the other tasks of its cluster: the answer wakes this loop.
		case s.record(ctx, DepAPI, err):
			s.update(ts, func() { ts.api = &at })
		default:
			failed = true
		}
	}
	return failed
}

// tagFailuresMax is how many failed /taskWithTags reads make the tags unavailable from task metadata
// (the ECS API is asked instead, with -ecs-api): the agent answers slowly or not at all while ECS
// throttles its tag reads.
const tagFailuresMax = 3

// fetchTags reads the task's tags through /taskWithTags, for which the ECS agent asks ECS (two
// ListTagsForResource calls, each retried for up to 30 s when throttled: see tagsTimeout); it
// reports a failure to retry.
func (s *Source) fetchTags(ctx context.Context, ts *taskState, t Task, path string) (failed bool) {
	tt, err := s.client.tmdsTask(ctx, path, true)
	if err == nil && tt.TaskARN != t.ARN {
		err = errors.New("task metadata: " + path + " is task " + tt.TaskARN + ", the container's labels say " + t.ARN)
	}
	terr := tt.tagsError()
	if err == nil && terr == nil {
		tags := tt.TaskTags
		if tags == nil {
			tags = map[string]string{} // the task has none: answered
		}
		s.update(ts, func() { ts.tags = tags })
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil || strings.Contains(terr.Error(), "Throttl") {
		if ts.tagFailures++; ts.tagFailures < tagFailuresMax {
			return true
		}
		terr = cmp.Or(err, terr)
	}
	// Refused (the instance role lacks ecs:ListTagsForResource), or failing again and again.
	ts.tagsUnavailable = true
	if !s.tagsWarned {
		s.tagsWarned = true
		msg := "task tags are not available from task metadata; -ecs-tag-meta needs ecs:ListTagsForResource on the container instance role"
		if s.cfg.API {
			msg += "; asking the ECS API instead"
		}
		s.log.Warn(msg, "task", t.ARN, "err", terr)
	}
	s.wakeLocked(ts)
	return false
}

// watchesHealth reports whether task metadata is read again every HealthPoll for a container's health.
func (s *Source) watchesHealth(ts *taskState) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pollsHealthLocked(ts)
}

// pollsHealthLocked reports whether a container of the task has an ECS health check that only task
// metadata shows. On EC2 an ECS health check is a Docker HEALTHCHECK, which the daemon follows from
// Docker's events: no polling.
func (s *Source) pollsHealthLocked(ts *taskState) bool {
	if s.cfg.TMDSURL == "" || ts.tmds == nil {
		return false
	}
	return slices.ContainsFunc(ts.tmds.Containers, func(c TMDSContainer) bool {
		_, ours := ts.containers[c.DockerId]
		return c.Health != nil && ours && !ts.dockerHealth[c.DockerId]
	})
}

// tmdsFailuresMax is how many failed task metadata reads in a row make the ECS API answer instead.
const tmdsFailuresMax = 3

// needsAPILocked reports whether the ECS API is to be asked about a task now: it is enabled, a
// container of the task asks to be registered, nothing (the API, or a daemon before this one) has
// answered yet, and task metadata cannot give the service name or the tags asked for.
//
// A task without ServiceName in its metadata is not in a service (RunTask) if the agent is 1.63.1 or
// newer: waitAgent says to look again once the agent said its version, while it has not yet.
func (s *Source) needsAPILocked(ts *taskState) (need, waitAgent bool) {
	if !s.cfg.API || ts.api != nil || !slices.Contains(slices.Collect(maps.Values(ts.wanted)), true) {
		return false, false
	}
	usable := s.cfg.TMDSURL != "" && ts.tmdsFailures < tmdsFailuresMax &&
		slices.ContainsFunc(slices.Collect(maps.Values(ts.containers)), func(p string) bool { return p != "" })
	if !usable {
		return true, false
	}
	if ts.tmds == nil {
		return false, false // task metadata first: it may say all
	}
	tagsMissing := len(s.cfg.TagMeta) > 0 && ts.tags == nil && ts.tagsUnavailable
	if ts.tmds.ServiceName != "" || tagsMissing {
		return tagsMissing, false
	}
	if d := s.deps[DepAgent].Get(); s.cfg.AgentURL != "" && s.agent.Version == "" && (!d.Used || d.Up) {
		return false, true
	}
	return !s.agentGivesServiceNamesLocked(), false
}

// agentGivesServiceNamesLocked reports whether the ECS agent puts ServiceName in task metadata
// (1.63.1 and newer), so that its absence means a task that is not in a service (RunTask). Without
// the agent's version (introspection off, or not read yet) it is assumed not to.
func (s *Source) agentGivesServiceNamesLocked() bool {
	return agentAtLeast(s.agent.Version, 1, 63, 1)
}

// agentAtLeast reports whether the agent's version string ("Amazon ECS Agent - v1.89.1 (abcdef0)")
// names a release at least major.minor.patch; an unreadable one is not.
func agentAtLeast(version string, major, minor, patch int) bool {
	i := strings.Index(version, " - v")
	if i < 0 {
		return false
	}
	f := strings.FieldsFunc(version[i+4:], func(r rune) bool { return r == '.' || r == ' ' || r == '-' })
	var n [3]int
	for j := range min(3, len(f)) {
		n[j], _ = strconv.Atoi(f[j])
	}
	return cmp.Or(cmp.Compare(n[0], major), cmp.Compare(n[1], minor), cmp.Compare(n[2], patch)) >= 0
}

// update applies f to a task's state and tells the registrator about each of its containers.
func (s *Source) update(ts *taskState, f func()) {
	s.mu.Lock()
	f()
	ids := slices.Sorted(maps.Keys(ts.containers))
	notify := s.notify
	s.mu.Unlock()
	for _, id := range ids {
		notify(id)
	}
}

// answered is err unless it is a 404, which says the dependency works but lacks the container.
func answered(err error) error {
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	return err
}

// record notes the outcome of a request to a dependency, logging when its state changes, and reports
// whether it succeeded. A cancelled request says nothing about the dependency.
func (s *Source) record(ctx context.Context, dep string, err error) bool {
	if err != nil && ctx.Err() != nil {
		return false
	}
	if _, changed, first := s.deps[dep].Record(err); changed {
		switch {
		case err != nil && dep == DepIMDS && first:
			s.log.Info("no EC2 instance metadata (not on EC2?); zone and instance ID stay unknown until it answers", "err", err)
		case err != nil:
			s.log.Warn(dep+" unavailable; registering from labels and retrying in the background", "err", err)
		case !first:
			s.log.Info(dep + " answers again")
		}
	}
	return err == nil
}
