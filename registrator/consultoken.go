package registrator

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/consul/api"
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
}

func (f *tokenFile) current() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	st, err := os.Stat(f.path)
	if err != nil || (st.ModTime().Equal(f.mtime) && st.Size() == f.size) {
		return f.token
	}
	b, err := os.ReadFile(f.path)
	if t := strings.TrimSpace(string(b)); err == nil && t != "" {
		f.token, f.mtime, f.size = t, st.ModTime(), st.Size()
	}
	return f.token
}

// tokenTransport sets each request's token from the token file.
type tokenTransport struct {
	file *tokenFile
	next http.RoundTripper
}

func (t tokenTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	token := t.file.current()
	if token == "" {
		return t.next.RoundTrip(r)
	}
	r = r.Clone(r.Context())
	r.Header.Set("X-Consul-Token", token)
	return t.next.RoundTrip(r)
}

// withTokenFile makes the client read its token from the file on every request.
func withTokenFile(cfg *api.Config, path string) error {
	f := &tokenFile{path: path}
	if f.current() == "" {
		return fmt.Errorf("CONSUL_HTTP_TOKEN_FILE %s: no token in it", path)
	}
	hc, err := api.NewHttpClient(cfg.Transport, cfg.TLSConfig)
	if err != nil {
		return err
	}
	hc.Transport = tokenTransport{file: f, next: hc.Transport}
	cfg.HttpClient = hc
	return nil
}

// Refused reports whether the agent answered a request and refused it (an ACL, a bad definition), as
// opposed to not answering: it is reachable.
func Refused(err error) bool {
	var se api.StatusError
	return errors.As(err, &se)
}
