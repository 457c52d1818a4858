package ecsmeta

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"

	"github.com/ecs-registrator/ecs-registrator/internal/retry"
)

// maxDescribe is the most tasks one DescribeTasks call takes.
const maxDescribe = 100

// describer batches DescribeTasks. ECS throttles the call per account and Region (the "cluster
// resource read actions" bucket: 100 burst, 20 a second, shared with ListTasks and
// DescribeContainerInstances), and every host of an account runs this daemon: one call per task, or
// per task again after a daemon restart, would throttle every other ECS client of the account.
// Requests for one cluster gather into one call of up to 100 tasks, sent once none came for the
// window and the last call of that cluster is at least interval ago: a host makes at most one call
// per interval and cluster, however many tasks it starts. A ThrottlingException pauses every call for
// a backoff. Nothing registered waits for any of it: labels register, the answer renames and adds Meta.
type describer struct {
	api      *ecsAPI
	window   time.Duration
	interval time.Duration

	mu        sync.Mutex
	pending   map[batchKey]*batch
	lastSent  map[batchKey]time.Time
	notBefore time.Time // after a ThrottlingException
	backoff   backoff.BackOff
	calls     int // DescribeTasks calls made, for tests and the status page
}

type batchKey struct{ region, cluster string }

type batch struct {
	calls []*describeCall
	last  time.Time // when the last request joined
}

type describeCall struct {
	arn  string
	done chan struct{}
	res  apiTask
	err  error
}

func newDescriber(api *ecsAPI, window, interval time.Duration) *describer {
	return &describer{api: api, window: window, interval: interval, pending: map[batchKey]*batch{},
		lastSent: map[batchKey]time.Time{}, backoff: retry.Backoff(time.Minute)}
}

// describe returns one task's service and tags, asked together with the other tasks of its cluster
// that are asked within the window. The region is the task ARN's.
func (d *describer) describe(ctx context.Context, t Task) (apiTask, error) {
	region := cmp.Or(t.Region(), os.Getenv("AWS_REGION"), os.Getenv("AWS_DEFAULT_REGION"))
	if region == "" {
		return apiTask{}, errors.New("ecs DescribeTasks: no region in the task ARN or AWS_REGION")
	}
	c := &describeCall{arn: t.ARN, done: make(chan struct{})}
	k := batchKey{region, t.Cluster}
	d.mu.Lock()
	b := d.pending[k]
	if b == nil {
		b = &batch{}
		d.pending[k] = b
		go d.gather(k, b)
	}
	b.calls, b.last = append(b.calls, c), time.Now()
	if len(b.calls) == maxDescribe {
		delete(d.pending, k)
		d.lastSent[k] = time.Now()
		go d.send(k, b.calls)
	}
	d.mu.Unlock()
	select {
	case <-c.done:
		return c.res, c.err
	case <-ctx.Done():
		return apiTask{}, ctx.Err()
	}
}

// gather sends b once no request joined it for the window and the cluster's last call is interval
// ago (unless it filled up and went already).
func (d *describer) gather(k batchKey, b *batch) {
	t := time.NewTimer(d.window)
	defer t.Stop()
	for range t.C {
		d.mu.Lock()
		if d.pending[k] != b {
			d.mu.Unlock()
			return
		}
		due := b.last.Add(d.window)
		if next := d.lastSent[k].Add(d.interval); next.After(due) {
			due = next
		}
		if wait := time.Until(due); wait > 0 {
			d.mu.Unlock()
			t.Reset(wait)
			continue
		}
		delete(d.pending, k)
		d.lastSent[k] = time.Now()
		d.mu.Unlock()
		d.send(k, b.calls)
		return
	}
}

// send makes one call for a batch, after any throttling backoff, and answers each request of it.
func (d *describer) send(k batchKey, batch []*describeCall) {
	d.mu.Lock()
	wait := time.Until(d.notBefore)
	d.calls++
	d.mu.Unlock()
	if wait > 0 {
		time.Sleep(wait) // a backoff ECS asked for; nothing registered waits on this call
	}
	arns := make([]string, 0, len(batch))
	for _, c := range batch {
		if !slices.Contains(arns, c.arn) {
			arns = append(arns, c.arn)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	res, failed, err := d.api.describeMany(ctx, k.region, k.cluster, arns)
	cancel()
	d.mu.Lock()
	if err != nil && strings.Contains(err.Error(), "ThrottlingException") {
		d.notBefore = time.Now().Add(d.backoff.NextBackOff())
	} else if err == nil {
		d.backoff.Reset()
	}
	d.mu.Unlock()
	for _, c := range batch {
		switch at, ok := res[c.arn]; {
		case err != nil:
			c.err = err
		case ok:
			c.res = at
		default:
			c.err = fmt.Errorf("ecs DescribeTasks: %s: %s", c.arn, cmp.Or(failed[c.arn], "not in the answer"))
		}
		close(c.done)
	}
}

// Calls is the number of DescribeTasks calls made.
func (d *describer) Calls() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.calls
}
