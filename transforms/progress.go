package transforms

import "sync/atomic"

// Progress is how far this process's workers have come. A launcher that runs
// the pipeline in its own process (prism embedded, the default) reads it to
// show progress while the run goes on; with remote workers it stays zero,
// and the runner's own UI shows progress instead.
type Progress struct {
	Images      int64 // evaluated
	ImagesTotal int64 // planned so far
	Bytes       int64 // bytes of input read
	BytesTotal  int64 // bytes of input matched
}

var progress struct {
	images, imagesTotal, bytes, bytesTotal atomic.Int64
}

// CurrentProgress returns this process's progress so far.
func CurrentProgress() Progress {
	return Progress{
		Images:      progress.images.Load(),
		ImagesTotal: progress.imagesTotal.Load(),
		Bytes:       progress.bytes.Load(),
		BytesTotal:  progress.bytesTotal.Load(),
	}
}
