package ecsmeta

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/ecs-registrator/ecs-registrator/internal/testenv"
)

func TestParseSpotNotice(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		body, reason string // reason "" means not a notice
	}{
		{`{"action": "terminate", "time": "2017-09-18T08:22:00Z"}`, "EC2 Spot interruption notice: terminate at 2017-09-18T08:22:00Z"},
		{"{\n\t\"action\": \"stop\",\n\t\"time\": \"2026-11-28T23:49:07Z\"\n}\n", "EC2 Spot interruption notice: stop at 2026-11-28T23:49:07Z"},
		{`{"action":"hibernate","time":"2026-11-28T23:49:07+01:00"}`, "EC2 Spot interruption notice: hibernate at 2026-11-28T22:49:07Z"},
		{`{"action":"reboot","time":"2026-11-28T23:49:07Z"}`, ""},
		{`{"action":"terminate"}`, ""},
		{`{"action":"terminate","time":"soon"}`, ""},
		{`{"action":"terminate","time":"2026-11-28T23:49:07Z"} {}`, ""},
		{`<html><body>captive portal</body></html>`, ""},
		{``, ""},
		{`null`, ""},
	} {
		n, err := ParseSpotNotice(tc.body)
		switch {
		case tc.reason == "" && err == nil:
			t.Errorf("%q gave the notice %+v", tc.body, n)
		case tc.reason != "" && (err != nil || n.Reason != tc.reason || n.Kind != NoticeSpot || n.Time.IsZero()):
			t.Errorf("%q: %+v, %v; want %q", tc.body, n, err, tc.reason)
		}
	}
}

func TestParseTargetLifecycleState(t *testing.T) {
	t.Parallel()
	for body, want := range map[string]bool{"Terminated": true, "Warmed:Terminated": true, "InService": false, "Standby": false,
		"Detached": false, "Warmed:Stopped": false, "Warmed:Running": false, "Warmed:Hibernated": false, "Warmed:Pending:Wait": false} {
		if going, err := ParseTargetLifecycleState(body); err != nil || going != want {
			t.Errorf("%q: going %v, %v; want %v", body, going, err, want)
		}
	}
	for _, body := range []string{"", "terminated!", "<html>Terminated</html>", "Terminated\nInService", strings.Repeat("A", 100)} {
		if _, err := ParseTargetLifecycleState(body); err == nil {
			t.Errorf("%q accepted as a lifecycle state", body)
		}
	}
}

func FuzzParseSpotNotice(f *testing.F) {
	f.Add(`{"action": "terminate", "time": "2017-09-18T08:22:00Z"}`)
	f.Add(`{"action":"stop","time":"2026-11-28T23:49:07+01:00"}`)
	f.Add(`<html>`)
	f.Fuzz(func(t *testing.T, body string) {
		n, err := ParseSpotNotice(body)
		if err != nil {
			return
		}
		if !spotActions[n.Action] || n.Time.IsZero() || !strings.HasPrefix(n.Reason, "EC2 Spot interruption notice: ") || len(n.Reason) > 100 {
			t.Fatalf("%q gave %+v", body, n)
		}
	})
}

func FuzzParseTargetLifecycleState(f *testing.F) {
	f.Add("InService")
	f.Add("Terminated")
	f.Add("Warmed:Pending:Wait")
	f.Fuzz(func(t *testing.T, body string) {
		going, err := ParseTargetLifecycleState(body)
		if going && (err != nil || !strings.HasSuffix(body, "Terminated")) {
			t.Fatalf("%q: going %v, %v", body, going, err)
		}
	})
}

// fakeMetadata answers GetMetadata from a function of the path, counting requests. It runs in a
// synctest bubble: no network, bubble time.
type fakeMetadata struct {
	mu       sync.Mutex
	answer   func(ctx context.Context, path string) (string, error)
	requests map[string]int
}

