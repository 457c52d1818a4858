package registrator

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"testing/synctest"
	"time"
)

// waitingAgent is the fake agent with the catalog's blocking query: WaitChange returns once the
// agent changed after index (or fails, when failing is set).
type waitingAgent struct {
	*fakeAgent
	failing bool
}

func (w *waitingAgent) WaitChange(ctx context.Context, _ string, index uint64) (uint64, error) {
	for {
		w.mu.Lock()
		gen, changed, failing := uint64(w.gen), w.changed, w.failing || w.down
		w.mu.Unlock()
		switch {
		case failing:
			return 0, errors.New("Unexpected response code: 403 (Permission denied)")
		case gen > index:
			return gen, nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
}

func (w *waitingAgent) readCount() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.reads
}

// An idle daemon whose agent offers the catalog's blocking query reads nothing; a change (an agent
// that restarted and lost everything) is still seen and repaired within a second or two.
func TestAgentWatchWaitsInsteadOfPolling(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := &waitingAgent{fakeAgent: newFakeAgent()}
		l := runLoop(t, nil, w.fakeAgent, w, func(c *Config) { c.Resync = 0 })
		l.d.start(webSpec("c1", "web-1"))
		l.after(2 * time.Second)
		before := w.readCount()
		l.after(time.Minute)
		if n := w.readCount() - before; n > 0 {
			t.Errorf("%d reads of an idle agent in a minute, want none", n)
		}
		w.restart()
		l.after(2 * time.Second)
		if _, ok := w.service("node1:web-1:8080"); !ok {
			t.Error("not registered again 2 s after the agent lost its services")
		}
	})
}

// A wait the agent refuses falls back to a read every second.
func TestAgentWatchPollsWhenWaitsFail(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := &waitingAgent{fakeAgent: newFakeAgent(), failing: true}
		l := runLoop(t, nil, w.fakeAgent, w, func(c *Config) { c.Resync = 0 })
		l.d.start(webSpec("c1", "web-1"))
		l.after(2 * time.Second)
		before := w.readCount()
		l.after(10 * time.Second)
		if n := w.readCount() - before; n < 8 {
			t.Errorf("%d reads in 10 s with failing waits, want about one a second", n)
		}
		w.restart()
		l.after(2 * time.Second)
		if _, ok := w.service("node1:web-1:8080"); !ok {
			t.Error("not registered again 2 s after the agent lost its services")
		}
	})
}

// While the daemon itself keeps writing, the catalog changes its writes cause are read at most every
// five seconds, and everything it wrote is registered.
func TestAgentWatchReadsLessWhileWriting(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := &waitingAgent{fakeAgent: newFakeAgent()}
		l := runLoop(t, nil, w.fakeAgent, w, func(c *Config) { c.Resync = 0 })
		l.after(2 * time.Second)
		before := w.readCount()
		for i := range 50 { // a start every 200 ms for 10 s
			l.d.start(webSpec(fmt.Sprintf("c%d", i), fmt.Sprintf("web-%d", i)))
			l.after(200 * time.Millisecond)
		}
		if n := w.readCount() - before; n > 3 {
			t.Errorf("%d reads in 10 s of the daemon's own writes, want at most one every 5 s", n)
		}
		for i := range 50 {
			if _, ok := w.service(fmt.Sprintf("node1:web-%d:8080", i)); !ok {
				t.Errorf("web-%d not registered", i)
			}
		}
	})
}
