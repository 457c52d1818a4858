package testenv

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/docker/docker/client"
)

// Dockerd is a private Docker daemon with its own socket, data root, exec root and bridge, for tests that
// must restart Docker or count on no other test's containers. Tests run its containers on the host
// network. (It cannot run with --bridge=none: that makes dockerd delete the host's docker0.)
type Dockerd struct {
	t      testing.TB
	dir    string
	exec   string
	bridge string
	Host   string // unix:// address of its socket
	cmd    *exec.Cmd
	log    *os.File
}

var bridgeSeq atomic.Int32

// StartDockerd starts a private dockerd that is stopped, with its containers, when the test ends.
func StartDockerd(t testing.TB) *Dockerd {
	t.Helper()
	Real(t)
	if _, err := exec.LookPath("dockerd"); err != nil {
		Missing(t, "no dockerd binary (apt-get install docker.io)")
	}
	if os.Geteuid() != 0 {
		Missing(t, "a private dockerd needs root")
	}
	dir, err := os.MkdirTemp("", "ecsr-dockerd-")
	if err != nil {
		t.Fatal(err)
	}
	// Unix socket paths are limited to 108 bytes, so the exec root stays short.
	execRoot, err := os.MkdirTemp("/run", "ecsr-")
	if err != nil {
		t.Fatal(err)
	}
	d := &Dockerd{t: t, dir: dir, exec: execRoot, Host: "unix://" + filepath.Join(dir, "docker.sock")}
	if d.log, err = os.Create(filepath.Join(dir, "dockerd.log")); err != nil {
		t.Fatal(err)
	}
	// A bridge of its own, never addressed by a test; the subnet only has to differ from docker0's.
	n := int(bridgeSeq.Add(1)) + 10*(os.Getpid()%20)
	d.bridge = fmt.Sprintf("ecsr%d", n)
	for _, args := range [][]string{
		{"link", "add", "name", d.bridge, "type", "bridge"},
		{"addr", "add", fmt.Sprintf("172.30.%d.1/24", n%250), "dev", d.bridge},
		{"link", "set", d.bridge, "up"},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			Missing(t, "cannot create a bridge for a private dockerd: ip %v: %v %s", args, err, out)
		}
	}
	d.Start()
	t.Cleanup(func() {
		cl, err := client.NewClientWithOpts(client.WithHost(d.Host), client.WithAPIVersionNegotiation())
		if err == nil && d.cmd != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			if list, err := cl.ContainerList(ctx, containerListAll); err == nil {
				for _, c := range list {
					_ = cl.ContainerRemove(ctx, c.ID, containerRemoveForce)
				}
			}
			cancel()
			cl.Close()
		}
		d.Stop()
		killShims(execRoot)
		_ = exec.Command("ip", "link", "del", d.bridge).Run()
		// dockerd leaves mounts behind when it is stopped with containers it could not remove (their
		// overlays) and always in its exec root (the host's network namespace, bind-mounted): without
		// the unmounts both directories outlive the test.
		for _, root := range []string{dir, execRoot} {
			unmountUnder(root)
			if err := os.RemoveAll(root); err != nil {
				t.Errorf("remove the private dockerd's files: %v", err)
			}
		}
	})
	return d
}

// Start starts the daemon (again) and waits until it answers.
func (d *Dockerd) Start() {
	d.t.Helper()
	d.cmd = exec.Command("dockerd",
		"--host", d.Host,
		"--data-root", filepath.Join(d.dir, "data"),
		"--exec-root", d.exec,
		"--pidfile", filepath.Join(d.dir, "docker.pid"),
		"--bridge", d.bridge, "--iptables=false", "--ip-masq=false",
	)
	d.cmd.Stdout, d.cmd.Stderr = d.log, d.log
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := d.cmd.Start(); err != nil {
		d.t.Fatalf("start dockerd: %v", err)
	}
	cl, err := client.NewClientWithOpts(client.WithHost(d.Host), client.WithAPIVersionNegotiation())
	if err != nil {
		d.t.Fatal(err)
	}
	defer cl.Close()
	deadline := time.Now().Add(60 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := cl.Ping(ctx)
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			out, _ := os.ReadFile(d.log.Name())
			d.t.Fatalf("private dockerd did not answer in 60s: %v\n%s", err, out)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stop stops the daemon the way a service manager does (SIGTERM, which stops its containers) and waits.
func (d *Dockerd) Stop() {
	if d.cmd == nil {
		return
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = d.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		_ = syscall.Kill(-d.cmd.Process.Pid, syscall.SIGKILL)
		<-done
	}
	d.cmd = nil
}

// killShims kills the containerd shims a stopped private dockerd leaves behind (containers it did not
// stop in time, or a daemon killed mid-churn), and their containers' processes: they would otherwise
// outlive the test, their exec root gone.
func killShims(execRoot string) {
	procs, _ := filepath.Glob("/proc/[0-9]*")
	parent := map[int]int{}
	var shims []int
	for _, dir := range procs {
		pid, err := strconv.Atoi(filepath.Base(dir))
		if err != nil {
			continue
		}
		if stat, err := os.ReadFile(dir + "/stat"); err == nil {
			// pid (comm) state ppid ...; comm may hold spaces, so read after the last ')'.
			if f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:])); len(f) > 1 {
				parent[pid], _ = strconv.Atoi(f[1])
			}
		}
		cmd, err := os.ReadFile(dir + "/cmdline")
		if err == nil && strings.Contains(string(cmd), "containerd-shim") && strings.Contains(string(cmd), execRoot+"/") {
			shims = append(shims, pid)
		}
	}
	for _, shim := range shims {
		for pid, ppid := range parent {
			if ppid == shim {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		_ = syscall.Kill(shim, syscall.SIGKILL)
	}
}

// Restart stops and starts the daemon.
func (d *Dockerd) Restart() {
	d.t.Helper()
	d.Stop()
	d.Start()
}

// Client returns a client for this daemon.
func (d *Dockerd) Client() *client.Client {
	d.t.Helper()
	return dockerAt(d.t, d.Host)
}

func (d *Dockerd) String() string { return fmt.Sprintf("dockerd(%s)", d.Host) }

// unmountUnder detaches every mount at or below root, deepest first.
func unmountUnder(root string) {
	b, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		return
	}
	var points []string
	for line := range strings.SplitSeq(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 1 && (f[1] == root || strings.HasPrefix(f[1], root+"/")) {
			points = append(points, f[1])
		}
	}
	slices.SortFunc(points, func(a, b string) int { return len(b) - len(a) })
	for _, p := range points {
		_ = syscall.Unmount(p, syscall.MNT_DETACH)
	}
}
