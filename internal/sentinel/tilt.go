package sentinel

import (
	"context"
	"strings"

	"github.com/redis/go-redis/v9"
)

// Tilted tells whether the Sentinel is in TILT mode (INFO sentinel:
// sentinel_tilt:1). A Sentinel enters TILT when its timer ran late by more
// than 2 s (the process was not scheduled, or the clock jumped) and then,
// for 30 s, acts on nothing: a SENTINEL FAILOVER it accepts waits until
// TILT ends.
func Tilted(ctx context.Context, sc Conn) (bool, error) {
	cmd := redis.NewStringCmd(ctx, "info", "sentinel")
	if err := sc.Process(ctx, cmd); err != nil {
		return false, err
	}
	return tiltedInfo(cmd.Val()), nil
}

func tiltedInfo(info string) bool {
	for _, l := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), "sentinel_tilt:"); ok {
			return v == "1"
		}
	}
	return false
}