func (f *fakeMetadata) GetMetadata(ctx context.Context, in *imds.GetMetadataInput, _ ...func(*imds.Options)) (*imds.GetMetadataOutput, error) {
	f.mu.Lock()
	f.requests[in.Path]++
	answer := f.answer
	f.mu.Unlock()
	body, err := answer(ctx, in.Path)
	if err != nil {
		return nil, err
	}
	return &imds.GetMetadataOutput{Content: io.NopCloser(strings.NewReader(body))}, nil
}

func (f *fakeMetadata) set(answer func(ctx context.Context, path string) (string, error)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.answer = answer
}

func (f *fakeMetadata) count(path string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.requests[path]
}

// httpStatus is the error the SDK returns for an HTTP error status on a request to urlPath.
func httpStatus(code int, urlPath string) error {
	return &smithyhttp.ResponseError{Err: errors.New(http.StatusText(code)), Response: &smithyhttp.Response{Response: &http.Response{
		StatusCode: code, Request: &http.Request{URL: &url.URL{Path: urlPath}}}}}
}

func notFoundAt(path string) error { return httpStatus(http.StatusNotFound, "/latest/meta-data/"+path) }

var (
	errNoRoute = &smithyhttp.RequestSendError{Err: errors.New("dial tcp 169.254.169.254:80: connect: no route to host")}
	errTeapot  = errors.New("unexpected")
)

// nothing is instance metadata with no notice: neither path exists (an instance outside an ASG).
func nothing(_ context.Context, path string) (string, error) { return "", notFoundAt(path) }

func spotAt(at time.Time, action string) func(context.Context, string) (string, error) {
	return func(_ context.Context, path string) (string, error) {
		if path == PathSpotAction {
			return `{"action": "` + action + `", "time": "` + at.UTC().Format(time.RFC3339) + `"}`, nil
		}
		return "", notFoundAt(path)
	}
}

func asgState(state string) func(context.Context, string) (string, error) {
	return func(_ context.Context, path string) (string, error) {
		if path == PathTargetLifecycleState {
			return state, nil
		}
		return "", notFoundAt(path)
	}
}

// watch runs a Lifecycle over f in the bubble until the test ends.
func watch(t *testing.T, f *fakeMetadata, logs *testenv.Buffer) *Lifecycle {
	t.Helper()
	l := newLifecycle(f, LifecycleConfig{Logger: slog.New(slog.NewTextHandler(logs, nil))})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Run returned %v", err)
		}
	})
	return l
}

func changed(l *Lifecycle) bool {
	select {
	case <-l.Changed():
		return true
	default:
		return false
	}
}

