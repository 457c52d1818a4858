package ecsmeta

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/ecs-registrator/ecs-registrator/internal/retry"
)

// The instance metadata paths that say the host is going away.
const (
	// PathSpotAction is the Spot interruption notice: 404 until EC2 is about to act, two minutes
	// ahead, then {"action": "terminate"|"stop"|"hibernate", "time": "<RFC 3339>"}.
	PathSpotAction = "spot/instance-action"
	// PathTargetLifecycleState is the Auto Scaling state the instance is moving to (InService,
	// Terminated, Warmed:Stopped...); 404 on an instance outside an Auto Scaling group.
	PathTargetLifecycleState = "autoscaling/target-lifecycle-state"
)

// Kinds of HostNotice.
const (
	NoticeSpot        = "spot"
	NoticeAutoScaling = "autoscaling"
)

// HostNotice is a sign in instance metadata that this host is about to go away.
type HostNotice struct {
	Kind string // NoticeSpot or NoticeAutoScaling
	// Action is the Spot action (terminate, stop, hibernate) or the target lifecycle state.
	Action string
	// Time is when EC2 acts on a Spot notice; zero for Auto Scaling, which does not say.
	Time time.Time
	// Reason says it in plain words, for logs, the status page and maintenance notes.
	Reason string
	// Seen is when this daemon first read it.
	Seen time.Time
}

// final reports whether nothing can follow the notice but the host's end: a stopped or hibernated
// Spot instance may come back, a terminated one does not.
func (n HostNotice) final() bool {
	return n.Kind == NoticeAutoScaling || n.Action == "terminate"
}

// metadataGetter is the part of *imds.Client the watcher uses.
type metadataGetter interface {
	GetMetadata(ctx context.Context, params *imds.GetMetadataInput, optFns ...func(*imds.Options)) (*imds.GetMetadataOutput, error)
}

// LifecycleConfig configures a Lifecycle.
type LifecycleConfig struct {
	// IMDS is the instance metadata client; the one the rest of the daemon uses, so that its cached
	// session token is reused.
	IMDS *imds.Client
	// Poll is how often both paths are read; default 1s. A Spot notice comes two minutes ahead, and
	// instance metadata answers on the host, so a second costs nothing and loses nothing.
	Poll time.Duration
	// Timeout bounds each request; default 1s. A daemon in a bridge-mode container behind a hop limit
	// of 1 never gets an answer, and must not wait longer than that to find out.
	Timeout time.Duration
	// MaxBackoff is the longest wait between rounds while instance metadata does not answer; default 30s.
	MaxBackoff time.Duration
	// Margin is how long before a Spot notice's time the host's services leave; default 30s. Until
	// then they stay: ECS's Spot draining starts replacements elsewhere and stops this host's tasks
	// one by one, each leaving as it is stopped, and leaving before that would take capacity that
	// has no replacement yet.
	Margin time.Duration
	// Evidence is how long an Auto Scaling termination waits for a sign that ECS drains the host
	// (managed instance draining) before every service leaves; default 10s. Without a lifecycle hook
	// the instance may be gone within a minute, so the wait is short.
	Evidence time.Duration
	Logger   *slog.Logger
}

// ECSDrain tells whether ECS drains this host itself: a task on it marked STOPPED since a time, or
// the container instance DRAINING. *Source is one.
type ECSDrain interface {
	DrainingSince(t time.Time) (why string, ok bool)
}

// Lifecycle watches instance metadata for the two signs that the whole host is about to go: a Spot
// interruption notice, and an Auto Scaling target lifecycle state of Terminated. A notice, once
// read, stays: a host that is going does not come back. (The one exception: a Spot instance that
// was stopped or hibernated is back when the notice is gone after its time.) Instance metadata that
// is absent, slow or broken is not a notice: nothing changes, and the watcher backs off.
//
// Lifecycle is the registrator's HostLifecycle.
type Lifecycle struct {
	get        metadataGetter
	poll       time.Duration
	timeout    time.Duration
	maxBackoff time.Duration
	margin     time.Duration
	evidence   time.Duration
	log        *slog.Logger
	now        func() time.Time

	changed chan struct{} // capacity 1: Draining may have changed since it was last received from
	checked chan struct{} // closed after the first round, answered or not
	once    sync.Once

	mu        sync.Mutex
	notice    *HostNotice
	ecs       ECSDrain
	byECS     string // why ECS is seen draining the host, once it is; "" before
	left      bool   // the services left on the notice: they stay out while it is in force
	announced string // the last Draining answer Changed was sent for
	advice    Advice
	adviceAt  time.Time // when the advisories were last read
	up        bool      // the last round had an answer on every path
	asked     bool      // a round has been done
	failed    string    // the error of the last failed round, "" after a good one
}

