package registrator

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// The token file is read again when it changes; an empty read (a file being rewritten) keeps the
// token; every request carries the current token.
func TestTokenFileRotation(t *testing.T) {
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = append(got, r.Header.Get("X-Consul-Token"))
		_, _ = w.Write([]byte(`{"Config":{"NodeName":"n1"}}`))
	}))
	defer srv.Close()
	path := filepath.Join(t.TempDir(), "token")
	write := func(s string, mtime time.Time) {
		if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(path, mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	write("first-token\n", start)
	t.Setenv("CONSUL_HTTP_TOKEN_FILE", path)
	t.Setenv("CONSUL_HTTP_TOKEN", "")
	a, err := NewConsulAgent(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	for _, step := range []struct {
		content string
		want    string
	}{{"first-token\n", "first-token"}, {"second-token", "second-token"}, {"  \n", "second-token"}, {"third-token\n", "third-token"}} {
		start = start.Add(time.Second)
		write(step.content, start)
		if _, err := a.NodeName(t.Context()); err != nil {
			t.Fatal(err)
		}
		if last := got[len(got)-1]; last != step.want {
			t.Errorf("after writing %q the request carried %q, want %q", step.content, last, step.want)
		}
	}
	write("", start.Add(time.Second))
	if _, err := NewConsulAgent(srv.URL); err == nil {
		t.Error("an empty token file at start was accepted")
	}
}