// A Spot notice is read within a poll of appearing; the host's services stay until its time less
// the margin (ECS's Spot draining stops the tasks it can meanwhile), then drain with its reason.
// It stays: the watcher stops asking, and the notice going away again (it would not, on EC2)
// changes nothing.
func TestLifecycleSpotNotice(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeMetadata{answer: nothing, requests: map[string]int{}}
		logs := &testenv.Buffer{}
		l := watch(t, f, logs)
		synctest.Wait()
		select {
		case <-l.Checked():
		default:
			t.Fatal("the first round is not done although instance metadata answered at once")
		}
		time.Sleep(10 * time.Second)
		synctest.Wait()
		if l.Draining() != "" || changed(l) {
			t.Fatalf("draining %q without a notice", l.Draining())
		}
		if n := f.count(PathSpotAction); n < 10 || n > 12 {
			t.Errorf("%d polls of the Spot path in 10s, want one a second", n)
		}
		at := time.Now().Add(2 * time.Minute)
		f.set(spotAt(at, "terminate"))
		appeared := time.Now()
		for _, ok := l.Notice(); !ok; _, ok = l.Notice() {
			time.Sleep(10 * time.Millisecond)
			synctest.Wait()
		}
		if d := time.Since(appeared); d > time.Second {
			t.Errorf("the notice was seen %v after it appeared, want within the 1s poll", d)
		}
		if p, _ := l.Plan(); l.Draining() != "" || changed(l) || !p.LeaveAt.Equal(at.Truncate(time.Second).Add(-30*time.Second)) {
			t.Fatalf("draining %q at once; plan %+v", l.Draining(), p)
		}
		for l.Draining() == "" {
			time.Sleep(10 * time.Millisecond)
			synctest.Wait()
		}
		if left := time.Until(at); left > 31*time.Second || left < 29*time.Second {
			t.Errorf("drained %v before the Spot action, want the 30s margin", left)
		}
		want := "EC2 Spot interruption notice: terminate at " + at.UTC().Format(time.RFC3339)
		if got := l.Draining(); got != want {
			t.Errorf("Draining() = %q, want %q", got, want)
		}
		if !changed(l) || changed(l) {
			t.Error("Changed did not fire exactly once")
		}
		n, ok := l.Notice()
		if !ok || n.Kind != NoticeSpot || n.Action != "terminate" || !n.Time.Equal(at.Truncate(time.Second)) || n.Seen.IsZero() {
			t.Errorf("notice %+v", n)
		}
		before := f.count(PathSpotAction) + f.count(PathTargetLifecycleState)
		f.set(nothing)
		time.Sleep(10 * time.Minute)
		synctest.Wait()
		if l.Draining() != want || changed(l) {
			t.Errorf("a terminate notice did not stay: %q", l.Draining())
		}
		if got := f.count(PathSpotAction) + f.count(PathTargetLifecycleState) - before; got != 0 {
			t.Errorf("%d requests for notices after a final notice", got)
		}
		if c := strings.Count(logs.String(), "the host is going away"); c != 1 {
			t.Errorf("the notice logged %d times:\n%s", c, logs)
		}
	})
}

// An Auto Scaling scale-in (target state Terminated) drains the host when no sign that ECS drains
// it comes within the evidence window; the states an instance comes back from do not.
func TestLifecycleAutoScalingTerminated(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeMetadata{answer: asgState("InService"), requests: map[string]int{}}
		l := watch(t, f, &testenv.Buffer{})
		for _, state := range []string{"InService", "Standby", "Warmed:Running", "Detached", "InService"} {
			f.set(asgState(state))
			time.Sleep(5 * time.Second)
			synctest.Wait()
			if l.Draining() != "" || changed(l) {
				t.Fatalf("%s drained the host: %q", state, l.Draining())
			}
		}
		f.set(asgState("Terminated"))
		time.Sleep(time.Second)
		synctest.Wait()
		if _, ok := l.Notice(); !ok || l.Draining() != "" {
			t.Fatalf("notice read %v, draining %q at once", ok, l.Draining())
		}
		time.Sleep(10 * time.Second)
		synctest.Wait()
		if got, want := l.Draining(), "Auto Scaling target lifecycle state Terminated"; got != want || !changed(l) {
			t.Fatalf("Draining() = %q, want %q", got, want)
		}
		f.set(asgState("InService"))
		time.Sleep(time.Minute)
		synctest.Wait()
		if l.Draining() == "" {
			t.Error("a terminated host came back")
		}
	})
}

