package backup

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
)

// rdbOf builds an RDB from its body (everything after the header) with a
// correct trailer.
func rdbOf(version string, body ...[]byte) []byte {
	b := []byte("REDIS" + version)
	for _, p := range body {
		b = append(b, p...)
	}
	b = append(b, opEOF)
	return binary.LittleEndian.AppendUint64(b, crc64Update(0, b))
}

func str(s string) []byte { return append([]byte{byte(len(s))}, s...) }

func TestVerifyReaderCrafted(t *testing.T) {
	aux := append(append([]byte{opAux}, str("redis-ver")...), str("7.0.15")...)
	db0 := []byte{opSelectDB, 0, opResizeDB, 2, 1}
	key1 := append(append([]byte{typeString}, str("a")...), str("1")...)
	key2 := append(append([]byte{opExpireTimeMS, 1, 2, 3, 4, 5, 6, 7, 8, typeString}, str("b")...), 0xC0, 42) // int8-encoded value

	t.Run("counted", func(t *testing.T) {
		res, err := VerifyReader(bytes.NewReader(rdbOf("0010", aux, db0, key1, key2)))
		if err != nil || res.Keys != 2 || !res.KeysCounted || res.RDBVersion != 10 || res.RedisVersion != "7.0.15" {
			t.Fatalf("res %+v, err %v", res, err)
		}
	})
	t.Run("unknown type falls back on RESIZEDB", func(t *testing.T) {
		future := append([]byte{200}, str("c")...) // a type from a newer Redis
		res, err := VerifyReader(bytes.NewReader(rdbOf("0099", db0, key1, future, []byte("opaque bytes"))))
		if err != nil || res.Keys != 2 || res.KeysCounted {
			t.Fatalf("res %+v, err %v", res, err)
		}
	})
	t.Run("RESIZEDB disagrees", func(t *testing.T) {
		_, err := VerifyReader(bytes.NewReader(rdbOf("0010", db0, key1)))
		if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "RESIZEDB") {
			t.Fatalf("err %v", err)
		}
	})
	t.Run("no checksum", func(t *testing.T) {
		b := rdbOf("0010", db0, key1, key2)
		clear(b[len(b)-8:])
		res, err := VerifyReader(bytes.NewReader(b))
		if err != nil || !res.NoChecksum || len(res.CRC64) != 16 || res.CRC64 == "0000000000000000" {
			t.Fatalf("res %+v, err %v", res, err)
		}
	})
	for name, b := range map[string][]byte{
		"empty":          nil,
		"not an rdb":     []byte("hello world, not an rdb at all"),
		"bad version":    rdbOf("00x1"),
		"trailing bytes": append(rdbOf("0010"), 0),
		"truncated":      rdbOf("0010", db0, key1, key2)[:30],
		"no trailer":     rdbOf("0010")[:10],
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := VerifyReader(bytes.NewReader(b)); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("err %v", err)
			}
		})
	}
}

// Every single-byte change of a real RDB is caught, whichever check
// catches it.
func TestVerifyReaderCorruptEveryByte(t *testing.T) {
	t.Parallel()
	src := startRedis(t, "")
	c := src.Client(0)
	defer c.Close()
	ctx := context.Background()
	c.Set(ctx, "s", "v", 0)
	c.HSet(ctx, "h", "f", "v")
	c.RPush(ctx, "l", 1, 2, 3)
	c.SAdd(ctx, "set", "a")
	c.ZAdd(ctx, "z", redis.Z{Score: 1, Member: "m"})
	var buf bytes.Buffer
	if _, err := StreamRDB(ctx, src.Addr, testPassword, &buf, nil); err != nil {
		t.Fatal(err)
	}
	orig := buf.Bytes()
	for i := range orig {
		b := bytes.Clone(orig)
		b[i] ^= 0x5a
		if _, err := VerifyReader(bytes.NewReader(b)); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("byte %d of %d changed: err %v", i, len(orig), err)
		}
	}
	for n := range len(orig) {
		if _, err := VerifyReader(bytes.NewReader(orig[:n])); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("truncated to %d of %d bytes: err %v", n, len(orig), err)
		}
	}
}
