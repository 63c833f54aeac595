package main

import (
	"fmt"
	"os"
	"time"

	"github.com/segeval/segeval/pipeline"
)

// showProgress reports the embedded run's progress on w until stop is
// closed: a bar redrawn in place on a terminal, a plain line every
// plainEvery otherwise (logs of scheduled runs). It returns once it has
// stopped writing.
func showProgress(w *os.File, stop <-chan struct{}) <-chan struct{} {
	done := make(chan struct{})
	fi, err := w.Stat()
	terminal := err == nil && fi.Mode()&os.ModeCharDevice != 0
	tick := 10 * time.Second
	if terminal {
		tick = 250 * time.Millisecond
	}
	start := time.Now()
	go func() {
		defer close(done)
		t := time.NewTicker(tick)
		defer t.Stop()
		for {
			select {
			case <-stop:
				if terminal {
					fmt.Fprint(w, "\r\033[K")
				}
				return
			case <-t.C:
				line := progressLine(pipeline.CurrentProgress(), time.Since(start))
				if terminal {
					fmt.Fprintf(w, "\r\033[K%s", line)
				} else {
					fmt.Fprintln(w, line)
				}
			}
		}
	}()
	return done
}

// progressLine renders progress in at most 100 columns: a bar over the
// input bytes, images done of those planned, the rate and the time left.
func progressLine(p pipeline.Progress, elapsed time.Duration) string {
	frac := 0.0
	if p.BytesTotal > 0 {
		frac = min(float64(p.Bytes)/float64(p.BytesTotal), 1)
	}
	const width = 30
	bar := make([]byte, width)
	for i := range bar {
		bar[i] = '.'
		if float64(i) < frac*width {
			bar[i] = '#'
		}
	}
	rate := float64(p.Images) / elapsed.Seconds()
	eta := "--:--"
	if frac > 0.01 {
		left := time.Duration(float64(elapsed) * (1 - frac) / frac)
		eta = fmt.Sprintf("%02d:%02d", int(left.Minutes()), int(left.Seconds())%60)
	}
	return fmt.Sprintf("[%s] %3.0f%%  %d/%d images  %.1f img/s  ETA %s",
		bar, 100*frac, p.Images, p.ImagesTotal, rate, eta)
}
