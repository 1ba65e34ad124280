package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// chromium finds a Chromium to drive: $SLUICE_CHROMIUM, else Debian's
// chromium (or another Chromium or Chrome) on PATH or at its usual path.
func chromium() string {
	if p := os.Getenv("SLUICE_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	for _, p := range []string{"/usr/bin/chromium", "/usr/lib/chromium/chromium"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}

// pageState is what the test reads from the page the browser shows.
type pageState struct {
	Rows    int    `json:"rows"`    // batch rows that are done
	Points  []int  `json:"points"`  // points drawn in each chart
	Leader  string `json:"leader"`  // the cluster panel's leader
	Role    string `json:"role"`    // this node's Raft role there
	Banner  string `json:"banner"`  // the starting / no leader notice, if any
	Updated string `json:"updated"` // the page's "updated" clock
}

const readPage = `(() => ({
	rows: document.querySelectorAll('#batches tr.batch.done').length,
	points: Array.from(document.querySelectorAll('#charts svg')).map(s => s.querySelectorAll('circle.pt').length),
	leader: (document.getElementById('leader') || {}).textContent || '',
	role: (document.querySelector('#cluster tr.node td.role') || {}).textContent || '',
	banner: (document.getElementById('banner') || {}).textContent || '',
	updated: (document.getElementById('updated') || {}).textContent || '',
}))()`

// TestBrowserShowsTheRunningNode opens the UI of a node running word
// count over the sample in headless Chromium, as a user would, and keeps
// the page open without reloading it: the batch table fills, every chart
// gets points, and the cluster panel shows this node leading. A batch's
// link opens its details (operators and tasks). The page is saved as a
// screenshot: in the test's artifact directory (go test -artifacts) and
// in $SLUICE_ARTIFACTS when set.
func TestBrowserShowsTheRunningNode(t *testing.T) {
	bin := chromium()
	if bin == "" {
		t.Skip("no Chromium found (Debian: apt-get install chromium; or set SLUICE_CHROMIUM to its path): the browser test is skipped")
	}
	c := startChild(t, "run", "--http", "127.0.0.1:0", "--batch", "200ms", "--sample-rate", "500")
	url := "http://" + c.uiAddr() + "/"

	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(bin),
		chromedp.NoSandbox, // as root, as in CI containers, Chromium refuses to start with its sandbox
		chromedp.DisableGPU,
		chromedp.WindowSize(1400, 1100),
		chromedp.UserDataDir(t.TempDir()),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc() // kills the browser
	ctx, cancelCtx := chromedp.NewContext(actx)
	defer cancelCtx()
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()

	if err := chromedp.Do(ctx, chromedp.Navigate(url), chromedp.WaitVisible(chromedp.CSS("#batches"))); err != nil {
		t.Fatalf("opening %s in %s: %v", url, bin, err)
	}
	first, err := chromedp.Run(ctx, chromedp.Evaluate[pageState](readPage))
	if err != nil {
		t.Fatal(err)
	}
	// The page is never reloaded: what changes is the page's own doing.
	var st pageState
	for {
		if st, err = chromedp.Run(ctx, chromedp.Evaluate[pageState](readPage)); err != nil {
			t.Fatalf("reading the page: %v; last seen %+v", err, st)
		}
		if st.Rows >= first.Rows+5 && st.Rows >= 10 && allAtLeast(st.Points, 10) && st.Leader == "n1" {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the page did not fill in time: first %+v, last %+v", first, st)
		case <-time.After(200 * time.Millisecond):
		}
	}
	if len(st.Points) != 4 || st.Role != "Leader" || st.Banner != "" || st.Updated == first.Updated {
		t.Errorf("page %+v (first %+v): want 4 charts, n1 as Leader, no notice, a newer update time", st, first)
	}
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	saveArtifact(t, "ui.png", png)

	err = chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS(`#batches tr.batch.done a`)),
		chromedp.WaitVisible(chromedp.CSS(`table.operators tbody tr`)))
	if err != nil {
		t.Fatalf("opening a batch's details: %v", err)
	}
	operators, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll('table.operators tbody tr').length`))
	if err != nil {
		t.Fatal(err)
	}
	if operators < 2 {
		t.Errorf("the batch page lists %d operators, want the receiver's and the shuffles'", operators)
	}
	if png, err = chromedp.Run(ctx, chromedp.FullScreenshot(100)); err != nil {
		t.Fatal(err)
	}
	saveArtifact(t, "ui-batch.png", png)
	if code := c.stop(); code != exitOK {
		t.Fatalf("exit code %d after SIGTERM, want 0", code)
	}
}

func allAtLeast(vs []int, n int) bool {
	for _, v := range vs {
		if v < n {
			return false
		}
	}
	return len(vs) > 0
}

// saveArtifact writes a test artifact to the test's artifact directory
// and, when $SLUICE_ARTIFACTS is set, there too.
func saveArtifact(t *testing.T, name string, data []byte) {
	t.Helper()
	dirs := []string{t.ArtifactDir()}
	if d := os.Getenv("SLUICE_ARTIFACTS"); d != "" {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		dirs = append(dirs, d)
	}
	var paths []string
	for _, d := range dirs {
		p := filepath.Join(d, name)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	t.Logf("screenshot saved: %s", strings.Join(paths, ", "))
}