// NewLifecycle returns a watcher; nothing is read until Run.
func NewLifecycle(cfg LifecycleConfig) *Lifecycle {
	return newLifecycle(cfg.IMDS, cfg)
}

func newLifecycle(get metadataGetter, cfg LifecycleConfig) *Lifecycle {
	if cfg.Poll <= 0 {
		cfg.Poll = time.Second
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = time.Second
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = 30 * time.Second
	}
	if cfg.Margin <= 0 {
		cfg.Margin = 30 * time.Second
	}
	if cfg.Evidence <= 0 {
		cfg.Evidence = 10 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Lifecycle{get: get, poll: cfg.Poll, timeout: cfg.Timeout, maxBackoff: max(cfg.MaxBackoff, cfg.Poll),
		margin: cfg.Margin, evidence: cfg.Evidence, now: time.Now,
		log: cfg.Logger.With("component", "host-lifecycle"), changed: make(chan struct{}, 1), checked: make(chan struct{})}
}

// WatchECS gives the watcher the signs that ECS drains the host itself.
func (l *Lifecycle) WatchECS(ecs ECSDrain) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.ecs = ecs
}

// Draining is why every service on the host leaves now, "" while none need to: no notice, or one
// whose services may stay a while yet (Plan says until when).
func (l *Lifecycle) Draining() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.drainingLocked(l.now())
}

func (l *Lifecycle) drainingLocked(now time.Time) string {
	if l.notice == nil {
		return ""
	}
	// A sign that ECS drains the host, come after the services left, does not bring them back.
	if at := l.planLocked(now).LeaveAt; !l.left && (at.IsZero() || now.Before(at)) {
		return ""
	}
	l.left = true
	return l.notice.Reason
}

// HostPlan is what the host does about a notice.
type HostPlan struct {
	Notice HostNotice
	// LeaveAt is when every service still advertised leaves; zero while ECS drains the host, which
	// stops its tasks one by one, each leaving as it is stopped.
	LeaveAt time.Time
	// Why says it in plain words, for the status page.
	Why string
}

// Plan is the notice in force and when the host's services leave; ok is false without a notice.
func (l *Lifecycle) Plan() (p HostPlan, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.notice == nil {
		return HostPlan{}, false
	}
	return l.planLocked(l.now()), true
}

// planLocked decides when the services leave (the three setups in packaging/README.md):
//   - a Spot notice: at its time less the margin, or at once when that has passed. Tasks that ECS
//     stops before then (Spot draining) leave as they are stopped, on their own DesiredStatus.
//   - an Auto Scaling termination: ECS drains the host itself when it uses managed instance
//     draining; a task marked STOPPED since the notice, or the instance DRAINING, says so, and the
//     services then leave with their tasks. Without such a sign within the evidence window, nothing
//     will stop them in time, and they leave.
func (l *Lifecycle) planLocked(now time.Time) HostPlan {
	n := *l.notice
	p := HostPlan{Notice: n}
	byECS := l.ecsDrainingLocked(n)
	switch {
	case n.Kind == NoticeSpot:
		p.LeaveAt = n.Time.Add(-l.margin)
		if p.LeaveAt.Before(n.Seen) {
			p.LeaveAt = n.Seen
		}
		p.Why = fmt.Sprintf("services ECS has not stopped leave at %s, %v before the Spot action", p.LeaveAt.UTC().Format(time.RFC3339), l.margin)
		if byECS {
			p.Why += "; ECS drains this host (" + l.byECS + ")"
		}
	case byECS:
		p.Why = "ECS drains this host (" + l.byECS + "): each service leaves as ECS stops its task"
	default:
		p.LeaveAt = n.Seen.Add(l.evidence)
		p.Why = fmt.Sprintf("no sign that ECS drains this host yet; every service leaves at %s unless one comes", p.LeaveAt.UTC().Format(time.RFC3339))
	}
	return p
}

// ecsDrainingLocked looks for a sign that ECS drains the host, and keeps the first one: a host
// that ECS drains stays drained by it.
func (l *Lifecycle) ecsDrainingLocked(n HostNotice) bool {
	if l.ecs == nil {
		return l.byECS != ""
	}
	// Asked every time, also once a sign is kept: being asked keeps the agent polled fast.
	why, ok := l.ecs.DrainingSince(n.Seen)
	if l.byECS != "" {
		return true
	}
	if ok && l.byECS == "" {
		l.byECS = why
		l.log.Info("ECS drains this host itself: its services leave as ECS stops their tasks", "sign", why)
	}
	return ok
}

