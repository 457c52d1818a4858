// Command workload is the test containers' program: a static binary for images built FROM scratch. It
// serves HTTP on PORTS (comma list), echoes UDP on UDP_PORTS, and on SIGTERM or SIGINT keeps serving for
// DRAIN (a duration, default 0) before it exits, like a service that finishes in-flight work. Other
// signals are logged and ignored.
package main

import (
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

func main() {
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
	mux.HandleFunc("/fail", func(w http.ResponseWriter, _ *http.Request) { healthy.Store(false) })
	mux.HandleFunc("/recover", func(w http.ResponseWriter, _ *http.Request) { healthy.Store(true) })
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, os.Getenv("HOSTNAME")) })

	for _, p := range fields(os.Getenv("PORTS")) {
		ln, err := net.Listen("tcp", ":"+p)
		if err != nil {
			log.Fatal(err)
		}
		go func() { log.Fatal(http.Serve(ln, mux)) }()
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

func fields(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' })
}