// Instance metadata that is not there, hangs, refuses, or answers something else changes nothing:
// no drain, one log line, and a backoff instead of a busy loop.
func TestLifecycleBrokenMetadataChangesNothing(t *testing.T) {
	for name, answer := range map[string]func(context.Context, string) (string, error){
		"unreachable": func(context.Context, string) (string, error) { return "", errNoRoute },
		"hangs": func(ctx context.Context, _ string) (string, error) {
			<-ctx.Done()
			return "", &smithyhttp.RequestSendError{Err: ctx.Err()}
		},
		"500":           func(context.Context, string) (string, error) { return "", httpStatus(500, "/latest/api/token") },
		"token refused": func(context.Context, string) (string, error) { return "", httpStatus(404, "/latest/api/token") },
		"other error":   func(context.Context, string) (string, error) { return "", errTeapot },
		"html": func(context.Context, string) (string, error) {
			return "<html><body>Terminated: please log in</body></html>", nil
		},
	} {
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := &fakeMetadata{answer: answer, requests: map[string]int{}}
				logs := &testenv.Buffer{}
				l := watch(t, f, logs)
				start := time.Now()
				<-l.Checked()
				if d := time.Since(start); d > 2*time.Second {
					t.Errorf("the first round took %v", d)
				}
				time.Sleep(10 * time.Minute)
				synctest.Wait()
				if l.Draining() != "" || changed(l) {
					t.Fatalf("broken metadata drained the host: %q", l.Draining())
				}
				rounds := f.count(PathSpotAction)
				if rounds < 15 || rounds > 60 {
					t.Errorf("%d rounds in 10 minutes, want a backoff to 30s that keeps trying", rounds)
				}
				if n := strings.Count(logs.String(), "\n"); n != 1 {
					t.Errorf("%d log lines, want 1:\n%s", n, logs)
				}
			})
		})
	}
}

// Metadata that comes back is watched at the poll interval again, and says so once.
func TestLifecycleRecovers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeMetadata{answer: func(context.Context, string) (string, error) { return "", errNoRoute }, requests: map[string]int{}}
		logs := &testenv.Buffer{}
		l := watch(t, f, logs)
		time.Sleep(5 * time.Minute)
		f.set(nothing)
		time.Sleep(31 * time.Second) // at most one backoff (30s)
		synctest.Wait()
		if !strings.Contains(logs.String(), "watching instance metadata") {
			t.Fatalf("no line when metadata answered again:\n%s", logs)
		}
		n := f.count(PathSpotAction)
		time.Sleep(10 * time.Second)
		synctest.Wait()
		if got := f.count(PathSpotAction) - n; got < 9 || got > 11 {
			t.Errorf("%d polls in 10s after recovery, want one a second", got)
		}
		f.set(func(context.Context, string) (string, error) { return "", errNoRoute })
		time.Sleep(time.Minute)
		synctest.Wait()
		if c := strings.Count(logs.String(), "\n"); c != 3 {
			t.Errorf("%d log lines for down, up, down; want 3:\n%s", c, logs)
		}
		if l.Draining() != "" {
			t.Error("drained")
		}
	})
}

// A Spot instance that is stopped or hibernated may come back: its notice lifts once IMDS no longer
// has it after its time, never before. A termination that follows replaces it for good.
func TestLifecycleHibernatedInstanceComesBack(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeMetadata{answer: nothing, requests: map[string]int{}}
		l := watch(t, f, &testenv.Buffer{})
		at := time.Now().Add(time.Minute)
		f.set(spotAt(at, "hibernate"))
		time.Sleep(31 * time.Second)
		synctest.Wait()
		if !strings.Contains(l.Draining(), "hibernate") || !changed(l) {
			t.Fatalf("Draining() = %q", l.Draining())
		}
		f.set(nothing) // a notice missing before its time is a glitch
		time.Sleep(20 * time.Second)
		synctest.Wait()
		if l.Draining() == "" {
			t.Fatal("the notice lifted before its time")
		}
		time.Sleep(2 * time.Minute) // resumed after the announced time, notice gone
		synctest.Wait()
		if l.Draining() != "" || !changed(l) {
			t.Fatalf("the notice did not lift after the instance came back: %q", l.Draining())
		}
		f.set(spotAt(time.Now().Add(2*time.Minute), "stop"))
		time.Sleep(time.Second)
		f.set(asgState("Terminated"))
		time.Sleep(11 * time.Second)
		synctest.Wait()
		if got := l.Draining(); !strings.Contains(got, "Auto Scaling") {
			t.Errorf("the termination did not replace the stop notice: %q", got)
		}
		f.set(nothing)
		time.Sleep(10 * time.Minute)
		synctest.Wait()
		if l.Draining() == "" {
			t.Error("a terminated host came back")
		}
	})
}