// announce sends Changed when Draining's answer is not the one last sent: a notice came or went, or
// its time to leave came.
func (l *Lifecycle) announce() {
	l.mu.Lock()
	d := l.drainingLocked(l.now())
	changed := d != l.announced
	l.announced = d
	l.mu.Unlock()
	if changed {
		select {
		case l.changed <- struct{}{}:
		default:
		}
	}
}

// Changed receives a value when Draining's answer may have changed.
func (l *Lifecycle) Changed() <-chan struct{} { return l.changed }

// Notice returns the notice in force, if any.
func (l *Lifecycle) Notice() (HostNotice, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.notice == nil {
		return HostNotice{}, false
	}
	return *l.notice, true
}

// Checked is closed once the first round is done, whether instance metadata answered or not: a
// daemon that starts on a host already going learns it before it registers anything.
func (l *Lifecycle) Checked() <-chan struct{} { return l.checked }

// Run polls until ctx ends, and returns ctx's error. After a final notice it stops polling: there is
// nothing left to learn.
func (l *Lifecycle) Run(ctx context.Context) error {
	b := retry.Backoff(l.maxBackoff)
	for {
		// After a final notice there is nothing left to read, but the time to leave is still to come.
		answered := true
		if n, ok := l.Notice(); !ok || !n.final() {
			answered = l.round(ctx)
		}
		l.once.Do(func() { close(l.checked) })
		if answered {
			l.advise(ctx)
		}
		l.announce()
		wait := l.poll
		if answered {
			b.Reset()
		} else if ctx.Err() == nil {
			// No busy loop against an endpoint that is not there: back off, never below the poll interval.
			wait = min(max(wait, b.NextBackOff()), l.maxBackoff)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// round reads both paths once and records what they say. It reports whether any path answered.
func (l *Lifecycle) round(ctx context.Context) (answered bool) {
	now := time.Now()
	var errs []error
	spot, spotFound, err := l.fetch(ctx, PathSpotAction)
	var notice *HostNotice
	switch {
	case err != nil:
		errs = append(errs, err)
	case spotFound:
		n, perr := ParseSpotNotice(spot)
		if perr != nil {
			errs = append(errs, fmt.Errorf("instance metadata %s: %w", PathSpotAction, perr))
			break
		}
		answered = true
		notice = &n
	default:
		answered = true
	}
	// Both paths are on the same endpoint: when the first could not be reached, neither can the second.
	if answered || !unreachable(err) {
		state, found, err := l.fetch(ctx, PathTargetLifecycleState)
		switch {
		case err != nil:
			errs = append(errs, err)
		case found:
			going, perr := ParseTargetLifecycleState(state)
			if perr != nil {
				errs = append(errs, fmt.Errorf("instance metadata %s: %w", PathTargetLifecycleState, perr))
				break
			}
			answered = true
			// A Spot stop or hibernate may be undone; a termination is not: it wins.
			if going && (notice == nil || !notice.final()) {
				notice = &HostNotice{Kind: NoticeAutoScaling, Action: state, Reason: "Auto Scaling target lifecycle state " + state}
			}
		default:
			answered = true
		}
	}
	if ctx.Err() != nil {
		return answered
	}
	l.record(now, notice, spotFound || err != nil, errors.Join(errs...))
	return answered
}

// record keeps a notice and logs the changes: a notice, the watch failing or answering again.
// spotSeen says whether the Spot path had a notice or gave no answer, which does not lift one.
func (l *Lifecycle) record(now time.Time, n *HostNotice, spotSeen bool, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	first := !l.asked
	l.asked = true
	switch {
	case err != nil && l.failed == "" && (first || !l.up):
		l.log.Info("instance metadata does not answer (not on EC2? a bridge-mode container behind a hop limit of 1?); Spot and Auto Scaling notices are not watched until it does", "err", err)
	case err != nil && l.failed == "":
		l.log.Warn("instance metadata stopped answering; Spot and Auto Scaling notices are not watched until it answers again", "err", err)
	case err == nil && (first || l.failed != ""):
		l.log.Info("watching instance metadata for Spot interruption and Auto Scaling termination notices")
	}
	if err != nil {
		l.failed = err.Error()
	} else {
		l.failed = ""
	}
	l.up = err == nil

	old := l.notice
	switch {
	case n != nil && (old == nil || !old.final() && n.final()):
		n.Seen = now
		l.notice = n
		l.log.Warn("the host is going away", "why", n.Reason, "plan", l.planLocked(now).Why)
	case old != nil && !old.final() && !spotSeen && now.After(old.Time):
		// A stopped or hibernated Spot instance that is running again: the notice is gone and its
		// time has passed.
		l.notice, l.byECS, l.left = nil, "", false
		l.log.Info("the Spot notice is gone after its time: the instance is back", "was", old.Reason)
	}
}

// fetch reads one path. found is false, with no error, when instance metadata answers 404: there
// is no such item (no notice, or not in an Auto Scaling group).
func (l *Lifecycle) fetch(ctx context.Context, path string) (body string, found bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, l.timeout)
	defer cancel()
	out, err := l.get.GetMetadata(ctx, &imds.GetMetadataInput{Path: path}, noRetries)
	if err != nil {
		if notFound(err, path) {
			return "", false, nil
		}
		return "", false, fmt.Errorf("instance metadata %s: %w", path, err)
	}
	defer out.Content.Close()
	b, err := io.ReadAll(io.LimitReader(out.Content, 4096))
	if err != nil {
		return "", false, fmt.Errorf("instance metadata %s: %w", path, err)
	}
	return strings.TrimSpace(string(b)), true, nil
}

// noRetries: the next round is the retry, a second later; the SDK's own (three attempts with
// backoff) would only run into the request's timeout.
func noRetries(o *imds.Options) { o.Retryer = aws.NopRetryer{} }

// notFound reports whether err is a 404 for path itself. A 404 for the session token (something
// that is not instance metadata answers) is a failure, not "no notice".
func notFound(err error, path string) bool {
	var re *smithyhttp.ResponseError
	if !errors.As(err, &re) || re.HTTPStatusCode() != http.StatusNotFound {
		return false
	}
	if re.Response == nil || re.Response.Response == nil || re.Response.Request == nil {
		return false
	}
	return strings.HasSuffix(re.Response.Request.URL.Path, "/"+path)
}

// unreachable reports whether a request failed without any HTTP answer.
func unreachable(err error) bool {
	if err == nil {
		return false
	}
	var status interface{ HTTPStatusCode() int }
	return !errors.As(err, &status)
}

// spotActions are the actions a Spot interruption notice names.
var spotActions = map[string]bool{"terminate": true, "stop": true, "hibernate": true}

// ParseSpotNotice reads spot/instance-action. Anything but the documented document is an error, not
// a notice: a host is never drained because something answered with an HTML page.
func ParseSpotNotice(body string) (HostNotice, error) {
	var v struct {
		Action string `json:"action"`
		Time   string `json:"time"`
	}
	dec := json.NewDecoder(strings.NewReader(body))
	if err := dec.Decode(&v); err != nil {
		return HostNotice{}, fmt.Errorf("not a Spot interruption notice: %w", err)
	}
	if dec.More() {
		return HostNotice{}, errors.New("not a Spot interruption notice: data after the JSON object")
	}
	if !spotActions[v.Action] {
		return HostNotice{}, fmt.Errorf("not a Spot interruption notice: action %.40q", v.Action)
	}
	at, err := time.Parse(time.RFC3339, v.Time)
	if err != nil {
		return HostNotice{}, fmt.Errorf("not a Spot interruption notice: time %.40q", v.Time)
	}
	at = at.UTC()
	return HostNotice{Kind: NoticeSpot, Action: v.Action, Time: at,
		Reason: "EC2 Spot interruption notice: " + v.Action + " at " + at.Format(time.RFC3339)}, nil
}

// lifecycleStateRE is the shape of every Auto Scaling lifecycle state (InService, Warmed:Pending:Wait).
var lifecycleStateRE = regexp.MustCompile(`^[A-Z][A-Za-z]{1,30}(:[A-Z][A-Za-z]{1,30}){0,2}$`)

// ParseTargetLifecycleState reads autoscaling/target-lifecycle-state and reports whether the host is
// being terminated: Terminated, or Warmed:Terminated for an instance in a warm pool. Everything else
// (InService, Standby, Detached, the Warmed:* states an instance comes back from) is not a notice.
func ParseTargetLifecycleState(body string) (going bool, err error) {
	if !lifecycleStateRE.MatchString(body) {
		return false, fmt.Errorf("not an Auto Scaling lifecycle state: %.40q", body)
	}
	return body == "Terminated" || body == "Warmed:Terminated", nil
}
