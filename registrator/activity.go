package registrator

import (
	"sync"
	"time"
)

// Event is one line of recent activity: a Docker event, or what the daemon did about one.
type Event struct {
	Time      time.Time
	Container string // short ID
	Name      string
	Source    string // docker, reconcile, health
	Action    string
	Detail    string
}

// activity is a bounded ring of recent events, for the status page.
type activity struct {
	mu   sync.Mutex
	buf  []Event
	next int
	full bool
}

const activitySize = 200

func (a *activity) add(e Event) {
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.buf == nil {
		a.buf = make([]Event, activitySize)
	}
	a.buf[a.next] = e
	a.next = (a.next + 1) % activitySize
	a.full = a.full || a.next == 0
}

// recent returns the events, newest first.
func (a *activity) recent() []Event {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := a.next
	if a.full {
		n = activitySize
	}
	out := make([]Event, 0, n)
	for i := 1; i <= n; i++ {
		out = append(out, a.buf[(a.next-i+activitySize)%activitySize])
	}
	return out
}
