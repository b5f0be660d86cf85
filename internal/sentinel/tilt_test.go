package sentinel

import "testing"

func TestTiltedInfo(t *testing.T) {
	for info, want := range map[string]bool{
		"# Sentinel\r\nsentinel_masters:1\r\nsentinel_tilt:0\r\nsentinel_tilt_since_seconds:-1\r\n": false,
		"# Sentinel\r\nsentinel_masters:1\r\nsentinel_tilt:1\r\nsentinel_tilt_since_seconds:3\r\n":  true,
		"": false,
	} {
		if got := tiltedInfo(info); got != want {
			t.Errorf("tiltedInfo(%q) = %v, want %v", info, got, want)
		}
	}
}
