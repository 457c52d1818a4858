package consul

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"
)

// ACLPolicy is the least a token needs for the daemon to work with an agent whose ACLs deny by
// default: agent:read for the node name (/v1/agent/self), service:write to register and deregister
// (and to read the agent's services and checks). A narrower service_prefix limits what it may
// register; a container whose service it may not write shows the refusal on the status page.
const ACLPolicy = `agent_prefix "" {
  policy = "read"
}
service_prefix "" {
  policy = "write"
}`

// tokenFile is CONSUL_HTTP_TOKEN_FILE, read again whenever it changes, so a rotated token is used
// without a restart. A read that is empty (a file being rewritten) keeps the token it had.
type tokenFile struct {
	path string

	mu    sync.Mutex
	token string
	mtime time.Time
	size  int64
	gen   uint64 // how many times the token changed after the first read
}

func (f *tokenFile) generation() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.gen
}

func (f *tokenFile) current(context.Context) (string, error) { return f.read(), nil }

// read returns the file's token, reading the file again when it changed.
func (f *tokenFile) read() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	st, err := os.Stat(f.path)
	if err != nil || (st.ModTime().Equal(f.mtime) && st.Size() == f.size) {
		return f.token
	}
	b, err := os.ReadFile(f.path)
	if t := strings.TrimSpace(string(b)); err == nil && t != "" {
		if f.token != "" && t != f.token {
			f.gen++
		}
		f.token, f.mtime, f.size = t, st.ModTime(), st.Size()
	}
	return f.token
}

// forget does nothing: a token file's token is whatever the file holds.
func (f *tokenFile) forget(string) {}

// tokenSource gives the token for the next request: from a file, or from a login.
type tokenSource interface {
	current(ctx context.Context) (string, error)
	// forget drops a token Consul said it does not know.
	forget(token string)
	// generation counts the changes of the token since the first one.
	generation() uint64
}

// tokenTransport sets each request's token from its source. When Consul answers that the token is
// gone ("ACL not found": deleted, or expired), the source forgets it and the request is tried once
// more with a new one.
type tokenTransport struct {
	src  tokenSource
	next http.RoundTripper
}

func (t tokenTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	for attempt := 0; ; attempt++ {
		token, err := t.src.current(r.Context())
		if err != nil {
			return nil, err
		}
		req := r.Clone(r.Context())
		if attempt > 0 && r.GetBody != nil {
			if req.Body, err = r.GetBody(); err != nil {
				return nil, err
			}
		}
		if token != "" {
			req.Header.Set("X-Consul-Token", token)
		}
		resp, err := t.next.RoundTrip(req)
		if err != nil || resp.StatusCode != http.StatusForbidden || token == "" {
			return resp, err
		}
		body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		if err != nil {
			return nil, err
		}
		resp.Body = io.NopCloser(bytes.NewReader(body))
		if !strings.Contains(string(body), "ACL not found") {
			return resp, nil
		}
		t.src.forget(token)
		if attempt > 0 || (r.Body != nil && r.GetBody == nil) {
			return resp, nil
		}
	}
}
