package schedule

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// cronParser reads 5 fields (minute hour day-of-month month day-of-week),
// 6 with seconds first, and the @hourly … @yearly descriptors.
var cronParser = cron.NewParser(cron.SecondOptional | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// Parse parses a schedule's expression. @every is refused: its slots
// are not tied to the clock, so after a restart nobody could tell which
// slot was missed; time zones are refused: schedules run in UTC.
func Parse(expr string) (cron.Schedule, error) {
	e := strings.TrimSpace(expr)
	switch {
	case e == "":
		return nil, errors.New(`is required, e.g. "0 3 * * *" (every day at 03:00 UTC)`)
	case strings.HasPrefix(e, "@every"):
		return nil, fmt.Errorf("%q: @every is not supported; name the times, e.g. \"0 */6 * * *\"", e)
	case strings.HasPrefix(e, "TZ=") || strings.HasPrefix(e, "CRON_TZ="):
		return nil, fmt.Errorf("%q: time zones are not supported; schedules run in UTC", e)
	}
	s, err := cronParser.Parse(e)
	if err != nil {
		return nil, fmt.Errorf("%q is not a cron expression (minute hour day-of-month month day-of-week, or seconds first): %v", e, err)
	}
	if s.Next(time.Now().UTC()).IsZero() {
		return nil, fmt.Errorf("%q never fires", e)
	}
	return s, nil
}

// Period is the time between a schedule's next two slots after now (0
// when the expression does not parse): what "no backup within twice the
// schedule's period" measures against.
func Period(expr string, now time.Time) time.Duration {
	s, err := Parse(expr)
	if err != nil {
		return 0
	}
	first := s.Next(now)
	return s.Next(first).Sub(first)
}