// imdsServer is an IMDSv2 endpoint: a token, then the two lifecycle paths as the test sets them.
type imdsServer struct {
	*httptest.Server
	tokens   atomic.Int64
	gets     atomic.Int64
	mu       sync.Mutex
	spot     string // body of spot/instance-action, "" for 404
	asg      string // body of autoscaling/target-lifecycle-state, "" for 404
	override http.HandlerFunc
}

func newIMDSServer(t *testing.T) *imdsServer {
	s := &imdsServer{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		spot, asg, override := s.spot, s.asg, s.override
		s.mu.Unlock()
		if override != nil {
			override(w, r)
			return
		}
		if r.Method == http.MethodPut && r.URL.Path == "/latest/api/token" {
			s.tokens.Add(1)
			w.Header().Set("X-Aws-Ec2-Metadata-Token-Ttl-Seconds", r.Header.Get("X-Aws-Ec2-Metadata-Token-Ttl-Seconds"))
			_, _ = w.Write([]byte("tok"))
			return
		}
		if r.Header.Get("X-Aws-Ec2-Metadata-Token") != "tok" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		s.gets.Add(1)
		body := map[string]string{"/latest/meta-data/" + PathSpotAction: spot, "/latest/meta-data/" + PathTargetLifecycleState: asg}[r.URL.Path]
		if body == "" {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *imdsServer) set(f func(s *imdsServer)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(s)
}

func runOver(t *testing.T, s *imdsServer, logs *testenv.Buffer) *Lifecycle {
	c := imds.New(imds.Options{Endpoint: s.URL, EnableFallback: aws.FalseTernary})
	l := NewLifecycle(LifecycleConfig{IMDS: c, Poll: 20 * time.Millisecond, Timeout: 200 * time.Millisecond,
		MaxBackoff: 100 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { _ = l.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return l
}

// Over HTTP with the SDK's client: a 404 is "no notice", the session token is fetched once and
// reused, and the notice is read from the wire.
func TestLifecycleOverHTTP(t *testing.T) {
	t.Parallel()
	s := newIMDSServer(t)
	l := runOver(t, s, &testenv.Buffer{})
	testenv.Eventually(t, 5*time.Second, "never polled", func() bool { return s.gets.Load() >= 20 })
	if l.Draining() != "" {
		t.Fatalf("404s drained the host: %q", l.Draining())
	}
	if n := s.tokens.Load(); n != 1 {
		t.Errorf("%d token requests, want the cached one reused", n)
	}
	s.set(func(s *imdsServer) { s.asg = "InService" })
	// Within the margin of its time: the services leave at once.
	at := time.Now().Add(10 * time.Second).UTC().Format(time.RFC3339)
	s.set(func(s *imdsServer) { s.spot = `{"action":"stop","time":"` + at + `"}` })
	testenv.Eventually(t, 5*time.Second, "the notice was never read", func() bool { return l.Draining() != "" })
	if got, want := l.Draining(), "EC2 Spot interruption notice: stop at "+at; got != want {
		t.Errorf("Draining() = %q, want %q", got, want)
	}
}

// The brief's "IMDS absent or erroring changes nothing", over HTTP with the SDK's client: 500s, a
// token that is refused, an endpoint that never answers (a hop limit of 1 behind a bridge), and a
// closed port. The first round ends within the request timeout, and no notice is ever raised.
func TestLifecycleOverHTTPBrokenChangesNothing(t *testing.T) {
	t.Parallel()
	hang := make(chan struct{})
	t.Cleanup(func() { close(hang) })
	for name, h := range map[string]http.HandlerFunc{
		"500s":          func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusInternalServerError) },
		"token refused": func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusForbidden) },
		"404 for everything, token too": func(w http.ResponseWriter, r *http.Request) {
			http.NotFound(w, r)
		},
		"never answers": func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-hang:
			case <-r.Context().Done():
			}
		},
		"garbage": func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodPut {
				w.Header().Set("X-Aws-Ec2-Metadata-Token-Ttl-Seconds", "21600")
			}
			_, _ = w.Write([]byte("<html>Terminated</html>"))
		},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			s := newIMDSServer(t)
			s.set(func(s *imdsServer) { s.override = h })
			logs := &testenv.Buffer{}
			started := time.Now()
			l := runOver(t, s, logs)
			select {
			case <-l.Checked():
			case <-time.After(5 * time.Second):
				t.Fatal("the first round never ended")
			}
			if d := time.Since(started); d > 2*time.Second {
				t.Errorf("the first round took %v with a 200ms timeout", d)
			}
			testenv.Eventually(t, 5*time.Second, "the failure was not logged", func() bool {
				return strings.Contains(logs.String(), "instance metadata does not answer")
			})
			if l.Draining() != "" {
				t.Errorf("drained: %q", l.Draining())
			}
		})
	}
	t.Run("closed port", func(t *testing.T) {
		t.Parallel()
		c := imds.New(imds.Options{Endpoint: "http://127.0.0.1:1", EnableFallback: aws.FalseTernary})
		l := NewLifecycle(LifecycleConfig{IMDS: c, Poll: 20 * time.Millisecond})
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() { _ = l.Run(ctx); close(done) }()
		defer func() { cancel(); <-done }()
		<-l.Checked()
		if l.Draining() != "" {
			t.Errorf("drained: %q", l.Draining())
		}
	})
}

