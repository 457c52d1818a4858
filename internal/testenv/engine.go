package testenv

import (
	"context"
	"fmt"
	"os"
	"sync"

	"github.com/docker/docker/client"
)

var (
	engineMu     sync.Mutex
	engineLogged = map[string]bool{} // docker host -> its version line printed
)

// logEngine prints, once per test process and daemon address, which Docker Engine the tests run against
// and the API version the client settled on: `make test` runs the end-to-end tests against two engines
// (Debian's 20.10, API 1.41, and a current one, API 1.5x), and a failure must say which one it was. It
// goes to stderr, not t.Logf, so that it is printed once rather than per test; go test shows it with -v
// and with a failing package's output.
func logEngine(ctx context.Context, c *client.Client) {
	engineMu.Lock()
	defer engineMu.Unlock()
	host := c.DaemonHost()
	if engineLogged[host] {
		return
	}
	engineLogged[host] = true
	v, err := c.ServerVersion(ctx)
	if err != nil {
		fmt.Fprintf(os.Stderr, "testenv: docker engine at %s: version unknown: %v\n", host, err)
		return
	}
	fmt.Fprintf(os.Stderr, "testenv: docker engine %s API %s (min %s) at %s; client speaks API %s\n",
		v.Version, v.APIVersion, v.MinAPIVersion, host, c.ClientVersion())
}
