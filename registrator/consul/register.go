package consul

import (
	"context"
	"net/http"
	"net/url"

	"github.com/hashicorp/consul/api"
)

// registration is the body of PUT /v1/agent/service/register: consul/api's AgentServiceRegistration,
// whose Checks this one shadows with checks that can say DisableRedirects. Consul 1.14's agent
// decodes that field (structs.CheckType, JSON name "DisableRedirects"; it rejects the snake-case
// disable_redirects of check definition files as an unknown field), but the consul/api module this
// daemon can build with (v1.34.5; v1.35 needs a newer Go) has no field for it.
type registration struct {
	*api.AgentServiceRegistration
	Checks []registrationCheck
}

type registrationCheck struct {
	api.AgentServiceCheck
	DisableRedirects bool `json:",omitempty"`
}

// registerPath is the agent's endpoint; registerQuery makes a registration replace the service's
// checks (ServiceRegisterOpts' ReplaceExistingChecks), so a check an earlier definition had and this
// one has not is dropped.
const registerPath = "/v1/agent/service/register"

var registerQuery = url.Values{"replace-existing-checks": {"true"}}

// register writes reg through the client's own request path (address, TLS, token, headers, errors as
// api.StatusError), which takes no query parameters: withQuery hands them to queryTransport.
func (a *Agent) register(ctx context.Context, reg registration) error {
	_, err := a.c.Raw().Write(registerPath, reg, nil, (&api.WriteOptions{}).WithContext(withQuery(ctx, registerQuery)))
	return err
}

type queryKey struct{}

// withQuery asks queryTransport to add q to the request made with ctx.
func withQuery(ctx context.Context, q url.Values) context.Context {
	return context.WithValue(ctx, queryKey{}, q)
}

// queryTransport adds the query parameters a request's context carries (withQuery). It wraps every
// client NewAgent makes.
type queryTransport struct{ next http.RoundTripper }

func (t queryTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	add, _ := r.Context().Value(queryKey{}).(url.Values)
	if len(add) == 0 {
		return t.next.RoundTrip(r)
	}
	r = r.Clone(r.Context()) // a RoundTripper must not change the caller's request
	q := r.URL.Query()
	for k, v := range add {
		q[k] = v
	}
	r.URL.RawQuery = q.Encode()
	return t.next.RoundTrip(r)
}
