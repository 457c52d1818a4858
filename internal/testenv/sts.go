package testenv

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

// FakeSTS answers AWS STS GetCallerIdentity as STS does on the wire (the query protocol's XML), for
// Consul's aws-iam auth method, which sends a client's signed request there to learn who it is. It
// checks the request is signed, and answers with ARN; nothing else is faked.
type FakeSTS struct {
	URL   string
	Calls atomic.Int64
}

// StartFakeSTS serves on loopback until the test ends.
func StartFakeSTS(t testing.TB, arn, account string) *FakeSTS {
	t.Helper()
	f := &FakeSTS{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.Calls.Add(1)
		body, _ := io.ReadAll(r.Body)
		if r.Method != http.MethodPost || !strings.Contains(string(body), "Action=GetCallerIdentity") ||
			!strings.HasPrefix(r.Header.Get("Authorization"), "AWS4-HMAC-SHA256 Credential=") {
			w.WriteHeader(http.StatusForbidden)
			_, _ = io.WriteString(w, `<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type>`+
				`<Code>IncompleteSignature</Code><Message>not a signed GetCallerIdentity request</Message></Error></ErrorResponse>`)
			return
		}
		w.Header().Set("Content-Type", "text/xml")
		_, _ = io.WriteString(w, `<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <GetCallerIdentityResult>
    <Arn>`+arn+`</Arn>
    <UserId>AROAEXAMPLEROLEID:session</UserId>
    <Account>`+account+`</Account>
  </GetCallerIdentityResult>
  <ResponseMetadata>
    <RequestId>01234567-89ab-cdef-0123-456789abcdef</RequestId>
  </ResponseMetadata>
</GetCallerIdentityResponse>`)
	}))
	t.Cleanup(srv.Close)
	f.URL = srv.URL
	return f
}
