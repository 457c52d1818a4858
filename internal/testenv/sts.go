package testenv

import (
	"fmt"
	"html"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
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

// IAMRole is a role FakeIAM knows: its name, path ("/" or "/a/b/") and tags.
type IAMRole struct {
	Name, Path string
	Tags       map[string]string
}

// FakeIAM answers STS GetCallerIdentity and IAM GetRole as AWS does on the wire, for several callers:
// the role is the one whose credentials signed the request (by access key ID), as for ECS task roles.
// Consul's aws-iam auth method with EnableIAMEntityDetails sends both (its STSEndpoint and
// IAMEndpoint); sidecar-for asks GetCallerIdentity itself to learn its role's name.
type FakeIAM struct {
	URL     string
	Account string
	roles   map[string]IAMRole // access key ID -> role
}

// RoleARN is the ARN of a role, as GetRole gives it (with its path).
func (f *FakeIAM) RoleARN(r IAMRole) string {
	return "arn:aws:iam::" + f.Account + ":role" + r.Path + r.Name
}

// roleID is a role's unique ID; GetCallerIdentity's UserId starts with it.
func roleID(name string) string { return "AROA" + strings.ToUpper(strings.ReplaceAll(name, "-", "")) }

// StartFakeIAM serves on addr (an address containers reach, or 127.0.0.1) until the test ends; roles
// are by the access key ID whose credentials are the role's.
func StartFakeIAM(t testing.TB, addr, account string, roles map[string]IAMRole) *FakeIAM {
	t.Helper()
	f := &FakeIAM{Account: account, roles: roles}
	byName := map[string]IAMRole{}
	for _, r := range roles {
		byName[r.Name] = r
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(addr, "0"))
	if err != nil {
		t.Fatal(err)
	}
	fail := func(w http.ResponseWriter, code int, kind, msg string) {
		w.Header().Set("Content-Type", "text/xml")
		w.WriteHeader(code)
		_, _ = fmt.Fprintf(w, `<ErrorResponse><Error><Type>Sender</Type><Code>%s</Code><Message>%s</Message></Error></ErrorResponse>`, kind, html.EscapeString(msg))
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		form, _ := url.ParseQuery(string(body))
		auth := r.Header.Get("Authorization")
		key, _, _ := strings.Cut(strings.TrimPrefix(auth, "AWS4-HMAC-SHA256 Credential="), "/")
		if r.Method != http.MethodPost || !strings.HasPrefix(auth, "AWS4-HMAC-SHA256 Credential=") {
			fail(w, http.StatusForbidden, "IncompleteSignature", "not a signed request")
			return
		}
		caller, ok := roles[key]
		if !ok {
			fail(w, http.StatusForbidden, "InvalidClientTokenId", "The security token included in the request is invalid.")
			return
		}
		w.Header().Set("Content-Type", "text/xml")
		switch form.Get("Action") {
		case "GetCallerIdentity":
			_, _ = fmt.Fprintf(w, `<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><GetCallerIdentityResult>`+
				`<Arn>arn:aws:sts::%s:assumed-role/%s/task</Arn><UserId>%s:task</UserId><Account>%s</Account>`+
				`</GetCallerIdentityResult></GetCallerIdentityResponse>`, account, caller.Name, roleID(caller.Name), account)
		case "GetRole":
			role, ok := byName[form.Get("RoleName")]
			if !ok {
				fail(w, http.StatusNotFound, "NoSuchEntity", "The role with name "+form.Get("RoleName")+" cannot be found.")
				return
			}
			var tags strings.Builder
			for k, v := range role.Tags {
				fmt.Fprintf(&tags, "<member><Key>%s</Key><Value>%s</Value></member>", html.EscapeString(k), html.EscapeString(v))
			}
			// No whitespace before the root element: Consul 1.14 requires the body to start with it.
			_, _ = fmt.Fprintf(w, `<GetRoleResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/"><GetRoleResult><Role>`+
				`<Path>%s</Path><RoleName>%s</RoleName><RoleId>%s</RoleId><Arn>%s</Arn><Tags>%s</Tags>`+
				`</Role></GetRoleResult></GetRoleResponse>`, role.Path, role.Name, roleID(role.Name), f.RoleARN(role), tags.String())
		default:
			fail(w, http.StatusBadRequest, "InvalidAction", "unknown action "+form.Get("Action"))
		}
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	f.URL = "http://" + ln.Addr().String()
	return f
}