// drainSign is ECS seen draining the host, from a time on.
type drainSign struct {
	mu sync.Mutex
	at time.Time // zero: no sign
}

func (d *drainSign) DrainingSince(t time.Time) (string, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.at.IsZero() || d.at.Before(t) {
		return "", false
	}
	return "a task marked STOPPED", true
}

// With managed instance draining, ECS drains the host: a task marked STOPPED after the Auto Scaling
// notice keeps the rest of the host's services advertised, each to leave with its task. A task
// stopped before the notice is no such sign.
func TestLifecycleAutoScalingWithECSDraining(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeMetadata{answer: asgState("InService"), requests: map[string]int{}}
		l := watch(t, f, &testenv.Buffer{})
		sign := &drainSign{at: time.Now()} // a deploy stopped a task before the notice
		l.WatchECS(sign)
		time.Sleep(5 * time.Second)
		f.set(asgState("Terminated"))
		time.Sleep(5 * time.Second)
		synctest.Wait()
		sign.mu.Lock()
		sign.at = time.Now()
		sign.mu.Unlock()
		time.Sleep(time.Hour)
		synctest.Wait()
		p, _ := l.Plan()
		if l.Draining() != "" || changed(l) || !p.LeaveAt.IsZero() || !strings.Contains(p.Why, "ECS drains this host") {
			t.Fatalf("draining %q, plan %+v; want ECS to drain it", l.Draining(), p)
		}
	})
}

// A Spot notice closer than the margin drains at once.
func TestLifecycleLateSpotNotice(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeMetadata{answer: nothing, requests: map[string]int{}}
		l := watch(t, f, &testenv.Buffer{})
		time.Sleep(time.Second)
		f.set(spotAt(time.Now().Add(20*time.Second), "terminate"))
		time.Sleep(time.Second)
		synctest.Wait()
		if !strings.Contains(l.Draining(), "terminate") || !changed(l) {
			t.Fatalf("Draining() = %q, want at once", l.Draining())
		}
	})
}

