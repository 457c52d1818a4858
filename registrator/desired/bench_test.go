package desired

import (
	"fmt"
	"testing"
)

func BenchmarkDesired(b *testing.B) {
	c := web(withLabels("SERVICE_TAGS", "a,b,c", "SERVICE_VERSION", "1.2", "SERVICE_TEAM", "core", "SERVICE_9090_NAME", "metrics"),
		withPorts(Port{Port: 8080, Proto: "tcp", HostPort: 32768}, Port{Port: 9090, Proto: "tcp", HostPort: 32769}))
	for i := range 20 {
		c.Env = append(c.Env, fmt.Sprintf("VAR_%d=value", i))
	}
	b.ReportAllocs()
	for b.Loop() {
		if r := Desired(c, testOpts); len(r.Services) != 2 {
			b.Fatal(r)
		}
	}
}
