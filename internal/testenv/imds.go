package testenv

import (
	"encoding/json"
	"fmt"
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
	cmd *exec.Cmd
}

// StartIMDS runs the emulator on a free loopback port until the test ends.
func StartIMDS(t testing.TB) *IMDS {
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
	cfg, err := json.Marshal(map[string]any{"imdsv2": true, "metadata": map[string]any{"values": IMDSValues}})
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
	cmd := exec.Command(bin, "-n", "127.0.0.1", "-p", strconv.Itoa(port), "-I", "-c", cfgPath)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	m := &IMDS{URL: fmt.Sprintf("http://127.0.0.1:%d", port), cmd: cmd}
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
