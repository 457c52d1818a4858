package ecsmeta

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// Instance metadata paths that give advance word without the host going: shown, never drained on.
const (
	// PathRebalance is the Spot rebalance recommendation: 404 until EC2 sees an elevated risk of
	// interruption, then {"noticeTime": "<RFC 3339>"}.
	PathRebalance = "events/recommendations/rebalance"
	// PathScheduledEvents is the instance's scheduled maintenance events, a JSON array ("[]" or 404
	// when there are none).
	PathScheduledEvents = "events/maintenance/scheduled"
)

// adviceEvery is how often the advisories are read: they come hours or days ahead.
const adviceEvery = 30 * time.Second

// Advice is the advance word instance metadata gives about the host.
type Advice struct {
	// Rebalance is when EC2 recommended rebalancing this Spot instance; zero when it has not.
	Rebalance time.Time
	// Maintenance is each scheduled event not completed or canceled, in plain words.
	Maintenance []string
}

// Advice returns the advisories as last read.
func (l *Lifecycle) Advice() Advice {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.advice
}

// advise reads the advisories when they are due. What cannot be read keeps what was read before.
func (l *Lifecycle) advise(ctx context.Context) {
	l.mu.Lock()
	due := l.adviceAt.IsZero() || l.now().Sub(l.adviceAt) >= adviceEvery
	if due {
		l.adviceAt = l.now()
	}
	l.mu.Unlock()
	if !due {
		return
	}
	a := l.Advice()
	if body, found, err := l.fetch(ctx, PathRebalance); err == nil {
		a.Rebalance = time.Time{}
		if found {
			if at, perr := ParseRebalance(body); perr == nil {
				a.Rebalance = at
			}
		}
	}
	if body, found, err := l.fetch(ctx, PathScheduledEvents); err == nil {
		a.Maintenance = nil
		if found {
			a.Maintenance, _ = ParseScheduledEvents(body)
		}
	}
	l.mu.Lock()
	old := l.advice
	l.advice = a
	l.mu.Unlock()
	if !a.Rebalance.IsZero() && old.Rebalance.IsZero() {
		l.log.Warn("EC2 recommends rebalancing this Spot instance: an interruption is more likely; nothing is drained until a notice", "notice_time", a.Rebalance)
	}
	if len(a.Maintenance) > 0 && strings.Join(a.Maintenance, "\n") != strings.Join(old.Maintenance, "\n") {
		l.log.Warn("scheduled maintenance events for this instance; nothing is drained until a notice", "events", a.Maintenance)
	}
}

// ParseRebalance reads events/recommendations/rebalance.
func ParseRebalance(body string) (time.Time, error) {
	var v struct {
		NoticeTime string `json:"noticeTime"`
	}
	if err := json.Unmarshal([]byte(body), &v); err != nil {
		return time.Time{}, fmt.Errorf("not a rebalance recommendation: %w", err)
	}
	at, err := time.Parse(time.RFC3339, v.NoticeTime)
	if err != nil {
		return time.Time{}, fmt.Errorf("not a rebalance recommendation: noticeTime %.40q", v.NoticeTime)
	}
	return at.UTC(), nil
}

// ParseScheduledEvents reads events/maintenance/scheduled: the events still to come, in plain words.
func ParseScheduledEvents(body string) ([]string, error) {
	var events []struct {
		Code, Description, EventID, NotBefore, NotAfter, State string
	}
	if err := json.Unmarshal([]byte(body), &events); err != nil {
		return nil, fmt.Errorf("not a list of scheduled events: %w", err)
	}
	var out []string
	for _, e := range events {
		if e.State == "completed" || e.State == "canceled" {
			continue
		}
		line := fmt.Sprintf("%.40s %.40s from %.40s", e.Code, e.EventID, e.NotBefore)
		if e.Description != "" {
			line += ": " + fmt.Sprintf("%.200s", e.Description)
		}
		out = append(out, line)
	}
	return out, nil
}
