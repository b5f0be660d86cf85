//go:build !amd64

package backup

// Elsewhere the table does all the work.
const useCLMUL = false

func foldCLMUL(uint64, []byte, *[4]uint64) (lo, hi uint64) { panic("no carry-less multiplication") }
