package consul

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"sync/atomic"
	"testing"

	"github.com/hashicorp/consul/api"
)

// The agent's service list is read every second: an answer the same as the last one is not decoded
// again (the same AgentState comes back), a changed one is, and the token goes with every read,
// over TCP and over a Unix socket alike.
func TestServicesDecodesOnlyChangedAnswers(t *testing.T) {
	t.Setenv("CONSUL_HTTP_TOKEN", "")
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte("file-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("CONSUL_HTTP_TOKEN_FILE", tokenFile)

	var port atomic.Int32
	port.Store(8080)
	var untokened atomic.Int32
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Consul-Token") != "file-secret" {
			untokened.Add(1)
		}
		if r.Header.Get("Accept-Encoding") != "identity" {
			t.Errorf("%s asked for %q: the local agent's answer need not be compressed", r.URL.Path, r.Header.Get("Accept-Encoding"))
		}
		switch r.URL.Path {
		case "/v1/agent/services":
			fmt.Fprintf(w, `{"web-1":{"ID":"web-1","Service":"web","Port":%d,"Address":"10.0.0.1","Meta":{"external-source":"ecs-registrator","container-id":"c1"}},
				"vault":{"ID":"vault","Service":"vault","Port":8200}}`, port.Load())
		case "/v1/agent/checks":
			if r.URL.Query().Get("filter") == "" {
				t.Error("the maintenance checks are read without a filter")
			}
			fmt.Fprint(w, `{"_service_maintenance:web-1":{"CheckID":"_service_maintenance:web-1","Notes":"draining"}}`)
		default:
			http.NotFound(w, r)
		}
	})
	tcp := httptest.NewServer(handler)
	defer tcp.Close()
	sock := filepath.Join(dir, "consul.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	unix := &httptest.Server{Listener: ln, Config: &http.Server{Handler: handler}}
	unix.Start()
	defer unix.Close()

	for name, addr := range map[string]string{"tcp": tcp.URL, "unix": "unix://" + sock} {
		t.Run(name, func(t *testing.T) {
			port.Store(8080)
			a, err := NewAgent(addr)
			if err != nil {
				t.Fatal(err)
			}
			first, err := a.Services(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if s := first.Owned["web-1"]; s.Port != 8080 || s.Maintenance != "draining" || !first.Foreign["vault"] {
				t.Fatalf("first read: %+v", first)
			}
			again, err := a.Services(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if reflect.ValueOf(again.Owned).UnsafePointer() != reflect.ValueOf(first.Owned).UnsafePointer() {
				t.Error("the same answer was decoded again")
			}
			port.Store(9090)
			changed, err := a.Services(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if changed.Owned["web-1"].Port != 9090 || first.Owned["web-1"].Port != 8080 {
				t.Errorf("a changed answer: now %+v, before %+v", changed.Owned["web-1"], first.Owned["web-1"])
			}
			if n := untokened.Load(); n != 0 {
				t.Errorf("%d reads without the token file's token", n)
			}
		})
	}
}

// The daemon's own registration (external-source but no container) is neither reconciled nor
// taken over: it is foreign, and not gliderlabs's (unmarked) either.
func TestSortServicesDaemonsOwnIsForeign(t *testing.T) {
	all := map[string]*api.AgentService{
		"ecs-registrator": {ID: "ecs-registrator", Service: "ecs-registrator", Meta: map[string]string{"external-source": "ecs-registrator", "version": "v1"}},
		"web-1":           {ID: "web-1", Service: "web", Meta: map[string]string{"external-source": "ecs-registrator", "container-id": "c1"}},
		"h:web:80":        {ID: "h:web:80", Service: "web"},
	}
	st := sortServices(all, nil)
	if _, owned := st.Owned["ecs-registrator"]; owned || !st.Foreign["ecs-registrator"] {
		t.Errorf("the daemon's own service: owned %v, foreign %v", owned, st.Foreign["ecs-registrator"])
	}
	if _, unmarked := st.Unmarked["ecs-registrator"]; unmarked {
		t.Error("the daemon's own service is taken for one gliderlabs left")
	}
	if _, owned := st.Owned["web-1"]; !owned || !st.Foreign["h:web:80"] {
		t.Errorf("the others: %+v", st)
	}
}
