package packaging

import (
	"bytes"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ecs-registrator/ecs-registrator/internal/testenv"
)

// dockerfile is the Dockerfile's instructions, comments and blank lines left out and continued lines
// joined.
func dockerfile(t *testing.T) []string {
	t.Helper()
	var out []string
	continued := false
	for line := range strings.Lines(string(read(t, "../Dockerfile"))) {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if continued {
			out[len(out)-1] = strings.TrimSuffix(out[len(out)-1], "\\") + " " + line
		} else {
			out = append(out, line)
		}
		continued = strings.HasSuffix(line, "\\")
	}
	return out
}

// followInScope resolves the symbolic links of p as if root were "/" (the legacy builder's
// FollowSymlinkInScope for a COPY source, and the kernel for a path in the container).
func followInScope(t *testing.T, root, p string) string {
	t.Helper()
	for range 40 {
		fi, err := os.Lstat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			return p
		}
		target, err := os.Readlink(p)
		if err != nil {
			t.Fatal(err)
		}
		if filepath.IsAbs(target) {
			p = filepath.Join(root, target)
		} else {
			p = filepath.Join(filepath.Dir(p), target)
		}
	}
	t.Fatalf("%s: too many links", p)
	return ""
}

// copyLikeBuilder does what the legacy builder (builder/dockerfile/copy.go, performCopyForInfo) does
// for `COPY src dest` from context ctx into the image's root: a source that is a symbolic link is
// followed, a directory's entries are copied as they are (a tar stream: links stay links), a file
// keeps its mode, and a dest ending in / or naming a directory gets the source's base name.
func copyLikeBuilder(t *testing.T, ctx, root, src, dest string) {
	t.Helper()
	from := followInScope(t, ctx, filepath.Join(ctx, src))
	fi, err := os.Stat(from)
	if err != nil {
		t.Fatal(err)
	}
	to := filepath.Join(root, dest)
	if fi.IsDir() {
		err := filepath.WalkDir(from, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(from, p)
			target := filepath.Join(to, rel)
			info, err := os.Lstat(p)
			if err != nil {
				return err
			}
			switch {
			case info.IsDir():
				return os.MkdirAll(target, 0o755)
			case info.Mode()&fs.ModeSymlink != 0:
				link, err := os.Readlink(p)
				if err != nil {
					return err
				}
				return os.Symlink(link, target)
			default:
				return copyFile(p, target, info.Mode())
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		return
	}
	if st, err := os.Stat(to); strings.HasSuffix(dest, "/") || err == nil && st.IsDir() {
		to = filepath.Join(to, filepath.Base(src))
	}
	if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := copyFile(from, to, fi.Mode()); err != nil {
		t.Fatal(err)
	}
}

// mode is fi's mode, for a message; fi may be nil.
func mode(fi fs.FileInfo) any {
	if fi == nil {
		return nil
	}
	return fi.Mode()
}

func copyFile(from, to string, mode fs.FileMode) error {
	b, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	return os.WriteFile(to, b, mode.Perm())
}

// The image answers at /ecs-registrator and at gliderlabs/registrator's /bin/registrator, so a task
// definition written for gliderlabs's image (entryPoint ["/bin/registrator"]) runs it unchanged, and
// the second path costs no second copy of the binary. Without Docker: make image-context prepares a
// build context around a stand-in binary, and the Dockerfile's COPY instructions are carried out on
// it as the legacy builder does.
func TestImageAnswersAtBothPaths(t *testing.T) {
	if _, err := exec.LookPath("make"); err != nil {
		testenv.Missing(t, "no make")
	}
	ctx, root := t.TempDir(), t.TempDir()
	binary := bytes.Repeat([]byte("\x7fELF stand-in "), 4096)
	ca := []byte("-----BEGIN CERTIFICATE-----\nstand-in\n-----END CERTIFICATE-----\n")
	if err := os.WriteFile(filepath.Join(ctx, "ecs-registrator"), binary, 0o755); err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(t.TempDir(), "ca.crt")
	if err := os.WriteFile(caFile, ca, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("make", "-s", "--no-print-directory", "-C", "..", "image-context", "DIR="+ctx, "CA_BUNDLE="+caFile).CombinedOutput(); err != nil {
		t.Fatalf("make image-context: %v\n%s", err, out)
	}
	var entrypoint string
	for _, in := range dockerfile(t) {
		switch {
		case strings.HasPrefix(in, "COPY "):
			args := strings.Fields(in)[1:]
			if len(args) != 2 || strings.HasPrefix(args[0], "--") {
				t.Fatalf("%q: the test copies one source to one destination, without flags", in)
			}
			copyLikeBuilder(t, ctx, root, args[0], args[1])
		case strings.HasPrefix(in, "ENTRYPOINT "):
			entrypoint = strings.TrimPrefix(in, "ENTRYPOINT ")
		}
	}
	if entrypoint != `["/ecs-registrator"]` {
		t.Errorf("ENTRYPOINT %s, want [\"/ecs-registrator\"]", entrypoint)
	}

	main := filepath.Join(root, "ecs-registrator")
	fi, err := os.Lstat(main)
	if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
		t.Fatalf("/ecs-registrator in the image: %v %v, want an executable file", mode(fi), err)
	}
	if b, _ := os.ReadFile(main); !bytes.Equal(b, binary) {
		t.Error("/ecs-registrator is not the binary")
	}
	glider := filepath.Join(root, "bin", "registrator")
	if fi, err := os.Lstat(glider); err != nil || fi.Mode()&fs.ModeSymlink == 0 {
		t.Fatalf("/bin/registrator in the image: %v %v, want a symbolic link (a copy would double the image)", mode(fi), err)
	}
	a, _ := os.Stat(followInScope(t, root, glider))
	b, _ := os.Stat(main)
	if a == nil || !os.SameFile(a, b) {
		t.Errorf("/bin/registrator leads to %s, not /ecs-registrator", followInScope(t, root, glider))
	}
	var size int64
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			info, _ := d.Info()
			size += info.Size()
		}
		return nil
	})
	if want := int64(len(binary) + len(ca)); size != want {
		t.Errorf("the image's files hold %d bytes, want %d: the binary and the CA bundle, once each", size, want)
	}
}

// The binary looks at its arguments, never at its own name: run as /bin/registrator it does what it
// does as /ecs-registrator.
func TestBinaryUnderGliderlabsName(t *testing.T) {
	bin := daemon(t)
	dir := filepath.Join(t.TempDir(), "bin")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "registrator")
	if err := os.Symlink(bin, link); err != nil {
		t.Fatal(err)
	}
	run := func(path string, args ...string) (string, int) {
		out, err := exec.Command(path, args...).CombinedOutput()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return string(out), code
	}
	for _, args := range [][]string{{"version"}, {"-h"}, {"healthcheck", "-addr", "127.0.0.1:1"}, {"sidecar-for", "-h"}, {"-resync", "x", "consul://127.0.0.1:8500"}} {
		want, wantCode := run(bin, args...)
		got, code := run(link, args...)
		if got != want || code != wantCode {
			t.Errorf("%v as /bin/registrator: exit %d %q; as ecs-registrator: exit %d %q", args, code, got, wantCode, want)
		}
	}
}
