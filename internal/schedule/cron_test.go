package schedule

import (
	"strings"
	"testing"
)

func TestParseCron(t *testing.T) {
	t.Parallel()
	for _, ok := range []string{"0 3 * * *", "*/2 * * * * *", "@daily", "@hourly", " 15 */6 * * 1-5 ", "0 0 29 2 *"} {
		if _, err := Parse(ok); err != nil {
			t.Errorf("Parse(%q): %v", ok, err)
		}
	}
	for expr, want := range map[string]string{
		"":                      "required",
		"bogus":                 "not a cron expression",
		"61 * * * *":            "not a cron expression",
		"* * * * * * *":         "not a cron expression",
		"@every 1h":             "@every is not supported",
		"CRON_TZ=UTC 0 3 * * *": "time zones",
		"0 0 30 2 *":            "never fires",
	} {
		if _, err := Parse(expr); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Parse(%q) = %v, want an error saying %q", expr, err, want)
		}
	}
}