func TestParseAdvice(t *testing.T) {
	t.Parallel()
	if at, err := ParseRebalance(`{"noticeTime": "2020-10-27T08:22:00Z"}`); err != nil || !at.Equal(time.Date(2020, 10, 27, 8, 22, 0, 0, time.UTC)) {
		t.Errorf("rebalance: %v %v", at, err)
	}
	for _, bad := range []string{``, `<html>`, `{"noticeTime":"soon"}`} {
		if _, err := ParseRebalance(bad); err == nil {
			t.Errorf("%q accepted as a rebalance recommendation", bad)
		}
	}
	events := `[{"NotBefore":"21 Jan 2019 09:00:43 GMT","Code":"system-reboot","Description":"scheduled reboot","EventId":"instance-event-0d59937288b749b32","NotAfter":"21 Jan 2019 09:17:23 GMT","State":"active"},
		{"Code":"instance-stop","EventId":"instance-event-1","State":"completed"}]`
	got, err := ParseScheduledEvents(events)
	if err != nil || len(got) != 1 || !strings.Contains(got[0], "system-reboot instance-event-0d59937288b749b32 from 21 Jan 2019") {
		t.Errorf("events: %q %v", got, err)
	}
	if _, err := ParseScheduledEvents(`{}`); err == nil {
		t.Error("an object accepted as a list of events")
	}
}

// Rebalance recommendations and scheduled events are read and shown, never drained on.
func TestLifecycleAdviceDoesNotDrain(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeMetadata{answer: func(_ context.Context, path string) (string, error) {
			switch path {
			case PathRebalance:
				return `{"noticeTime": "2026-12-06T10:00:00Z"}`, nil
			case PathScheduledEvents:
				return `[{"Code":"system-reboot","EventId":"instance-event-1","NotBefore":"7 Dec 2026 09:00:00 GMT","State":"active"}]`, nil
			}
			return "", notFoundAt(path)
		}, requests: map[string]int{}}
		l := watch(t, f, &testenv.Buffer{})
		time.Sleep(time.Minute)
		synctest.Wait()
		a := l.Advice()
		if a.Rebalance.IsZero() || len(a.Maintenance) != 1 || l.Draining() != "" || changed(l) {
			t.Fatalf("advice %+v, draining %q", a, l.Draining())
		}
		if n := f.count(PathRebalance); n < 2 || n > 3 {
			t.Errorf("%d reads of the rebalance path in a minute, want one every 30s", n)
		}
	})
}

// A sign that ECS drains the host, come after the services left on an Auto Scaling notice, does not
// bring them back: the host is going all the same.
func TestLifecycleLateSignDoesNotUndoTheDrain(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeMetadata{answer: asgState("InService"), requests: map[string]int{}}
		l := watch(t, f, &testenv.Buffer{})
		sign := &drainSign{}
		l.WatchECS(sign)
		time.Sleep(time.Second)
		f.set(asgState("Terminated"))
		time.Sleep(12 * time.Second)
		synctest.Wait()
		if l.Draining() == "" || !changed(l) {
			t.Fatalf("no drain 11 s after the notice without a sign: %q", l.Draining())
		}
		sign.mu.Lock()
		sign.at = time.Now()
		sign.mu.Unlock()
		time.Sleep(time.Minute)
		synctest.Wait()
		if l.Draining() == "" || changed(l) {
			t.Fatalf("a late sign undid the drain: %q", l.Draining())
		}
	})
}

// An Auto Scaling termination during a Spot stop notice (which may be undone) takes its place.
func TestLifecycleTerminationOverSpotStop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeMetadata{answer: nothing, requests: map[string]int{}}
		l := watch(t, f, &testenv.Buffer{})
		at := time.Now().Add(2 * time.Minute).UTC().Format(time.RFC3339)
		f.set(func(_ context.Context, path string) (string, error) {
			switch path {
			case PathSpotAction:
				return `{"action": "stop", "time": "` + at + `"}`, nil
			case PathTargetLifecycleState:
				return "Terminated", nil
			}
			return "", notFoundAt(path)
		})
		time.Sleep(2 * time.Second)
		synctest.Wait()
		if n, ok := l.Notice(); !ok || n.Kind != NoticeAutoScaling {
			t.Fatalf("notice %+v, want the Auto Scaling termination", n)
		}
	})
}
