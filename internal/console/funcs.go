package console

import (
	"fmt"
	"html/template"
	"strings"
	"time"
)

func templateFuncs(a assets) template.FuncMap {
	return template.FuncMap{
		"asset": a.url,
		"bytes": humanBytes,
		"time":  shortTime,
		"iso": func(t time.Time) string {
			if t.IsZero() {
				return ""
			}
			return t.UTC().Format(time.RFC3339)
		},
		"ptime": func(t *time.Time) string {
			if t == nil {
				return "—"
			}
			return shortTime(*t)
		},
		"percent": func(f float64) string { return fmt.Sprintf("%.0f%%", f*100) },
		"progress": func(f float64) string {
			return fmt.Sprintf("%.0f", f*100)
		},
		"ms": func(p *int64) string {
			if p == nil {
				return "—"
			}
			return humanMs(*p)
		},
		"rawms": func(p *int64) string {
			if p == nil {
				return ""
			}
			return fmt.Sprint(*p)
		},
		"durms": humanMs,
		"deref": func(p *float64) float64 {
			if p == nil {
				return 0
			}
			return *p
		},
		"phaseClass": func(p string) string { return "phase-" + strings.ToLower(p) },
		"lower":      strings.ToLower,
		"stepDur": func(s, f *time.Time) string {
			if s == nil {
				return ""
			}
			end := time.Now()
			if f != nil {
				end = *f
			}
			return humanMs(end.Sub(*s).Milliseconds())
		},
	}
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

func humanMs(ms int64) string {
	switch {
	case ms < 1000:
		return fmt.Sprintf("%d ms", ms)
	case ms < 60_000:
		return fmt.Sprintf("%.1f s", float64(ms)/1000)
	case ms < 3_600_000:
		return fmt.Sprintf("%dm%02ds", ms/60_000, ms%60_000/1000)
	}
	return fmt.Sprintf("%dh%02dm", ms/3_600_000, ms%3_600_000/60_000)
}

// shortTime is a UTC time to the second, as every page shows times.
func shortTime(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.UTC().Format("2006-01-02 15:04:05Z")
}
