package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/ecs-registrator/ecs-registrator/internal/testenv"
)

// The status page in a real browser (headless Chromium): the container rows are there, a container
// started meanwhile appears, and screenshots (laptop and phone) are kept as test artifacts
// (go test -artifacts writes them under -outputdir; make test keeps them in artifacts/).
func TestStatusPageInBrowser(t *testing.T) {
	t.Parallel()
	browser, err := exec.LookPath("chromium")
	if err != nil {
		testenv.Missing(t, "no chromium (apt-get install chromium; scripts/setup.sh does)")
	}
	d := testenv.Docker(t)
	consul := testenv.StartConsul(t)
	first := fmt.Sprintf("browser-first-%d", testenv.FreePort(t))
	testenv.Start(t, d, testenv.Workload{Name: first, TCP: []int{8080}, Publish: true, Labels: map[string]string{
		"SERVICE_NAME": first, "SERVICE_CHECK_TCP": "true", "SERVICE_CHECK_INTERVAL": "1s"}})
	badName := fmt.Sprintf("browser-bad-%d", testenv.FreePort(t))
	testenv.Start(t, d, testenv.Workload{Name: badName, TCP: []int{8080}, Publish: true, Labels: map[string]string{
		"SERVICE_NAME": "not/valid"}})
	listen := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	dm := startDaemon(t, consul, listen)
	testenv.Eventually(t, 10*time.Second, "daemon never ready", dm.ready)

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(browser), chromedp.NoSandbox,
		chromedp.Flag("disable-gpu", true), chromedp.Flag("disable-dev-shm-usage", true), chromedp.WindowSize(1366, 900))
	actx, cancel := chromedp.NewExecAllocator(t.Context(), opts...)
	defer cancel()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	ctx, cancel = context.WithTimeout(ctx, 90*time.Second)
	defer cancel()

	url := "http://" + listen + "/"
	row := func(name string) chromedp.CSS { return chromedp.CSS(fmt.Sprintf(`#containers tr[data-name=%q]`, name)) }
	if err := chromedp.Do(ctx, chromedp.Navigate(url), chromedp.WaitVisible(row(first))); err != nil {
		t.Fatalf("page: %v", err)
	}
	badText, err := chromedp.Run(ctx, chromedp.Text(row(badName)+" .problem"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(badText, "SERVICE_NAME") || !strings.Contains(badText, "not/valid") {
		t.Errorf("bad container's problem reads %q; want the label and the reason", badText)
	}

	later := fmt.Sprintf("browser-later-%d", testenv.FreePort(t))
	testenv.Start(t, d, testenv.Workload{Name: later, TCP: []int{8080}, Publish: true, Labels: map[string]string{"SERVICE_NAME": later}})
	testenv.Eventually(t, 20*time.Second, "the new container never appeared on the page", func() bool {
		if err := chromedp.Do(ctx, chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS("#containers"))); err != nil {
			return false
		}
		n, err := chromedp.Run(ctx, chromedp.Evaluate[int](fmt.Sprintf(`document.querySelectorAll(%q).length`, string(row(later)))))
		return err == nil && n == 1
	})

	dir := t.ArtifactDir()
	laptop, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2), chromedp.EmulateMobile),
		chromedp.Reload(), chromedp.WaitVisible(row(later))); err != nil {
		t.Fatal(err)
	}
	phone, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	// The phone layout must not need sideways scrolling for the page itself (tables scroll in their box).
	overflow, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.documentElement.scrollWidth > window.innerWidth + 1`))
	if err != nil {
		t.Fatal(err)
	}
	if overflow {
		t.Error("the page is wider than a phone screen")
	}
	for name, img := range map[string][]byte{"status-page-laptop.png": laptop, "status-page-phone.png": phone} {
		if len(img) < 10_000 {
			t.Errorf("%s is only %d bytes", name, len(img))
		}
		if err := os.WriteFile(filepath.Join(dir, name), img, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("screenshots in %s", dir)
}
