package testenv

import (
	"archive/tar"
	"bytes"
	"cmp"
	"fmt"
	"io"
	"net"
	"os"
	"testing"

	"github.com/docker/docker/api/types/build"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"
)

// MeshProxyImage is the tag of the image that runs Consul's built-in Connect proxy: FROM scratch with
// the cached consul binary (static) and a static ecs-registrator binary, whose sidecar-for finds the
// registration the proxy serves.
const MeshProxyImage = "ecsr-mesh-proxy:test"

// BuildMeshProxy builds MeshProxyImage on the daemon behind c from the cached consul binary and
// registratorBin, which must be statically linked (CGO_ENABLED=0): the image has no libc.
func BuildMeshProxy(t testing.TB, c *client.Client, registratorBin string) string {
	t.Helper()
	Real(t)
	consulBin, ok := ConsulBinary()
	if !ok {
		Missing(t, "no consul binary (run scripts/consul-build.sh, or set ECSR_CONSUL)")
	}
	files := map[string][]byte{"Dockerfile": []byte("FROM scratch\nCOPY consul /consul\nCOPY ecs-registrator /ecs-registrator\n")}
	for name, path := range map[string]string{"consul": consulBin, "ecs-registrator": registratorBin} {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		files[name] = b
	}
	buildImage(t, c, MeshProxyImage, files)
	return MeshProxyImage
}

// buildImage builds an image from files (a Dockerfile and what it copies) without any registry.
func buildImage(t testing.TB, c *client.Client, tag string, files map[string][]byte) {
	t.Helper()
	var ctxTar bytes.Buffer
	tw := tar.NewWriter(&ctxTar)
	for name, data := range files {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o755, Size: int64(len(data))}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(data); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	resp, err := c.ImageBuild(t.Context(), &ctxTar, build.ImageBuildOptions{
		Tags: []string{tag}, Remove: true, ForceRemove: true, Version: build.BuilderV1,
	})
	if err != nil {
		t.Fatalf("build %s: %v", tag, err)
	}
	out, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if bytes.Contains(out, []byte(`"error"`)) {
		t.Fatalf("build %s: %s", tag, out)
	}
}

// BridgeGateway is the address of the host on Docker's default bridge network: where containers on
// it (and in their network namespaces) reach a process on the host. The IPAM config names it once
// dockerd has restarted, but dockerd 20.10's first start on a new machine leaves it out; Docker
// itself then uses the bridge interface's address, so this does too.
func BridgeGateway(t testing.TB, c *client.Client) string {
	t.Helper()
	n, err := c.NetworkInspect(t.Context(), "bridge", network.InspectOptions{})
	if err != nil {
		t.Fatalf("inspect the bridge network: %v", err)
	}
	for _, cfg := range n.IPAM.Config {
		if cfg.Gateway != "" {
			return cfg.Gateway
		}
	}
	name := cmp.Or(n.Options["com.docker.network.bridge.name"], "docker0")
	gw, err := interfaceIPv4(name)
	if err != nil {
		t.Fatalf("the bridge network names no gateway (%+v) and its interface %s: %v", n.IPAM, name, err)
	}
	return gw
}

// interfaceIPv4 is the first IPv4 address of the named interface.
func interfaceIPv4(name string) (string, error) {
	ifi, err := net.InterfaceByName(name)
	if err != nil {
		return "", err
	}
	addrs, err := ifi.Addrs()
	if err != nil {
		return "", err
	}
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil {
			return ipn.IP.String(), nil
		}
	}
	return "", fmt.Errorf("no IPv4 address on %s (%v)", name, addrs)
}
