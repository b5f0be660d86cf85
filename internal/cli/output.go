package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/mattn/go-isatty"

	"github.com/redis-manager/redis-manager/api"
)

// Output formats of -o.
const (
	outputTable = "table"
	outputJSON  = "json"
)

// outputFormat is the -o flag; it rejects unknown formats while flags are
// parsed, so no command has to check it.
type outputFormat string

func (o *outputFormat) String() string { return string(*o) }
func (o *outputFormat) Type() string   { return "json|table" }

func (o *outputFormat) Set(s string) error {
	switch s {
	case outputTable, outputJSON:
		*o = outputFormat(s)
		return nil
	}
	return fmt.Errorf("unknown output format %q (want json or table)", s)
}

// writeJSON prints v indented, the form -o json promises.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// newTable returns a writer aligning tab-separated columns; callers Flush.
func newTable(w io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
}

// row writes one tab-separated table line.
func row(w io.Writer, cols ...any) {
	for i, c := range cols {
		if i > 0 {
			fmt.Fprint(w, "\t")
		}
		fmt.Fprint(w, c)
	}
	fmt.Fprintln(w)
}

// isTerminal reports whether v is an *os.File attached to a terminal.
func isTerminal(v any) bool {
	f, ok := v.(*os.File)
	if !ok {
		return false
	}
	return isatty.IsTerminal(f.Fd()) || isatty.IsCygwinTerminal(f.Fd())
}

// age renders how long ago t was, kubectl style: 45s, 12m, 3h, 5d.
func age(t, now time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := now.Sub(t)
	switch {
	case d < 0:
		return "0s"
	case d < 2*time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < 2*time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}

// duration renders an elapsed time at a precision fit for humans.
func duration(d time.Duration) string {
	switch {
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Minute:
		return d.Round(100 * time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}

// timestamp renders an optional API time, "-" when unset.
func timestamp(t *time.Time) string {
	if t == nil || t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func percent(p float64) string {
	return fmt.Sprintf("%d%%", int(clamp01(p)*100+0.5))
}

func clamp01(p float64) float64 {
	return min(max(p, 0), 1)
}

// currentStep names the step a job is working on: the running one, else the
// last finished one (between steps), else none.
func currentStep(j api.Job) string {
	last := ""
	for _, s := range j.Steps {
		if s.State == api.StateRunning {
			return s.Name
		}
		if s.State == api.StateSucceeded || s.State == api.StateFailed {
			last = s.Name
		}
	}
	return last
}

// progressLine draws the wait progress of a job on stderr. On a terminal it
// redraws one line with \r; elsewhere (CI logs, files) it writes a new line
// only when the step or message changes, so logs stay short.
type progressLine struct {
	w     io.Writer
	tty   bool
	start time.Time
	now   func() time.Time

	lastKey string // step and message of the last line written
	width   int    // visible width of the last terminal line, to blank leftovers
}

const (
	barWidth = 20
	// maxTTYLine keeps the redrawn line on one row of most terminals: a
	// wrapped line cannot be taken back with \r and would repeat on screen.
	maxTTYLine = 100
)

func (p *progressLine) update(j api.Job) {
	step := currentStep(j)
	key := j.State + "\x00" + step + "\x00" + j.Message
	if !p.tty && key == p.lastKey {
		return
	}
	p.lastKey = key

	filled := int(clamp01(j.Progress)*barWidth + 0.5)
	var b strings.Builder
	fmt.Fprintf(&b, "[%s%s] %4s", strings.Repeat("#", filled), strings.Repeat(".", barWidth-filled), percent(j.Progress))
	if j.State == api.StatePending {
		b.WriteString("  pending")
	}
	if step != "" {
		b.WriteString("  " + step)
	}
	if j.Message != "" && j.Message != step {
		b.WriteString(": " + j.Message)
	}
	fmt.Fprintf(&b, " (%s)", p.now().Sub(p.start).Round(time.Second))
	line := b.String()

	if !p.tty {
		fmt.Fprintln(p.w, line)
		return
	}
	if r := []rune(line); len(r) > maxTTYLine {
		line = string(r[:maxTTYLine-1]) + "…"
	}
	n := len([]rune(line))
	pad := ""
	if n < p.width {
		pad = strings.Repeat(" ", p.width-n)
	}
	p.width = n
	fmt.Fprint(p.w, "\r"+line+pad)
}

// done ends the terminal line so what follows starts on a fresh one.
func (p *progressLine) done() {
	if p.tty && p.width > 0 {
		fmt.Fprintln(p.w)
		p.width = 0
	}
}
