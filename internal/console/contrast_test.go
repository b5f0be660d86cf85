package console

import (
	"math"
	"strconv"
	"strings"
	"testing"
)

// The text colours of app.css on the backgrounds they are drawn on: each
// pair must reach WCAG's 4.5:1 for normal text.
var colourPairs = []struct{ what, fg, bg string }{
	{"body text", "#1a1a1a", "#ffffff"},
	{"muted text on cards", "#4d4d4d", "#ffffff"},
	{"muted text on the page", "#4d4d4d", "#f4f5f7"},
	{"links", "#0b4fb3", "#f4f5f7"},
	{"good", "#14632f", "#ffffff"},
	{"bad", "#a3161a", "#ffffff"},
	{"pending", "#7a4a00", "#ffffff"},
	{"running", "#123f86", "#ffffff"},
	{"Ready badge", "#14532d", "#e3f4e8"},
	{"Degraded/Failed badge", "#7d1013", "#fde7e7"},
	{"Failing-over badge", "#5c3a00", "#fff1d6"},
	{"changing badge", "#123f86", "#e6eefb"},
	{"disconnected notice", "#4a3200", "#fff4d6"},
	{"header", "#ffffff", "#16233a"},
	{"role tag", "#ffffff", "#2d3f5f"},
	{"buttons", "#ffffff", "#0b4fb3"},
	{"danger buttons", "#ffffff", "#a3161a"},
	{"error notice", "#ffffff", "#7d1013"},
	{"tags", "#1a1a1a", "#eceef1"},
	{"header focus ring", "#ffb86b", "#16233a"},
}

func TestContrast(t *testing.T) {
	css, err := staticFS.ReadFile("static/app.css")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range colourPairs {
		for _, c := range []string{p.fg, p.bg} {
			if !strings.Contains(string(css), c) {
				t.Errorf("%s: %s is not in app.css any more; update this table", p.what, c)
			}
		}
		if r := contrast(p.fg, p.bg); r < 4.5 {
			t.Errorf("%s: %s on %s has contrast %.2f, want ≥ 4.5", p.what, p.fg, p.bg, r)
		}
	}
}

func contrast(a, b string) float64 {
	la, lb := luminance(a), luminance(b)
	return (math.Max(la, lb) + 0.05) / (math.Min(la, lb) + 0.05)
}

func luminance(hex string) float64 {
	var c [3]float64
	for i := range c {
		v, _ := strconv.ParseUint(hex[1+2*i:3+2*i], 16, 8)
		s := float64(v) / 255
		if s <= 0.03928 {
			c[i] = s / 12.92
		} else {
			c[i] = math.Pow((s+0.055)/1.055, 2.4)
		}
	}
	return 0.2126*c[0] + 0.7152*c[1] + 0.0722*c[2]
}
