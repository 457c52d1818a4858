package status

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"time"
)

// Source gives the handler what it shows.
type Source interface {
	Snapshot(ctx context.Context) Snapshot
	// Ready reports whether the first full sync is done and the Consul agent answers.
	Ready() bool
}

// Handler serves the status page, the JSON API, /healthz, /readyz and /metrics. Nothing it serves
// changes state. Every request's Host must be a loopback name, an IP address or listenHost (the host
// of the -listen address, "" for none); any other is refused, against DNS rebinding (hostGuard).
func Handler(src Source, metrics http.Handler, listenHost string) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !src.Ready() {
			http.Error(w, "not ready: first sync not done or Consul agent unreachable", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, snapshot(r, src))
	})
	mux.HandleFunc("GET /v1/containers", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, snapshot(r, src).Containers)
	})
	mux.HandleFunc("GET /v1/containers/{id}", func(w http.ResponseWriter, r *http.Request) {
		c, ok := Find(snapshot(r, src).Containers, r.PathValue("id"))
		if !ok {
			writeJSON(w, http.StatusNotFound, map[string]string{"error": "no container with that ID, ID prefix or name"})
			return
		}
		writeJSON(w, http.StatusOK, c)
	})
	if metrics != nil {
		mux.Handle("GET /metrics", metrics)
	}
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		snap := snapshot(r, src)
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_ = Render(w, snap, Filter{Query: r.URL.Query().Get("q"), State: r.URL.Query().Get("state")})
	})
	return hostGuard(mux, listenHost)
}

func snapshot(r *http.Request, src Source) Snapshot {
	ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
	defer cancel()
	return src.Snapshot(ctx)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// Find looks a container up by full ID, ID prefix (at least 4 characters) or name.
func Find(cs []Container, key string) (Container, bool) {
	for _, c := range cs {
		if c.ID == key || c.Name == key || len(key) >= 4 && strings.HasPrefix(c.ID, key) {
			return c, true
		}
	}
	return Container{}, false
}

// Filter narrows the page's container table.
type Filter struct {
	Query string // substring of name, ID, image, ECS family or service
	State string // one of the container states, or "problems"
}

func (f Filter) match(c Container) bool {
	if q := strings.ToLower(f.Query); q != "" {
		hay := strings.ToLower(strings.Join([]string{c.Name, c.ID, c.Image}, " "))
		if c.ECS != nil {
			hay += " " + strings.ToLower(c.ECS.Family+" "+c.ECS.Service)
		}
		for _, s := range c.Services {
			hay += " " + strings.ToLower(s.Name+" "+s.ID)
		}
		if !strings.Contains(hay, q) {
			return false
		}
	}
	switch f.State {
	case "":
		return true
	case "problems":
		return len(c.Problems) > 0
	default:
		return c.State == f.State
	}
}
