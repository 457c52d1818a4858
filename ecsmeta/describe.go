package ecsmeta

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"sync"
	"time"
)

// maxDescribe is the most tasks one DescribeTasks call takes.
const maxDescribe = 100

// describeTimeout bounds one DescribeTasks call.
const describeTimeout = 10 * time.Second

// throttleBackoffMax bounds the pause after ThrottlingExceptions in a row.
const throttleBackoffMax = 5 * time.Minute

// describer batches DescribeTasks. ECS throttles the call per account and Region (the "cluster
// resource read actions" bucket: 100 burst, 20 a second, shared with ListTasks and
// DescribeContainerInstances), and every host of an account runs this daemon: one call per task, or
// per task again after a daemon restart, would throttle every other ECS client of the account.
//
// Asking never blocks: ask returns the answer once there is one, and otherwise queues the task, whose
// owner is woken (done) when its answer arrives. Run sends the queue of each cluster as one call of up
// to 100 tasks once no task joined it for the window (or maxGather after its first), and never sooner
// than interval after that cluster's last call: a host makes at most one call per cluster per
// interval, however many tasks it starts. A ThrottlingException pauses every call, for the interval
// and then twice as long each time in a row, up to throttleBackoffMax. Nothing registered waits for
// any of it: labels register, the answer renames and adds Meta.
type describer struct {
	api       *ecsAPI
	window    time.Duration
	interval  time.Duration
	maxGather time.Duration
	done      func(arn string) // an answer for arn arrived

	mu        sync.Mutex
	queue     map[batchKey]*batch
	inflight  map[string]bool           // task ARNs in a call now
	answers   map[string]describeAnswer // task ARN -> the last answer, kept until the task is forgotten
	lastSent  map[batchKey]time.Time
	notBefore time.Time     // after a ThrottlingException
	throttled time.Duration // the current pause after ThrottlingExceptions in a row
	wake      chan struct{}
}

type batchKey struct{ region, cluster string }

type batch struct {
	arns        []string
	first, last time.Time // when the first and the last task joined
}

type describeAnswer struct {
	res apiTask
	err error
}

func newDescriber(api *ecsAPI, window, interval time.Duration, done func(arn string)) *describer {
	return &describer{api: api, window: window, interval: interval, maxGather: 5 * window, done: done,
		queue: map[batchKey]*batch{}, inflight: map[string]bool{}, answers: map[string]describeAnswer{}, lastSent: map[batchKey]time.Time{},
		wake: make(chan struct{}, 1)}
}

// ask returns the task's service and tags, or an error, once an answer came; ok is false while the
// task is queued (done is called when it is answered). Asking again after an error queues it again.
func (d *describer) ask(t Task) (res apiTask, ok bool, err error) {
	region := cmp.Or(t.Region(), os.Getenv("AWS_REGION"), os.Getenv("AWS_DEFAULT_REGION"))
	if region == "" {
		return apiTask{}, true, errors.New("ecs DescribeTasks: no region in the task ARN or AWS_REGION")
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if a, ok := d.answers[t.ARN]; ok {
		delete(d.answers, t.ARN) // an error is asked again; a result is the caller's to keep
		return a.res, true, a.err
	}
	if d.inflight[t.ARN] {
		return apiTask{}, false, nil
	}
	k := batchKey{region, t.Cluster}
	b := d.queue[k]
	if b == nil {
		b = &batch{first: time.Now()}
		d.queue[k] = b
	}
	if !slices.Contains(b.arns, t.ARN) {
		b.arns, b.last = append(b.arns, t.ARN), time.Now()
	}
	select {
	case d.wake <- struct{}{}:
	default:
	}
	return apiTask{}, false, nil
}

// forget drops a task that is gone: it is not described if it is still queued.
func (d *describer) forget(arn string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.answers, arn)
	for k, b := range d.queue {
		b.arns = slices.DeleteFunc(b.arns, func(a string) bool { return a == arn })
		if len(b.arns) == 0 {
			delete(d.queue, k)
		}
	}
}

// run sends the queued batches when they are due, until ctx ends.
func (d *describer) run(ctx context.Context) {
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		k, arns, wait := d.next(time.Now())
		if arns != nil {
			d.send(ctx, k, arns)
			continue
		}
		t.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-d.wake:
		case <-t.C:
		}
	}
}

// next takes the batch that is due (at most maxDescribe of its tasks), or says how long until one is.
func (d *describer) next(now time.Time) (batchKey, []string, time.Duration) {
	d.mu.Lock()
	defer d.mu.Unlock()
	wait := time.Hour
	for k, b := range d.queue {
		due := b.last.Add(d.window)
		if latest := b.first.Add(d.maxGather); latest.Before(due) {
			due = latest
		}
		if len(b.arns) >= maxDescribe {
			due = now
		}
		for _, gate := range []time.Time{d.lastSent[k].Add(d.interval), d.notBefore} {
			if gate.After(due) {
				due = gate
			}
		}
		if w := due.Sub(now); w > 0 {
			wait = min(wait, w)
			continue
		}
		n := min(len(b.arns), maxDescribe)
		arns := slices.Clone(b.arns[:n])
		if b.arns = b.arns[n:]; len(b.arns) == 0 {
			delete(d.queue, k)
		} else {
			b.first, b.last = now, now
		}
		d.lastSent[k] = now
		for _, a := range arns {
			d.inflight[a] = true
		}
		return k, arns, 0
	}
	return batchKey{}, nil, wait
}

// send makes one call and keeps each task's answer for its owner.
func (d *describer) send(ctx context.Context, k batchKey, arns []string) {
	cctx, cancel := context.WithTimeout(ctx, describeTimeout)
	res, failed, err := d.api.describeMany(cctx, k.region, k.cluster, arns)
	cancel()
	d.mu.Lock()
	switch {
	case err != nil && strings.Contains(err.Error(), "ThrottlingException"):
		d.throttled = min(max(2*d.throttled, d.interval), throttleBackoffMax)
		jitter := time.Duration(rand.Int64N(int64(d.throttled/4) + 1))
		d.notBefore = time.Now().Add(d.throttled + jitter)
	case err == nil:
		d.throttled = 0
	}
	for _, arn := range arns {
		delete(d.inflight, arn)
		var a describeAnswer
		switch at, ok := res[arn]; {
		case err != nil:
			a.err = err
		case ok:
			a.res = at
		default:
			a.err = fmt.Errorf("ecs DescribeTasks: %s: %s", arn, cmp.Or(failed[arn], "not in the answer"))
		}
		d.answers[arn] = a
	}
	d.mu.Unlock()
	if ctx.Err() != nil {
		return // shutting down
	}
	for _, arn := range arns {
		d.done(arn)
	}
}
