package status

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// hostGuard answers only requests whose Host header names this server in a way DNS rebinding cannot
// forge; any other gets 421 Misdirected Request saying why and what to use instead.
//
// The threat: an operator reaches the status server through an SSM (or SSH) port-forward on their
// laptop's 127.0.0.1:9555 while a page from evil.example is open in their browser. That page rebinds
// evil.example to 127.0.0.1 and reads http://evil.example:9555/v1/status as same-origin: check
// outputs, images, addresses. Every such request carries Host: evil.example, a name the attacker
// controls, so answering only names that cannot be the attacker's stops it:
//
//   - loopback names: localhost and *.localhost, which browsers resolve to loopback themselves;
//   - IP literals, all of them (not only loopback): rebinding needs a name that the attacker's DNS
//     answers for; a page whose origin is an IP literal is served by whoever holds that address, here
//     this server. A cross-origin request from the attacker's page to http://127.0.0.1:9555 does carry
//     Host: 127.0.0.1:9555, but the browser does not let that page read the answer (no CORS headers
//     are ever sent), and nothing here changes state. Allowing every literal keeps -listen 0.0.0.0
//     working for an ALB or ECS health check, which asks at the host's IP;
//   - the host of the -listen address (listenHost), when it is a name the operator chose;
//   - no Host at all (HTTP/1.0): browsers always send one.
//
// No endpoint is exempt, /healthz, /readyz and /metrics included: Docker's and ECS's health checks
// (`ecs-registrator healthcheck`) ask at 127.0.0.1 or on the Unix socket as localhost, load balancers
// and Prometheus at an IP, so none of them is refused, and a rebinding page learns nothing from them.
// The port is not looked at: a port-forward may map 9555 to any local port.
func hostGuard(next http.Handler, listenHost string) http.Handler {
	listenHost = normalHost(listenHost)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if allowedHost(r.Host, listenHost) {
			next.ServeHTTP(w, r)
			return
		}
		w.Header().Set("X-Content-Type-Options", "nosniff")
		http.Error(w, fmt.Sprintf("ecs-registrator status server: refused: the Host header %q is not a loopback name "+
			"or an IP address. The server answers only http://127.0.0.1:<port>/, http://localhost:<port>/, an IP "+
			"address, or the -listen host, so that a web page cannot read it by DNS rebinding.", r.Host),
			http.StatusMisdirectedRequest)
	})
}

// allowedHost reports whether a request's Host (host or host:port) is one hostGuard answers.
func allowedHost(hostport, listenHost string) bool {
	if hostport == "" {
		return true
	}
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	} else if strings.HasPrefix(host, "[") && strings.HasSuffix(host, "]") {
		host = host[1 : len(host)-1] // [::1] without a port
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return true // includes a zone (fe80::1%eth0): still a literal
	}
	host = normalHost(host)
	return host == "localhost" || strings.HasSuffix(host, ".localhost") || listenHost != "" && host == listenHost
}

// normalHost lower-cases a host name and drops a trailing dot (localhost. is localhost).
func normalHost(h string) string {
	return strings.TrimSuffix(strings.ToLower(h), ".")
}
