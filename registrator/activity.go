package registrator

import (
	"sync"
	"time"

	"github.com/ecs-registrator/ecs-registrator/status"
)

// activity is a bounded ring of recent events and what the daemon did about them, for the status page.
type activity struct {
	mu   sync.Mutex
	buf  []status.Event
	next int
	full bool
}

const activitySize = 200

func (a *activity) add(e status.Event) {
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.buf == nil {
		a.buf = make([]status.Event, activitySize)
	}
	a.buf[a.next] = e
	a.next = (a.next + 1) % activitySize
	a.full = a.full || a.next == 0
}

// recent returns the events, newest first.
func (a *activity) recent() []status.Event {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := a.next
	if a.full {
		n = activitySize
	}
	out := make([]status.Event, 0, n)
	for i := 1; i <= n; i++ {
		out = append(out, a.buf[(a.next-i+activitySize)%activitySize])
	}
	return out
}
