package consul

import (
	"fmt"
	"strings"
	"sync/atomic"

	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/hashicorp/consul/api"

	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ecs-registrator/ecs-registrator/internal/testenv"
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
	a, err := NewAgent(srv.URL)
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
	if _, err := NewAgent(srv.URL); err == nil {
		t.Error("an empty token file at start was accepted")
	}
}

// A login's token is renewed when two thirds of its lifetime have passed, not only when Consul says it
// is gone. (The login itself is proven against a real Consul in TestIAMLogin.)
func TestIAMLoginRenewsBeforeExpiry(t *testing.T) {
	var logins atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/acl/login" {
			http.NotFound(w, r)
			return
		}
		n := logins.Add(1)
		exp := time.Now().Add(300 * time.Millisecond).UTC().Format(time.RFC3339Nano)
		fmt.Fprintf(w, `{"AccessorID":"a%d","SecretID":"token-%d","ExpirationTime":%q}`, n, n, exp)
	}))
	defer srv.Close()
	t.Setenv("AWS_ENDPOINT_URL_STS", "http://127.0.0.1:1")
	t.Setenv("AWS_REGION", "us-east-1") // no region is guessed, and instance metadata is not asked
	c, err := api.NewClient(&api.Config{Address: strings.TrimPrefix(srv.URL, "http://")})
	if err != nil {
		t.Fatal(err)
	}
	l := &iamLogin{IAMLogin: IAMLogin{Method: "aws", Creds: credentials.NewStaticCredentialsProvider("AKID", "secret", "")}, consul: c}
	first, err := l.current(t.Context())
	if err != nil || first != "token-1" {
		t.Fatalf("first login: %q, %v", first, err)
	}
	if again, _ := l.current(t.Context()); again != first {
		t.Fatalf("a fresh token was not reused: %q", again)
	}
	testenv.Eventually(t, 5*time.Second, "the token was never renewed before it expired", func() bool {
		tok, err := l.current(t.Context())
		return err == nil && tok == "token-2"
	})
}
