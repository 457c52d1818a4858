package testenv

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// IMDSValues are the instance metadata values the emulator is started with.
var IMDSValues = map[string]string{
	"instance-id":                    "i-0abc1234def567890",
	"local-ipv4":                     "10.0.1.23",
	"mac":                            "0a:1b:2c:3d:4e:5f",
	"placement-availability-zone":    "eu-west-1b",
	"placement-availability-zone-id": "euw1-az2",
	"placement-region":               "eu-west-1",
}

// IMDS is AWS's EC2 metadata emulator (amazon-ec2-metadata-mock) serving IMDSv2 only.
type IMDS struct {
	URL string
	// Launched is when the emulator was started. It counts its notice delays from its own start,
	// in whole Unix seconds: a notice raised d after it shows first at the whole second
	// Unix(Launched)+d or, if the process took past a second boundary to start, one second later.
	Launched time.Time
	cmd      *exec.Cmd
}

// IMDSNotices says when the emulator raises the notices that a host is going away, counted from its
// start; zero never raises it. By default neither is raised: the emulator's own default raises both
// at once, which would drain every daemon that reads it.
type IMDSNotices struct {
	Spot time.Duration // spot/instance-action appears ("terminate", two minutes ahead): -d
	// SpotTime is the interruption time the notice names; zero leaves the emulator's own, two
	// minutes after each request.
	SpotTime       time.Time
	ASGTermination time.Duration // autoscaling/target-lifecycle-state turns Terminated: --asg-termination-delay-sec
}

// never is a delay no test outlives: ten years.
const never = 10 * 365 * 24 * 3600

// IMDSIPv6 is the address of the IPv6-only instance IMDSIPv6Only describes.
const IMDSIPv6 = "2001:db8:1234:1a00:9691:9503:25ad:1761"

// IMDSIPv6Only is the emulator's metadata configuration for an IPv6-only instance: IMDSValues, but
// local-ipv4 and the interface's local-ipv4s are not set (404, as EC2 answers for an IPv6-only
// instance) and ipv6 is IMDSIPv6. The emulator has no ipv6 item of its own; its local-ipv4 item,
// moved to ipv6's path, serves it.
func IMDSIPv6Only() map[string]any {
	values := maps.Clone(IMDSValues)
	values["local-ipv4"] = IMDSIPv6
	return map[string]any{
		"paths":  map[string]any{"local-ipv4": "/latest/meta-data/ipv6", "mac-local-ipv4s": ""},
		"values": values,
	}
}

// StartIMDS runs the emulator on a free loopback port until the test ends, serving IMDSValues.
func StartIMDS(t testing.TB) *IMDS {
	t.Helper()
	return StartIMDSConfig(t, map[string]any{"values": IMDSValues})
}

// StartIMDSConfig is StartIMDS serving a metadata configuration of the emulator's ("paths" and
// "values" by the emulator's keys; its docs/configuration.md).
func StartIMDSConfig(t testing.TB, metadata map[string]any) *IMDS {
	t.Helper()
	return StartIMDSNotices(t, metadata, IMDSNotices{})
}

// StartIMDSNotices is StartIMDSConfig raising the given notices on the emulator's timers.
func StartIMDSNotices(t testing.TB, metadata map[string]any, notices IMDSNotices) *IMDS {
	t.Helper()
	Real(t)
	bin := filepath.Join(CacheDir(), "bin", "ec2-metadata-mock")
	if !isExecutable(bin) {
		p, err := exec.LookPath("ec2-metadata-mock")
		if err != nil {
			Missing(t, "no ec2-metadata-mock (run scripts/setup.sh)")
		}
		bin = p
	}
	conf := map[string]any{"imdsv2": true, "metadata": metadata, "mock-delay-sec": never, "asg-termination-delay-sec": never,
		"rebalance-delay-sec": never}
	if !notices.SpotTime.IsZero() {
		conf["spot"] = map[string]string{"action": "terminate", "time": notices.SpotTime.UTC().Format(time.RFC3339)}
	}
	cfg, err := json.Marshal(conf)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "imds.json")
	if err := os.WriteFile(cfgPath, cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	port := FreePort(t)
	log, err := os.Create(filepath.Join(dir, "imds.log"))
	if err != nil {
		t.Fatal(err)
	}
	args := []string{"-n", "127.0.0.1", "-p", strconv.Itoa(port), "-I", "-c", cfgPath}
	// Flags win over the configuration file's "never".
	if notices.Spot > 0 {
		args = append(args, "-d", strconv.Itoa(int(notices.Spot.Seconds())))
	}
	if notices.ASGTermination > 0 {
		args = append(args, "--asg-termination-delay-sec", strconv.Itoa(int(notices.ASGTermination.Seconds())))
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = log, log
	launched := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	m := &IMDS{URL: fmt.Sprintf("http://127.0.0.1:%d", port), Launched: launched, cmd: cmd}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		log.Close()
	})
	Eventually(t, 30*time.Second, "ec2-metadata-mock never answered", func() bool {
		resp, err := http.Get(m.URL + "/latest/meta-data/instance-id")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusUnauthorized // IMDSv2 only: no token, no answer
	})
	return m
}
