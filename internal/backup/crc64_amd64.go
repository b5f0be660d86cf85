package backup

import "golang.org/x/sys/cpu"

// On amd64 with PCLMULQDQ (every x86-64 CPU since 2010), long inputs are
// folded with carry-less multiplication (crc64_amd64.s): about ten times the
// table's speed. See crc64Update.
var useCLMUL = cpu.X86.HasPCLMULQDQ && cpu.X86.HasSSE2

// foldCLMUL folds p (a multiple of 64 bytes, at least 64), with crc
// xored into its first 8 bytes, into 16 bytes whose CRC-64 is the sum of
// crc followed by p; k holds the folding constants (see clmulConstants).
//
//go:noescape
func foldCLMUL(crc uint64, p []byte, k *[4]uint64) (lo, hi uint64)
