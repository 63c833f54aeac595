package report

import (
	_ "embed"
	"fmt"
	"html/template"

	"github.com/segeval/segeval/internal/results"
)

// The comparison with the baseline (metrics.json's comparison) has its own
// template, a block of the page's template set, shown right below the
// headline metrics.

//go:embed comparison.html.tmpl
var comparisonSource string

func init() {
	template.Must(pageTemplate.New("comparison").Parse(comparisonSource))
}

// comparisonSection is the comparison's block.
type comparisonSection struct {
	BaselineRunID string
	Level         string
	// Images says how many images the runs share; Caution warns that the
	// mIoU and class deltas also compare different images.
	Images, Caution string
	Rows            []changeRow
	Classes         []classChange
	Significant     string // how many classes changed significantly
	Lists           []changeList
}

// changeRow is a change with its paired interval.
type changeRow struct {
	Name, Interval, Significant string
	Delta                       delta
}

// classChange is one class's IoU change.
type classChange struct {
	ID          int
	Name        string
	Interval    string
	Delta       delta
	Significant string
}

// changeList is the most regressed or most improved images.
type changeList struct {
	Title                    string
	Rows                     []changeRowImage
	Thumbs, Pictures, Errors bool // whether any row has these panels
}

// changeRowImage is an image of a changeList, with this run's panels.
type changeRowImage struct {
	Rank                           int
	Key                            string
	Loss, MIoU                     delta
	Image, Label, Prediction, Errs template.URL
}

// newComparison formats m's comparison, nil when it has none.
func newComparison(m *results.Metrics, level string, thumbs map[string]Thumbnail) *comparisonSection {
	c := m.Comparison
	if c == nil {
		return nil
	}
	if level == "" {
		level = levelName(results.IntervalLevel)
	}
	s := &comparisonSection{BaselineRunID: c.BaselineRunID, Level: level,
		Images: fmt.Sprintf("%s images in both runs, %s only in this run, %s only in the baseline.",
			formatInt(c.ImagesPaired), formatInt(c.ImagesOnlyCandidate), formatInt(c.ImagesOnlyBaseline))}
	if c.ImagesOnlyCandidate+c.ImagesOnlyBaseline > 0 {
		s.Caution = "The runs evaluated different images: the mIoU and class changes compare each run's own images, and part of them may be the change of images; the per-image loss change is over the images in both."
	}
	loss := "Lovász-Softmax per image, mean over images in both"
	if hinge(m) {
		loss = "Lovász hinge per image, mean over images in both"
	}
	s.Rows = []changeRow{
		changeOf("mIoU", c.MIoUDelta, higher),
		changeOf(loss, c.PerImageLossDelta, lower),
	}
	names := map[int]string{}
	for _, cl := range m.Classes {
		names[cl.ID] = cl.Name
	}
	significant := 0
	for _, cl := range c.Classes {
		r := changeOf(names[cl.ID], cl.IoUDelta, higher)
		s.Classes = append(s.Classes, classChange{ID: cl.ID, Name: r.Name, Interval: r.Interval, Delta: r.Delta, Significant: r.Significant})
		if cl.IoUDelta.Significant() {
			significant++
		}
	}
	s.Significant = fmt.Sprintf("%d of %d significant", significant, len(c.Classes))
	s.Lists = []changeList{
		changeImages("Most regressed images", c.MostRegressed, thumbs),
		changeImages("Most improved images", c.MostImproved, thumbs),
	}
	return s
}

// changeOf formats a change of a metric that improves in direction b.
func changeOf(name string, d results.Delta, b better) changeRow {
	zero := 0.0
	r := changeRow{Name: name, Delta: newDelta(d.Value, &zero, b, false), Interval: undefined, Significant: undefined}
	if d.CI95 != nil {
		r.Interval = formatInterval(results.Interval{Low: &d.CI95[0], High: &d.CI95[1]})
		r.Significant = "no"
		if d.Significant() {
			r.Significant = "yes"
		}
	}
	return r
}

// changeImages is a list of changed images with this run's thumbnails.
func changeImages(title string, images []results.ImageChange, thumbs map[string]Thumbnail) changeList {
	l := changeList{Title: title}
	zero := 0.0
	for i, img := range images {
		row := changeRowImage{Rank: i + 1, Key: img.Key,
			Loss: newDelta(img.LossDelta, &zero, lower, false), MIoU: newDelta(img.MIoUDelta, &zero, higher, false)}
		if t, ok := thumbs[img.Key]; ok {
			row.Image, row.Label, row.Prediction, row.Errs = dataURI(t.Image), dataURI(t.Label), dataURI(t.Prediction), dataURI(t.Errors)
			l.Thumbs = l.Thumbs || row.Label != "" || row.Prediction != ""
			l.Pictures = l.Pictures || row.Image != ""
			l.Errors = l.Errors || row.Errs != ""
		}
		l.Rows = append(l.Rows, row)
	}
	return l
}
