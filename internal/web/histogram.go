package web

import (
	"fmt"
	"html/template"
	"strconv"
	"strings"
	"time"
)

// The histogram's drawing area (SVG user units; the SVG scales to the
// page's width).
const (
	histWidth   = 1000.0
	histHeight  = 80.0
	histBuckets = 60
)

// histLevels are the level classes, bottom of a bar first.
var histLevels = []string{"fatal", "error", "warn", "info", "debug"}

// histogram is the loaded records per time bucket, stacked by level class,
// drawn as inline SVG rectangles (no script, no inline style).
type histogram struct {
	// SVG is the chart: rectangles and their titles, built by svg from
	// numbers, times and the fixed level class names only (no log
	// content), rather than by the template bar by bar (half the page's
	// rendering time).
	SVG      template.HTML
	Bars     []histBar
	From, To string
	Max      int
	Total    int
	Bucket   string
	Counts   []histCount // per level class, for the legend
	Width    float64
	Height   float64
	ViewBox  string
}

type histBar struct {
	X, W  float64
	Title string
	Segs  []histSeg
}

type histSeg struct {
	Y, H  float64
	Class string
}

type histCount struct {
	Class string
	N     int
}

// buildHistogram buckets rows (newest first) by time between the oldest
// and the newest; nil for no rows.
func buildHistogram(rows []recordRow) *histogram {
	if len(rows) == 0 {
		return nil
	}
	oldest, newest := rows[0].t, rows[0].t
	for _, r := range rows {
		if r.t.Before(oldest) {
			oldest = r.t
		}
		if r.t.After(newest) {
			newest = r.t
		}
	}
	// A round bucket width, bars aligned to it.
	step := niceStep(newest.Sub(oldest) / histBuckets)
	start := oldest.Truncate(step)
	n := int(newest.Sub(start)/step) + 1
	oldest = start
	counts := make([]map[string]int, n)
	for i := range counts {
		counts[i] = map[string]int{}
	}
	total := map[string]int{}
	for _, r := range rows {
		i := int(r.t.Sub(oldest) / step)
		i = min(max(i, 0), n-1)
		counts[i][r.Class]++
		total[r.Class]++
	}
	h := &histogram{Width: histWidth, Height: histHeight, ViewBox: fmt.Sprintf("0 0 %g %g", histWidth, histHeight+1),
		From: oldest.UTC().Format(timeLayout), To: newest.UTC().Format(timeLayout), Total: len(rows), Bucket: step.String()}
	for _, c := range counts {
		sum := 0
		for _, v := range c {
			sum += v
		}
		h.Max = max(h.Max, sum)
	}
	bw := histWidth / float64(n)
	for i, c := range counts {
		bar := histBar{X: float64(i) * bw, W: max(bw-1, 0.5)}
		y := histHeight
		var parts []string
		for _, cls := range histLevels {
			v := c[cls]
			if v == 0 {
				continue
			}
			ht := float64(v) / float64(h.Max) * (histHeight - 2)
			y -= ht
			bar.Segs = append(bar.Segs, histSeg{Y: y, H: ht, Class: cls})
			parts = append(parts, fmt.Sprintf("%d %s", v, cls))
		}
		from := oldest.Add(time.Duration(i) * step)
		bar.Title = from.UTC().Format(timeLayout) + " +" + step.String() + ": " + strings.Join(parts, ", ")
		if len(parts) == 0 {
			bar.Title = from.UTC().Format(timeLayout) + " +" + step.String() + ": none"
		}
		h.Bars = append(h.Bars, bar)
	}
	h.SVG = h.svg()
	for _, cls := range []string{"debug", "info", "warn", "error", "fatal"} {
		if total[cls] > 0 {
			h.Counts = append(h.Counts, histCount{Class: cls, N: total[cls]})
		}
	}
	return h
}

// niceSteps are the bucket widths offered.
var niceSteps = []time.Duration{
	time.Millisecond, 2 * time.Millisecond, 5 * time.Millisecond, 10 * time.Millisecond, 20 * time.Millisecond,
	50 * time.Millisecond, 100 * time.Millisecond, 200 * time.Millisecond, 500 * time.Millisecond,
	time.Second, 2 * time.Second, 5 * time.Second, 10 * time.Second, 15 * time.Second, 30 * time.Second,
	time.Minute, 2 * time.Minute, 5 * time.Minute, 10 * time.Minute, 15 * time.Minute, 30 * time.Minute,
	time.Hour, 2 * time.Hour, 3 * time.Hour, 6 * time.Hour, 12 * time.Hour, 24 * time.Hour,
}

// niceStep is the smallest round width of at least d (whole days beyond).
func niceStep(d time.Duration) time.Duration {
	for _, s := range niceSteps {
		if s >= d {
			return s
		}
	}
	day := 24 * time.Hour
	return (d + day - 1) / day * day
}

// svg renders the bars. Every interpolated value is a number, a time
// formatted here, or a class name of histLevels; titles are escaped all
// the same.
func (h *histogram) svg() template.HTML {
	var b strings.Builder
	num := func(f float64) string { return strconv.FormatFloat(f, 'f', 2, 64) }
	for _, bar := range h.Bars {
		b.WriteString(`<g><title>`)
		b.WriteString(template.HTMLEscapeString(bar.Title))
		b.WriteString(`</title><rect class="slot" x="`)
		b.WriteString(num(bar.X))
		b.WriteString(`" y="0" width="`)
		b.WriteString(num(bar.W))
		b.WriteString(`" height="`)
		b.WriteString(num(h.Height))
		b.WriteString(`"></rect>`)
		for _, sg := range bar.Segs {
			b.WriteString(`<rect class="lv-`)
			b.WriteString(template.HTMLEscapeString(sg.Class))
			b.WriteString(`" x="`)
			b.WriteString(num(bar.X))
			b.WriteString(`" y="`)
			b.WriteString(num(sg.Y))
			b.WriteString(`" width="`)
			b.WriteString(num(bar.W))
			b.WriteString(`" height="`)
			b.WriteString(num(sg.H))
			b.WriteString(`"></rect>`)
		}
		b.WriteString(`</g>`)
	}
	return template.HTML(b.String())
}
