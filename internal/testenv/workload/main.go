// Command workload is the test containers' program: a static binary for images built FROM scratch. It
// serves HTTP/1.1 and gRPC health (h2c) on PORTS (comma list), echoes UDP on UDP_PORTS, and on SIGTERM
// or SIGINT keeps serving for DRAIN (a duration, default 0) before it exits, like a service that
// finishes in-flight work. Other signals are logged and ignored. /fail and /recover flip what /health
// and the gRPC health service answer; /redirect?to=URL answers a redirect to URL. "workload probe URL"
// is a HEALTHCHECK command: exit 0 on a 200. /creds answers CREDENTIALS (a task role's credentials).
package main

import (
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) == 3 && os.Args[1] == "probe" {
		os.Exit(probe(os.Args[2]))
	}
	var healthy atomic.Bool
	healthy.Store(true)
	mux := http.NewServeMux()
	mux.HandleFunc("/health", func(w http.ResponseWriter, _ *http.Request) {
		if !healthy.Load() {
			http.Error(w, "unhealthy", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	// /redirect?to=URL answers 302 to URL, as a compromised or careless service could; the body counts
	// the redirects to that URL, so a check's output shows that it ran again.
	var redirectsMu sync.Mutex
	redirects := map[string]int{}
	mux.HandleFunc("/redirect", func(w http.ResponseWriter, r *http.Request) {
		to := r.URL.Query().Get("to")
		redirectsMu.Lock()
		redirects[to]++
		n := redirects[to]
		redirectsMu.Unlock()
		w.Header().Set("Location", to)
		w.WriteHeader(http.StatusFound)
		fmt.Fprintf(w, "redirect %d\n", n)
	})
	// /creds stands in for ECS's task credentials endpoint (169.254.170.2 + the relative URI the agent
	// gives each container): it answers CREDENTIALS, the task role's credentials as that endpoint's
	// JSON, to the containers of the task, which share this one's network (a Connect proxy).
	mux.HandleFunc("/creds", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintln(w, os.Getenv("CREDENTIALS"))
	})
	mux.HandleFunc("/fail", func(w http.ResponseWriter, _ *http.Request) { healthy.Store(false) })
	mux.HandleFunc("/recover", func(w http.ResponseWriter, _ *http.Request) { healthy.Store(true) })
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, os.Getenv("HOSTNAME")) })
	mux.HandleFunc("/fetch", func(w http.ResponseWriter, r *http.Request) {
		// A new connection every time: an intention is enforced when a connection is made.
		c := http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
		resp, err := c.Get(r.URL.Query().Get("url"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		w.WriteHeader(resp.StatusCode)
		_, _ = io.Copy(w, io.LimitReader(resp.Body, 1<<16))
	})
	mux.HandleFunc("POST /grpc.health.v1.Health/Check", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		// HealthCheckResponse{status: SERVING (1) or NOT_SERVING (2)}, one uncompressed gRPC message.
		status := byte(1)
		if !healthy.Load() {
			status = 2
		}
		w.Header().Set("Content-Type", "application/grpc")
		w.Header().Set("Trailer", "Grpc-Status")
		_, _ = w.Write([]byte{0, 0, 0, 0, 2, 0x08, status})
		w.Header().Set("Grpc-Status", "0")
	})

	var protocols http.Protocols
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(true) // gRPC clients speak HTTP/2 with prior knowledge
	for _, p := range fields(os.Getenv("PORTS")) {
		ln, err := net.Listen("tcp", ":"+p)
		if err != nil {
			log.Fatal(err)
		}
		srv := &http.Server{Handler: mux, Protocols: &protocols}
		go func() { log.Fatal(srv.Serve(ln)) }()
	}
	for _, p := range fields(os.Getenv("UDP_PORTS")) {
		pc, err := net.ListenPacket("udp", ":"+p)
		if err != nil {
			log.Fatal(err)
		}
		go func() {
			buf := make([]byte, 1500)
			for {
				n, addr, err := pc.ReadFrom(buf)
				if err != nil {
					return
				}
				_, _ = pc.WriteTo(buf[:n], addr)
			}
		}()
	}

	drain, _ := time.ParseDuration(os.Getenv("DRAIN"))
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, syscall.SIGUSR1, syscall.SIGUSR2)
	for s := range sigs {
		if s == syscall.SIGTERM || s == syscall.SIGINT {
			log.Printf("%v: serving %v more", s, drain)
			time.Sleep(drain)
			return
		}
		log.Printf("%v: ignored", s)
	}
}

func probe(url string) int {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		fmt.Println(err)
		return 1
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
	fmt.Printf("%s: %s", resp.Status, body)
	if resp.StatusCode != http.StatusOK {
		return 1
	}
	return 0
}

func fields(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' })
}
