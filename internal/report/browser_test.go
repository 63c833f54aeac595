package report

import (
	"bytes"
	"context"
	"image/color"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// chromium finds headless Chromium, or skips the test.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"/usr/bin/chromium", "chromium", "chromium-browser"} {
		if path, err := exec.LookPath(name); err == nil {
			return path
		}
	}
	t.Skip("chromium is not installed (apt-get install chromium): skipping the browser test")
	return ""
}

// runChromium runs headless Chromium on page with extra arguments, with a
// throwaway profile and nothing that reaches the network, and returns its
// standard output and error.
func runChromium(t *testing.T, bin, page string, args ...string) (stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	base := []string{
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-dev-shm-usage", "--hide-scrollbars",
		"--user-data-dir=" + t.TempDir(),
	}
	cmd := exec.CommandContext(ctx, bin, append(append(base, args...), "file://"+page)...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium %s: %v\n%s", strings.Join(args, " "), err, errOut.String())
	}
	return out.String(), errOut.String()
}

// sourceAttr matches the attributes and CSS through which a page loads
// something.
var sourceAttr = regexp.MustCompile(`(?:\b(?:src|href|srcset|data)=|url\()["']?([^"')\s>]*)`)

// pageErrors matches what Chromium logs when a page fails to load something
// or runs into a script error.
var pageErrors = regexp.MustCompile(`(?i)CONSOLE|Uncaught|Failed to load resource|net::ERR_|Not allowed to load`)

// TestBrowser renders a realistic report, loads it in headless Chromium,
// and checks that it loads cleanly and draws a page that is not blank. Set
// REPORT_SCREENSHOT to a path to keep the screenshot.
func TestBrowser(t *testing.T) {
	bin := chromium(t)
	dir := t.TempDir()
	m := fixture("cityscapes-val-2025-03-01", 1, cityscapesNames, 16)
	m.Classes[16].IoU = nil // as if no pixel were predicted as train either
	m = withExtras(m)
	base := fixture("cityscapes-val-2025-02-01", 2, cityscapesNames)
	base.MIoU, base.LovaszSoftmax.PerImageMean = ptr(0.7211), ptr(0.2905)
	thumb := thumbnail(t)
	in := Input{Metrics: m, LossBins: lossBins(497), Baseline: &base, Thumbnails: map[string]Thumbnail{
		"bremen/000123": thumb, "bremen/000456": thumb, "aachen/000042": thumb,
	}}
	in.History = &History{
		Runs: nights([]string{"2025-02-20", "2025-02-21", "2025-02-22", "2025-02-24", "2025-02-25", "2025-02-26",
			"2025-02-27", "2025-02-28", "2025-03-01"}, map[int]bool{0: true}),
		BaselineRunID: "run-7",
	}
	in.History.Runs[len(in.History.Runs)-1].RunID = m.RunID
	page := filepath.Join(dir, "report.html")
	f, err := os.Create(page)
	if err != nil {
		t.Fatal(err)
	}
	if err := Render(f, in); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}

	// The DOM after loading: all sections there, no script.
	dom, stderr := runChromium(t, bin, page, "--enable-logging=stderr", "--v=0", "--dump-dom")
	for _, want := range []string{`id="headline"`, `id="history"`, `id="classes"`, `id="confusion"`, `id="losses"`, `id="slices"`, `id="worst"`, "</html>"} {
		if !strings.Contains(dom, want) {
			t.Errorf("the DOM lacks %q", want)
		}
	}
	if strings.Contains(dom, "<script") {
		t.Error("the DOM has a script")
	}
	for _, src := range sourceAttr.FindAllStringSubmatch(dom, -1) {
		if !strings.HasPrefix(src[1], "data:") {
			t.Errorf("the page loads %.60q", src[1])
		}
	}
	for _, line := range strings.Split(stderr, "\n") {
		if pageErrors.MatchString(line) {
			t.Errorf("chromium: %s", line)
		}
	}

	shot := os.Getenv("REPORT_SCREENSHOT")
	if shot == "" {
		shot = filepath.Join(dir, "report.png")
	}
	runChromium(t, bin, page, "--screenshot="+shot, "--window-size=1280,2400")
	data, err := os.ReadFile(shot)
	if err != nil {
		t.Fatal(err)
	}
	img := decodePNG(t, data)
	if b := img.Bounds(); b.Dx() != 1280 || b.Dy() != 2400 {
		t.Errorf("screenshot is %dx%d, want 1280x2400", b.Dx(), b.Dy())
	}
	colors := make(map[color.RGBA]bool)
	var white int
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y += 2 {
		for x := b.Min.X; x < b.Max.X; x += 2 {
			c := color.RGBAModel.Convert(img.At(x, y)).(color.RGBA)
			colors[c] = true
			if c.R > 245 && c.G > 245 && c.B > 245 {
				white++
			}
		}
	}
	total := (b.Dx() / 2) * (b.Dy() / 2)
	t.Logf("screenshot %s: %d distinct colors, %.0f%% near white", shot, len(colors), 100*float64(white)/float64(total))
	if len(colors) < 200 {
		t.Errorf("screenshot has %d distinct colors: blank or nearly", len(colors))
	}
	if white > total*97/100 {
		t.Errorf("screenshot is %d%% white", 100*white/total)
	}
}
