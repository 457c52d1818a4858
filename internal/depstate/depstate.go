// Package depstate tracks whether a dependency answers: up or down, since when, and its last error.
// The core (Docker, Consul) and ecsmeta (the ECS agent, task metadata, instance metadata, the ECS API)
// record each call's outcome in one, and the status page shows it.
package depstate

import (
	"sync"
	"time"
)

// Status is a dependency's state at one moment.
type Status struct {
	Up        bool
	Since     time.Time // when Up last changed, or the first call
	LastError string    // the last failure's, kept after it answers again
	Used      bool      // a call's outcome was recorded
}

// State is a dependency's state, safe for concurrent use. The zero value has never been used.
type State struct {
	mu sync.Mutex
	s  Status
}

// Record notes the outcome of one call. changed is true when Up changed or this was the first call:
// the moment to log; first says it was the first.
func (d *State) Record(err error) (st Status, changed, first bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	up := err == nil
	first = !d.s.Used
	changed = first || up != d.s.Up
	if changed {
		d.s.Since = time.Now()
	}
	d.s.Up, d.s.Used = up, true
	if err != nil {
		d.s.LastError = err.Error()
	}
	return d.s, changed, first
}

// Get returns the state now.
func (d *State) Get() Status {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.s
}
