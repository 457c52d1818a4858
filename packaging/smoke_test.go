package packaging

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/docker/docker/api/types/container"

	"github.com/ecs-registrator/ecs-registrator/internal/testenv"
)

// maxImageSize is the promise of the README: the image stays small enough to pull fast on every host.
const maxImageSize = 25 << 20

// TestImageSmoke builds the image with `make image` (offline) and runs it the way the daemon's task
// definition does (host network, the Docker socket read-only, configured by env) against a real Consul
// dev agent: a labelled container is registered, and the image's own health check reports healthy.
func TestImageSmoke(t *testing.T) {
	for _, tool := range []string{"make", "docker"} {
		if _, err := exec.LookPath(tool); err != nil {
			testenv.Missing(t, "no %s", tool)
		}
	}
	d := testenv.Docker(t)
	consul := testenv.StartConsul(t)
	const image = "ecs-registrator:latest"
	if out, err := exec.Command("make", "-C", "..", "image").CombinedOutput(); err != nil {
		t.Fatalf("make image: %v\n%s", err, out)
	}
	info, err := d.ImageInspect(t.Context(), image)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s: %.1f MB", image, float64(info.Size)/1e6)
	if info.Size > maxImageSize {
		t.Errorf("image is %d bytes, more than %d", info.Size, maxImageSize)
	}
	// make image builds an image per architecture (no emulation: the arm64 one is only inspected
	// here), and image is the one of the Docker daemon's own architecture.
	server, err := d.ServerVersion(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, arch := range []string{"amd64", "arm64"} {
		a, err := d.ImageInspect(t.Context(), image+"-"+arch)
		if err != nil {
			t.Fatal(err)
		}
		if a.Os != "linux" || a.Architecture != arch {
			t.Errorf("%s-%s records %s/%s", image, arch, a.Os, a.Architecture)
		}
		if a.Size > maxImageSize {
			t.Errorf("%s-%s is %d bytes, more than %d", image, arch, a.Size, maxImageSize)
		}
		if (arch == server.Arch) != (a.ID == info.ID) {
			t.Errorf("%s is %s, the Docker daemon is %s, %s-%s is %s", image, info.ID, server.Arch, image, arch, a.ID)
		}
	}

	// A task definition written for gliderlabs's image names its entry point: it runs this daemon.
	out, err := exec.Command("docker", "run", "--rm", "--entrypoint", "/bin/registrator", image, "version").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "ecs-registrator ") {
		t.Errorf("docker run --entrypoint /bin/registrator %s version: %v: %s", image, err, out)
	}

	var td ecs.RegisterTaskDefinitionInput
	decodeStrict(t, read(t, "ecs/ecs-registrator-task-definition.json"), &td)
	c := td.ContainerDefinitions[0]
	listen := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	var env []string
	for _, kv := range c.Environment {
		switch *kv.Name {
		case "REGISTRATOR_CONSUL":
			env = append(env, "REGISTRATOR_CONSUL="+consul.Addr()) // this test's agent, not 8500
		case "REGISTRATOR_LISTEN":
			env = append(env, "REGISTRATOR_LISTEN="+listen)
		case "REGISTRATOR_CONSUL_IAM_AUTH_METHOD", "REGISTRATOR_CONSUL_IAM_SERVER_ID":
			// This test's agent has no ACLs and the container no AWS credentials: the login through
			// the auth method is registrator's TestIAMLogin's, against a real Consul and a fake STS.
		default:
			env = append(env, *kv.Name+"="+*kv.Value)
		}
	}
	var binds []string
	for _, m := range c.MountPoints {
		for _, v := range td.Volumes {
			if *v.Name == *m.SourceVolume {
				bind := *v.Host.SourcePath + ":" + *m.ContainerPath
				if m.ReadOnly != nil && *m.ReadOnly {
					bind += ":ro"
				}
				binds = append(binds, bind)
			}
		}
	}
	name := fmt.Sprintf("ecsr-smoke-%d", testenv.FreePort(t))
	resp, err := d.ContainerCreate(t.Context(), &container.Config{Image: image, Env: env},
		&container.HostConfig{NetworkMode: container.NetworkMode(td.NetworkMode), Binds: binds}, nil, nil, name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if t.Failed() {
			if out, err := exec.Command("docker", "logs", "--tail", "50", resp.ID).CombinedOutput(); err == nil {
				t.Logf("daemon logs:\n%s", out)
			}
		}
		_ = d.ContainerRemove(ctx, resp.ID, container.RemoveOptions{Force: true})
	})
	if err := d.ContainerStart(t.Context(), resp.ID, container.StartOptions{}); err != nil {
		t.Fatal(err)
	}
	in, err := d.ContainerInspect(t.Context(), resp.ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range in.Mounts {
		if m.Destination == "/var/run/docker.sock" && m.RW {
			t.Error("the Docker socket is writable in the container")
		}
	}

	svcName := fmt.Sprintf("smoke-%d", testenv.FreePort(t))
	id := testenv.Start(t, d, testenv.Workload{Name: svcName, TCP: []int{8080}, Publish: true,
		Labels: map[string]string{"SERVICE_NAME": svcName, "SERVICE_CHECK_TCP": "true"}})
	api := consul.API()
	testenv.Eventually(t, 20*time.Second, "the labelled container was never registered by the image", func() bool {
		svcs, err := api.Agent().ServicesWithFilter(fmt.Sprintf("Meta[\"container-id\"] == %q", id))
		return err == nil && len(svcs) == 1
	})
	took := testenv.Eventually(t, 60*time.Second, "the image's health check never reported healthy", func() bool {
		in, err := d.ContainerInspect(t.Context(), resp.ID)
		return err == nil && in.State.Health != nil && in.State.Health.Status == "healthy"
	})
	t.Logf("healthy %v after start; health check: %s", took, strings.Join(in.Config.Healthcheck.Test, " "))

	// A 60 s Consul outage (a Consul client's rolling update, a crash) never makes the container
	// unhealthy: ECS would replace the registrator on every host. The health is sampled through the
	// outage, which is the measurement window, not a wait.
	consul.Stop()
	for end := time.Now().Add(60 * time.Second); time.Now().Before(end); time.Sleep(time.Second) {
		in, err := d.ContainerInspect(t.Context(), resp.ID)
		if err != nil {
			t.Fatal(err)
		}
		if in.State.Health == nil || in.State.Health.Status != "healthy" {
			t.Fatalf("the container turned %v during a Consul outage", in.State.Health)
		}
	}
	consul.Start() // a dev agent comes back empty
	back := testenv.Eventually(t, 10*time.Second, "registrations not back within 10 s of Consul's return", func() bool {
		svcs, err := api.Agent().ServicesWithFilter(fmt.Sprintf("Meta[\"container-id\"] == %q", id))
		return err == nil && len(svcs) == 1
	})
	t.Logf("healthy through a 60 s Consul outage; registrations back %v after Consul answered", back)
}
