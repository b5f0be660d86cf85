#include "textflag.h"

// func foldCLMUL(crc uint64, p []byte, k *[4]uint64) (lo, hi uint64)
//
// Four 16-byte lanes X0..X3 take p 64 bytes at a time. A lane A = H·x^64 + L
// (H: its first 8 bytes, the higher-degree half in the reflected order) is
// moved 512 bits further by H·(x^575 mod P) + L·(x^511 mod P), one
// multiplication each, and xored with the data there; PCLMULQDQ of
// reflected operands yields the product times x, hence exponents one less
// than the distance plus 64 and than the distance. At the end the lanes are
// folded into one another the same way over 128 bits (x^191, x^127 mod P),
// and the last lane is returned: a 16-byte message with the same CRC as the
// whole input. k: x^575, x^511, x^191, x^127 mod P, bit-reflected.
TEXT ·foldCLMUL(SB), NOSPLIT, $0-56
	MOVQ crc+0(FP), AX
	MOVQ p_base+8(FP), SI
	MOVQ p_len+16(FP), CX
	MOVQ k+32(FP), DX

	MOVOU 0(SI), X0
	MOVOU 16(SI), X1
	MOVOU 32(SI), X2
	MOVOU 48(SI), X3
	MOVQ  AX, X4
	PXOR  X4, X0
	ADDQ  $64, SI
	SUBQ  $64, CX
	MOVOU 0(DX), X5

loop:
	CMPQ CX, $64
	JB   lanes

	MOVO      X0, X6
	MOVO      X1, X7
	MOVO      X2, X8
	MOVO      X3, X9
	PCLMULQDQ $0x00, X5, X0
	PCLMULQDQ $0x11, X5, X6
	PCLMULQDQ $0x00, X5, X1
	PCLMULQDQ $0x11, X5, X7
	PCLMULQDQ $0x00, X5, X2
	PCLMULQDQ $0x11, X5, X8
	PCLMULQDQ $0x00, X5, X3
	PCLMULQDQ $0x11, X5, X9
	MOVOU     0(SI), X10
	MOVOU     16(SI), X11
	MOVOU     32(SI), X12
	MOVOU     48(SI), X13
	PXOR      X6, X0
	PXOR      X7, X1
	PXOR      X8, X2
	PXOR      X9, X3
	PXOR      X10, X0
	PXOR      X11, X1
	PXOR      X12, X2
	PXOR      X13, X3

	ADDQ $64, SI
	SUBQ $64, CX
	JMP  loop

lanes:
	MOVOU 16(DX), X5

	MOVO      X0, X6
	PCLMULQDQ $0x00, X5, X0
	PCLMULQDQ $0x11, X5, X6
	PXOR      X6, X1
	PXOR      X0, X1

	MOVO      X1, X6
	PCLMULQDQ $0x00, X5, X1
	PCLMULQDQ $0x11, X5, X6
	PXOR      X6, X2
	PXOR      X1, X2

	MOVO      X2, X6
	PCLMULQDQ $0x00, X5, X2
	PCLMULQDQ $0x11, X5, X6
	PXOR      X6, X3
	PXOR      X2, X3

	MOVQ   X3, AX
	PSRLDQ $8, X3
	MOVQ   X3, BX
	MOVQ   AX, lo+40(FP)
	MOVQ   BX, hi+48(FP)
	RET
