package local

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestControlPriorityReads(t *testing.T) {
	saved := autogroupFile
	t.Cleanup(func() { autogroupFile = saved })
	for _, c := range []struct {
		text string
		want int
		err  error // nil: no error; errAny: some other error
	}{
		{"/autogroup-122012 nice 0\n", 0, nil},
		{"/autogroup-7 nice -5\n", -5, nil},
		{"/autogroup-7 nice 19", 19, nil},
		{"", 0, ErrNoAutogroup},
		{"\n", 0, ErrNoAutogroup},
		{"/autogroup-7 nice x\n", 0, errAny},
		{"something else\n", 0, errAny},
	} {
		autogroupFile = filepath.Join(t.TempDir(), "autogroup")
		if err := os.WriteFile(autogroupFile, []byte(c.text), 0o600); err != nil {
			t.Fatal(err)
		}
		got, err := ControlPriority()
		switch {
		case c.err == nil && (err != nil || got != c.want):
			t.Errorf("%q: %d, %v; want %d", c.text, got, err, c.want)
		case c.err == errAny && (err == nil || errors.Is(err, ErrNoAutogroup)):
			t.Errorf("%q: %d, %v; want a parse error", c.text, got, err)
		case c.err == ErrNoAutogroup && !errors.Is(err, ErrNoAutogroup):
			t.Errorf("%q: %v, want ErrNoAutogroup", c.text, err)
		}
	}
	// SetControlPriority does not write where there is no autogroup.
	autogroupFile = filepath.Join(t.TempDir(), "autogroup")
	if err := os.WriteFile(autogroupFile, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := SetControlPriority(-5); !errors.Is(err, ErrNoAutogroup) {
		t.Errorf("SetControlPriority without an autogroup: %v", err)
	}
	if b, _ := os.ReadFile(autogroupFile); len(b) != 0 {
		t.Errorf("SetControlPriority wrote %q", b)
	}
}

var errAny = errors.New("any error")
