package registrator

import (
	"sync"
	"time"
)

// queue is a de-duplicating work queue of container IDs, after client-go's workqueue: a key added while it
// waits is merged; a key added while a worker handles it is handed out again once that worker calls done,
// so one container is never handled by two workers at once and no event is lost.
type queue struct {
	mu         sync.Mutex
	cond       *sync.Cond
	order      []string
	dirty      map[string]bool // waiting to be handled (in order, or to be re-queued when done)
	processing map[string]bool
	timers     map[string]*time.Timer
	failures   map[string]int
	shutdown   bool
	// marked are the keys waiting or in hand when mark was called, each true once a worker has taken
	// it since; a key leaves when that worker is done. nil: no mark.
	marked map[string]bool
}

func newQueue() *queue {
	q := &queue{
		dirty:      map[string]bool{},
		processing: map[string]bool{},
		timers:     map[string]*time.Timer{},
		failures:   map[string]int{},
	}
	q.cond = sync.NewCond(&q.mu)
	return q
}

// add queues key unless it already waits.
func (q *queue) add(key string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.addLocked(key)
}

func (q *queue) addLocked(key string) {
	if q.shutdown || q.dirty[key] {
		return
	}
	q.dirty[key] = true
	if !q.processing[key] {
		q.order = append(q.order, key)
		q.cond.Signal()
	}
}

// retry queues key again after an exponential per-key delay (100 ms doubling to max): a container whose
// reconcile keeps failing does not spin, and others are not held up by it.
func (q *queue) retry(key string, max time.Duration) time.Duration {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.shutdown {
		return 0
	}
	n := q.failures[key]
	q.failures[key] = n + 1
	d := 100 * time.Millisecond << min(n, 20)
	d = min(d, max)
	if t := q.timers[key]; t != nil {
		t.Stop()
	}
	q.timers[key] = time.AfterFunc(d, func() {
		q.mu.Lock()
		defer q.mu.Unlock()
		delete(q.timers, key)
		q.addLocked(key)
	})
	return d
}

// retryNow queues every key that waits for a retry at once and resets every key's delay: the dependency
// they failed on is back, and a delay grown during the outage must not hold up recovery.
func (q *queue) retryNow() {
	q.mu.Lock()
	defer q.mu.Unlock()
	for k, t := range q.timers {
		t.Stop()
		delete(q.timers, k)
		q.addLocked(k)
	}
	clear(q.failures)
}

// forget resets key's retry delay after a success.
func (q *queue) forget(key string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	delete(q.failures, key)
}

// get blocks until a key is ready or the queue is shut down (ok false).
func (q *queue) get() (key string, ok bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for len(q.order) == 0 && !q.shutdown {
		q.cond.Wait()
	}
	if q.shutdown {
		return "", false
	}
	key, q.order = q.order[0], q.order[1:]
	delete(q.dirty, key)
	q.processing[key] = true
	if _, ok := q.marked[key]; ok {
		q.marked[key] = true
	}
	return key, true
}

// done ends the handling of key; a key added meanwhile is queued again.
func (q *queue) done(key string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	delete(q.processing, key)
	if q.marked[key] {
		delete(q.marked, key)
	}
	if q.dirty[key] && !q.shutdown {
		q.order = append(q.order, key)
		q.cond.Signal()
	}
}

// len is the number of keys waiting.
func (q *queue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.order)
}

// mark notes every key waiting or in hand now; passed reports when each has been taken by a worker
// since and handled. Keys added later do not hold it up, so a host whose containers never stop
// churning still gets past it.
func (q *queue) mark() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.marked = map[string]bool{}
	for k := range q.dirty {
		q.marked[k] = false
	}
	for k := range q.processing {
		if !q.dirty[k] {
			q.marked[k] = true // in hand and not added since: its worker's done is enough
		}
	}
}

// passed reports whether every key noted by mark has been handled since.
func (q *queue) passed() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.marked != nil && len(q.marked) == 0
}

// shutDown wakes every get; keys still waiting are dropped (a restart re-lists everything anyway).
func (q *queue) shutDown() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.shutdown = true
	for k, t := range q.timers {
		t.Stop()
		delete(q.timers, k)
	}
	q.cond.Broadcast()
}
